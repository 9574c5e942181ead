/**
 * A registry on 127.0.0.1 that answers whatever a test tells it to: the
 * "primary that lies" of the security tests. Routes are exact paths
 * (`/v2/<name>/manifests/<ref>`); anything else is 404 with an OCI error.
 * Every request is recorded.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LyingAnswer {
  status?: number;
  headers?: Record<string, string>;
  body?: Buffer | string;
}

export interface LyingRegistry {
  url: string;
  host: string;
  requests: { method: string; path: string }[];
  /** Answers `path` (GET and HEAD) with this. */
  set(path: string, answer: LyingAnswer): void;
  /** Serves a manifest body under its tag and its digest, with a truthful Docker-Content-Digest. Returns the digest. */
  manifest(name: string, tag: string, json: unknown, mediaType: string): string;
  close(): Promise<void>;
}

export async function startLyingRegistry(): Promise<LyingRegistry> {
  const routes = new Map<string, LyingAnswer>();
  const requests: { method: string; path: string }[] = [];
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    requests.push({ method: req.method ?? 'GET', path });
    if (path === '/v2/' || path === '/v2') {
      res.writeHead(200, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' });
      res.end('{}');
      return;
    }
    const answer = routes.get(path);
    if (!answer) {
      const body = JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'unknown' }] });
      res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const body = typeof answer.body === 'string' ? Buffer.from(answer.body) : (answer.body ?? Buffer.alloc(0));
    res.writeHead(answer.status ?? 200, { 'content-length': body.byteLength, ...answer.headers });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    requests,
    set: (path, answer) => routes.set(path, answer),
    manifest(name, tag, json, mediaType) {
      const body = Buffer.from(JSON.stringify(json));
      const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
      const answer = { headers: { 'content-type': mediaType, 'docker-content-digest': digest }, body };
      routes.set(`/v2/${name}/manifests/${tag}`, answer);
      routes.set(`/v2/${name}/manifests/${digest}`, answer);
      return digest;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
