import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Upstream } from '../../../src/cache/ports.ts';
import { createRegistryClient } from '../../../src/upstream/registry-client.ts';
import { json, rejection, sendManifest, startServer, testConfig, type Handler, type TestServer } from './helpers.ts';

const never = new AbortController().signal;

describe('registry client TLS', () => {
  let dir: string;
  let caFile: string;
  let registry: TestServer;
  const clients: Upstream[] = [];
  const servers: TestServer[] = [];
  const tls = () => ({ key: readFileSync(join(dir, 'k.pem'), 'utf8'), cert: readFileSync(caFile, 'utf8') });
  async function server(handler: Handler, withTls?: boolean): Promise<TestServer> {
    const s = await startServer(handler, withTls ? tls() : undefined);
    servers.push(s);
    return s;
  }
  /** A registry that wants a Bearer token from `realm` (any token will do). */
  const challenging = (realm: () => string, withTls?: boolean) =>
    server((req, res) => {
      if (req.headers.authorization?.startsWith('Bearer ')) return sendManifest(res);
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm()}",service="s"` });
      res.end();
    }, withTls);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'outpost-tls-'));
    caFile = join(dir, 'c.pem');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', caFile, '-days', '1',
        '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
      { stdio: 'ignore' },
    );
    registry = await startServer((_req, res) => sendManifest(res), tls());
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(servers.map((s) => s.close()));
    await registry?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function client(...args: Parameters<typeof testConfig>): Upstream {
    const c = createRegistryClient(testConfig(...args), {});
    clients.push(c);
    return c;
  }

  it('talks to a self-signed primary when its certificate is in caFile', async () => {
    const manifest = await client(registry.url, { caFile }).getManifest('a/b', 'latest', 1 << 20, never);
    expect(manifest.digest).toMatch(/^sha256:/);
  });

  it('fails with UPSTREAM_UNREACHABLE without the CA, and does not retry', async () => {
    const before = registry.requests.length;
    const err = await rejection(client(registry.url, { retries: 2 }).getManifest('a/b', 'latest', 1 << 20, never));
    expect(err.code).toBe('UPSTREAM_UNREACHABLE');
    expect(registry.requests.length).toBe(before);
  });

  it('talks to it with insecure=true', async () => {
    const manifest = await client(registry.url, { insecure: true }).getManifest('a/b', 'latest', 1 << 20, never);
    expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
  });

  it('sends the configured credentials to an https token realm on another host', async () => {
    const auth = await server((_req, res) => json(res, 200, { token: 't' }), true);
    const primary = await challenging(() => `${auth.url}/token`);
    // The primary by another name than the realm's host (both are this loopback).
    await client(`http://localhost:${primary.port}`, { caFile, username: 'alice', password: 'pw' }).getManifest('a/b', 'latest', 1 << 20, never);
    expect(auth.requests[0]!.headers.authorization).toBe(`Basic ${Buffer.from('alice:pw').toString('base64')}`);
  });

  it('keeps the credentials of an https primary away from a plain-http realm on its own host', async () => {
    const auth = await server((_req, res) => json(res, 200, { token: 't' }));
    const primary = await challenging(() => `${auth.url}/token`, true);
    const err = await rejection(client(primary.url, { caFile, username: 'alice', password: 'pw' }).getManifest('a/b', 'latest', 1 << 20, never));
    expect(err.code).toBe('UPSTREAM_UNAUTHORIZED');
    expect(auth.requests).toHaveLength(0);
  });

  it('refuses to start with a caFile that cannot be read', () => {
    expect(() => createRegistryClient(testConfig(registry.url, { caFile: join(dir, 'missing.pem') }), {})).toThrow(/CA file/);
  });
});
