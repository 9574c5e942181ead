/** `POST /api/v0/peer/retention` and its client, over a real loopback HTTP server. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/cache/ports.ts';
import { ReplicaRetentionClient } from '../../../src/coordination/replica-retention-client.ts';
import { PeerRoutes, peerRetentionPath } from '../../../src/http/peer-routes.ts';
import { sendError } from '../../../src/http/send.ts';

const secret = 'peer-retention-test-secret-0123456789';
let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

async function replica(sweep: () => Promise<{ evicted: number; bytes: number }>): Promise<{ url: string; sweeps: () => number }> {
  let sweeps = 0;
  const routes = new PeerRoutes({
    secret,
    clock: systemClock,
    blobs: { statForPeer: async () => undefined, openForPeer: async () => Promise.reject(new Error('unused')) },
    mediaType: async () => undefined,
    retention: {
      sweep: () => {
        sweeps += 1;
        return sweep();
      },
    },
  });
  server = createServer((req, res) => {
    routes.handle(req, res, (req.url ?? '/').split('?')[0]!).catch((err: unknown) => sendError(req, res, err));
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server!.address() as AddressInfo).port}`, sweeps: () => sweeps };
}

describe('peer retention endpoint', () => {
  it('runs the sweep for a signed request and answers its counts', async () => {
    const r = await replica(async () => ({ evicted: 3, bytes: 4096 }));
    const client = new ReplicaRetentionClient({ nodeId: 'n1', secret, clock: systemClock });
    expect(await client.sweep({ id: 'n2', url: r.url }, AbortSignal.timeout(5_000))).toEqual({ evicted: 3, bytes: 4096 });
    expect(r.sweeps()).toBe(1);
  });

  it('refuses another secret (401) and anything but POST (405), sweeping nothing', async () => {
    const r = await replica(async () => ({ evicted: 0, bytes: 0 }));
    const wrong = new ReplicaRetentionClient({ nodeId: 'n1', secret: 'another-secret-0123456789abcdef', clock: systemClock });
    await expect(wrong.sweep({ id: 'n2', url: r.url }, AbortSignal.timeout(5_000))).rejects.toThrow('replica n2 answered HTTP 401 UNAUTHORIZED');
    expect((await fetch(`${r.url}${peerRetentionPath}`)).status).toBe(405);
    expect(r.sweeps()).toBe(0);
  });

  it('names a replica that cannot be reached', async () => {
    const client = new ReplicaRetentionClient({ nodeId: 'n1', secret, clock: systemClock });
    await expect(client.sweep({ id: 'gone', url: 'http://127.0.0.1:1' }, AbortSignal.timeout(5_000))).rejects.toThrow(/^replica gone could not be asked: .*ECONNREFUSED/);
  });
});
