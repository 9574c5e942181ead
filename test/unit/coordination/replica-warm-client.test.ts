/** The warm protocol end to end on loopback: the peer warm endpoint and the client that calls it, and a client facing a lying replica. */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/cache/ports.ts';
import { peerWarmTarget, signPeerRequest } from '../../../src/cluster/peer-protocol.ts';
import { HttpReplicaWarmClient } from '../../../src/coordination/replica-warm-client.ts';
import { PeerRoutes } from '../../../src/http/peer-routes.ts';
import { sendError } from '../../../src/http/send.ts';
import type { ImageRef, ImageWarmer, WarmOptions, WarmProgress, WarmResult } from '../../../src/prefetch/ports.ts';
import { formatImageRef } from '../../../src/prefetch/ports.ts';
import { waitFor } from '../../support/wait.ts';

const secret = 'warm-secret-0123456789abcdef';
const ref: ImageRef = { upstream: 'registry.test', repository: 'team/app', reference: 'v1' };
const image = formatImageRef(ref);
const servers: Server[] = [];
const clients: HttpReplicaWarmClient[] = [];

function client(options: Partial<ConstructorParameters<typeof HttpReplicaWarmClient>[0]> = {}): HttpReplicaWarmClient {
  const c = new HttpReplicaWarmClient({ nodeId: 'n1', secret, clock: systemClock, ...options });
  clients.push(c);
  return c;
}

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A warmer that reports `steps` progress updates at once, then the result. */
class FakeWarmer implements ImageWarmer {
  calls: { ref: ImageRef; platforms: readonly string[] }[] = [];
  aborted = false;
  hang = false;

  constructor(private readonly steps = 200) {}

  async warm(asked: ImageRef, options: WarmOptions): Promise<WarmResult> {
    this.calls.push({ ref: asked, platforms: options.platforms });
    const name = formatImageRef(asked);
    if (this.hang) {
      await new Promise<void>((resolve) => options.signal.addEventListener('abort', () => resolve(), { once: true }));
      this.aborted = true;
      return { image: name, ok: false, digest: undefined, blobs: 0, bytes: 0, cachedBlobs: 0, error: 'aborted' };
    }
    for (let i = 1; i <= this.steps; i++) options.onProgress?.({ image: name, blobsDone: 0, blobsTotal: 3, bytesDone: i, bytesTotal: this.steps });
    await new Promise((resolve) => setTimeout(resolve, 30));
    return { image: name, ok: true, digest: `sha256:${'a'.repeat(64)}` as WarmResult['digest'], blobs: 3, bytes: 300, cachedBlobs: 1, error: undefined };
  }
}

async function endpoint(warmer: ImageWarmer): Promise<string> {
  const routes = new PeerRoutes({
    secret: undefined,
    clock: systemClock,
    blobs: { statForPeer: async () => undefined, openForPeer: async () => Promise.reject(new Error('no')) },
    mediaType: async () => undefined,
    warm: { warmer, secret, upstreamOf: (host) => (host === 'registry.test' || host === 'alias.test' ? 'registry.test' : undefined) },
  });
  return serve((req, res) => {
    routes.handle(req, res, req.url!.split('?')[0]!).catch((err: unknown) => sendError(req, res, err));
  });
}

