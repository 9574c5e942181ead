/** The peer client against real HTTP servers: answers, refusals, and a peer that stalls. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/cache/ports.ts';
import { verifyPeerRequest } from '../../../src/cluster/peer-protocol.ts';
import { PeerClient } from '../../../src/coordination/peer-client.ts';
import { digestOf } from '../../../src/registry/digest.ts';
import { freePort } from '../../support/ports.ts';

const secret = 'peer-client-secret-0123456789';
const blob = Buffer.from('a blob served by a peer replica');
const digest = digestOf(blob);
const servers: Server[] = [];
const client = new PeerClient({ nodeId: 'n1', secret, connectTimeoutMs: 1_000, bodyIdleTimeoutMs: 2_000, clock: systemClock });

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function text(body: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks).toString();
}

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

describe('PeerClient', () => {
  it('signs its request and reads a whole answer or a ranged one', async () => {
    const url = await serve((req, res) => {
      const path = req.url!.split('?')[0]!;
      const auth = verifyPeerRequest(secret, req.method!, path, req.headers['x-outpost-peer'], Date.now());
      if (!auth.ok) {
        res.writeHead(401).end();
        return;
      }
      const start = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
      if (start > 0) {
        res.writeHead(206, { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}`, 'content-length': blob.length - start });
        res.end(blob.subarray(start));
        return;
      }
      res.writeHead(200, { 'content-length': blob.length, 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
      res.end(blob);
    });
    const whole = await client.get({ id: 'n2', url }, digest, AbortSignal.timeout(5_000), { startTimeoutMs: 1_000 });
    expect(whole).toMatchObject({ size: blob.length, offset: 0, mediaType: 'application/vnd.oci.image.manifest.v1+json' });
    expect(await text(whole.body)).toBe(blob.toString());
    const rest = await client.get({ id: 'n2', url }, digest, AbortSignal.timeout(5_000), { start: 10, startTimeoutMs: 1_000 });
    expect(rest).toMatchObject({ size: blob.length, offset: 10 });
    expect(await text(rest.body)).toBe(blob.subarray(10).toString());
  });

  it('breaks a transfer whose peer stops sending for the idle timeout', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': blob.length });
      res.write(blob.subarray(0, 5)); // and nothing more
    });
    const answer = await client.get({ id: 'x', url }, digest, AbortSignal.timeout(5_000), { startTimeoutMs: 1_000, idleTimeoutMs: 300 });
    const started = Date.now();
    await expect(text(answer.body)).rejects.toMatchObject({ code: 'UND_ERR_BODY_TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('reports 404, 401, a refused connection and a stalled peer with their codes, a stall within its bound', async () => {
    const notFound = await serve((_req, res) => res.writeHead(404).end());
    await expect(client.get({ id: 'x', url: notFound }, digest, AbortSignal.timeout(5_000), { startTimeoutMs: 1_000 })).rejects.toMatchObject({ code: 'PEER_NOT_FOUND' });
    const refusing = await serve((_req, res) => res.writeHead(401).end());
    await expect(client.get({ id: 'x', url: refusing }, digest, AbortSignal.timeout(5_000), { startTimeoutMs: 1_000 })).rejects.toMatchObject({ code: 'PEER_REFUSED' });
    const closed = `http://127.0.0.1:${await freePort()}`;
    await expect(client.get({ id: 'x', url: closed }, digest, AbortSignal.timeout(5_000), { startTimeoutMs: 1_000 })).rejects.toMatchObject({ code: 'PEER_UNREACHABLE' });
    const stalled = await serve(() => undefined); // reads the request, never answers
    const started = Date.now();
    await expect(client.get({ id: 'x', url: stalled }, digest, AbortSignal.timeout(5_000), { startTimeoutMs: 300 })).rejects.toMatchObject({ code: 'PEER_TIMEOUT' });
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(1_000);
  });
});