/** A raw signed POST to the warm endpoint; the status and body. */
function post(base: string, target: string, options: { body?: string; key?: string } = {}): Promise<{ status: number; body: string }> {
  const url = new URL(target, base);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: 'POST', headers: { 'x-outpost-peer': signPeerRequest(options.key ?? secret, 'POST', target, 'n1', Date.now()) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

describe('peer warm endpoint and replica warm client', () => {
  it('warms through a signed request and passes throttled progress on', async () => {
    const warmer = new FakeWarmer();
    const url = await endpoint(warmer);
    const progress: WarmProgress[] = [];
    const result = await client().warm({ id: 'n2', url }, ref, { platforms: ['linux/amd64', 'linux/arm64/v8'], signal: AbortSignal.timeout(5_000), onProgress: (p) => progress.push(p) });
    expect(result).toMatchObject({ image, ok: true, blobs: 3, bytes: 300, cachedBlobs: 1 });
    expect(warmer.calls).toEqual([{ ref, platforms: ['linux/amd64', 'linux/arm64/v8'] }]);
    // 200 updates within a few ms: the first goes out at once, the latest after the interval, nothing in between.
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress.length).toBeLessThanOrEqual(3);
    expect(progress[0]).toMatchObject({ image, bytesDone: 1 });
  });

  it('maps an alias of a primary to its host', async () => {
    const warmer = new FakeWarmer(1);
    const url = await endpoint(warmer);
    await client().warm({ id: 'n2', url }, { ...ref, upstream: 'alias.test' }, { platforms: [], signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
    expect(warmer.calls[0]?.ref.upstream).toBe('registry.test');
  });

  it('refuses another secret (401) and an unknown primary (404 NAME_UNKNOWN)', async () => {
    const url = await endpoint(new FakeWarmer());
    await expect(client({ secret: 'another-secret-0123456789' }).warm({ id: 'n2', url }, ref, { platforms: [], signal: AbortSignal.timeout(5_000) })).rejects.toMatchObject({
      code: 'WARM_REFUSED',
    });
    await expect(client().warm({ id: 'n2', url }, { ...ref, upstream: 'elsewhere.test' }, { platforms: [], signal: AbortSignal.timeout(5_000) })).rejects.toMatchObject({
      code: 'WARM_REJECTED',
      message: expect.stringContaining('NAME_UNKNOWN'),
    });
  });

  it('answers bad parameters and a body with 400 before warming anything', async () => {
    const warmer = new FakeWarmer();
    const url = await endpoint(warmer);
    const target = peerWarmTarget(ref, []);
    const cases: [string, string][] = [
      [peerWarmTarget({ ...ref, repository: 'Team/App' }, []), 'NAME_INVALID'],
      [peerWarmTarget({ ...ref, reference: 'sha256:short' }, []), 'DIGEST_INVALID'],
      [peerWarmTarget({ ...ref, reference: '-bad' }, []), 'TAG_INVALID'],
      [peerWarmTarget(ref, ['linux']), 'BODY_INVALID'],
      [`${target}&extra=1`, 'BODY_INVALID'],
      [`${target}&repository=other`, 'BODY_INVALID'],
      [target.replace('upstream=registry.test&', ''), 'BODY_INVALID'],
    ];
    for (const [asked, code] of cases) {
      const answer = await post(url, asked);
      expect(answer.status, asked).toBe(400);
      expect(JSON.parse(answer.body).errors[0].code, asked).toBe(code);
    }
    const withBody = await post(url, target, { body: '{"images":[]}' });
    expect(withBody.status).toBe(400);
    // A signature made for another query does not verify.
    const tampered = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(new URL(`${target}&platform=linux/amd64`, url), { method: 'POST', headers: { 'x-outpost-peer': signPeerRequest(secret, 'POST', target, 'n1', Date.now()) } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(tampered).toBe(401);
    expect(warmer.calls).toHaveLength(0);
  });

  it('stops the warm on the replica when the caller aborts', async () => {
    const warmer = new FakeWarmer();
    warmer.hang = true;
    const url = await endpoint(warmer);
    const controller = new AbortController();
    const pending = client().warm({ id: 'n2', url }, ref, { platforms: [], signal: controller.signal });
    await waitFor(() => warmer.calls.length === 1, { timeoutMs: 5_000, what: 'the warm to start on the replica' });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: 'WARM_ABORTED' });
    await waitFor(() => warmer.aborted, { timeoutMs: 5_000, what: 'the replica to abort its warm' });
  });

  describe('against a replica that lies', () => {
    const lying = async (lines: string[], options: { type?: string; hold?: boolean } = {}): Promise<string> =>
      serve((_req, res) => {
        res.writeHead(200, { 'content-type': options.type ?? 'application/x-ndjson' });
        for (const line of lines) res.write(line);
        if (!options.hold) res.end();
      });
    const good = { image, ok: true, digest: null, blobs: 2, bytes: 10, cachedBlobs: 0 };
    const cases: [string, string[], { type?: string }][] = [
      ['no result', [`${JSON.stringify({ progress: { image, blobsDone: 0, blobsTotal: 1, bytesDone: 0, bytesTotal: 1 } })}\n`], {}],
      ['another image', [`${JSON.stringify({ result: { ...good, image: 'x/y:z' } })}\n`], {}],
      ['more cached than blobs', [`${JSON.stringify({ result: { ...good, cachedBlobs: 3 } })}\n`], {}],
      ['a negative count', [`${JSON.stringify({ result: { ...good, bytes: -1 } })}\n`], {}],
      ['a bad digest', [`${JSON.stringify({ result: { ...good, digest: '../../etc' } })}\n`], {}],
      ['a failure without a reason', [`${JSON.stringify({ result: { ...good, ok: false } })}\n`], {}],
      ['a line that is not JSON', ['{"result":\n'], {}],
      ['an endless line', [`{"progress":"${'x'.repeat(100_000)}`], {}],
      ['lines after the result', [`${JSON.stringify({ result: good })}\n${JSON.stringify({ result: good })}\n`], {}],
      ['another content type', [`${JSON.stringify({ result: good })}\n`], { type: 'text/html' }],
    ];
    for (const [what, lines, options] of cases) {
      it(`rejects ${what} as WARM_BAD_RESPONSE`, async () => {
        const url = await lying(lines, options);
        await expect(client().warm({ id: 'n2', url }, ref, { platforms: [], signal: AbortSignal.timeout(5_000) })).rejects.toMatchObject({ code: 'WARM_BAD_RESPONSE' });
      });
    }

    it('accepts a well-formed result split across chunks', async () => {
      const text = `${JSON.stringify({ result: good })}\n`;
      const url = await lying([text.slice(0, 7), text.slice(7, 30), text.slice(30)]);
      expect(await client().warm({ id: 'n2', url }, ref, { platforms: [], signal: AbortSignal.timeout(5_000) })).toMatchObject({ ok: true, blobs: 2, digest: undefined });
    });

    it('gives up on a stream silent for the idle timeout', async () => {
      const url = await lying([`${JSON.stringify({ progress: { image, blobsDone: 0, blobsTotal: 1, bytesDone: 0, bytesTotal: 1 } })}\n`], { hold: true });
      await expect(client({ idleTimeoutMs: 300 }).warm({ id: 'n2', url }, ref, { platforms: [], signal: AbortSignal.timeout(5_000) })).rejects.toMatchObject({ code: 'WARM_TIMEOUT' });
    });

    it('reports a replica that cannot be reached', async () => {
      await expect(client().warm({ id: 'n2', url: 'http://127.0.0.1:1' }, ref, { platforms: [], signal: AbortSignal.timeout(5_000) })).rejects.toMatchObject({ code: 'WARM_UNREACHABLE' });
    });
  });
});
