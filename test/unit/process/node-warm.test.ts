/**
 * The warm endpoint wired into a whole in-process node (createOutpostApp):
 * a signed `POST /api/v0/peer/warm` with the node-local secret warms an
 * image from a loopback primary, counts it in the metrics, and a second warm
 * finds every blob cached.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/cache/ports.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { HttpReplicaWarmClient } from '../../../src/coordination/replica-warm-client.ts';
import { createOutpostApp, type OutpostApp } from '../../../src/process/node-app.ts';
import { createCleanupStack } from '../../support/cleanup.ts';
import { makeTempDir, removeTempDir } from '../../support/temp.ts';

const cleanup = createCleanupStack();
const sha = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const localSecret = 'b'.repeat(64);
const blobGets: string[] = [];
let app: OutpostApp;
let url: string;
let primaryHost: string;

const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux' }));
const layer = Buffer.alloc(300_000, 7);
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(layer), size: layer.length }],
  }),
);

beforeAll(async () => {
  const blobs = new Map([
    [sha(config), config],
    [sha(layer), layer],
  ]);
  const primary: Server = createServer((req, res) => {
    const path = req.url ?? '';
    if (path === '/v2/') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    if (path === '/v2/team/app/manifests/v1' || path === `/v2/team/app/manifests/${sha(manifest)}`) {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': sha(manifest), 'content-length': manifest.length });
      return void res.end(req.method === 'HEAD' ? undefined : manifest);
    }
    const blob = blobs.get(path.slice('/v2/team/app/blobs/'.length));
    if (path.startsWith('/v2/team/app/blobs/') && blob) {
      if (req.method === 'GET') blobGets.push(path);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': blob.length });
      return void res.end(req.method === 'HEAD' ? undefined : blob);
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'unknown' }] }));
  });
  await new Promise<void>((resolve) => primary.listen(0, '127.0.0.1', resolve));
  cleanup.add(() => new Promise<void>((resolve) => primary.close(() => resolve())));
  primaryHost = `127.0.0.1:${(primary.address() as AddressInfo).port}`;
  const dir = await makeTempDir('node-warm');
  cleanup.add(() => removeTempDir(dir));
  const loaded = loadConfig({
    env: { OUTPOST_UPSTREAM_URL: `http://${primaryHost}`, OUTPOST_UPSTREAM_RETRIES: '0', OUTPOST_CACHE_DIR: dir, OUTPOST_LOG_LEVEL: 'silent' },
    machine: { hostname: 'unit', cpus: 1 },
  });
  app = await createOutpostApp(loaded, { localWarmSecret: localSecret });
  const port = await app.listen(0, '127.0.0.1');
  cleanup.add(() => app.close());
  url = `http://127.0.0.1:${port}`;
});
afterAll(() => cleanup.run());

describe('warm endpoint of a standalone node', () => {
  it('signs with the node-local secret when no peer secret is configured', () => {
    expect(app.warmSecret).toBe(localSecret);
  });

  it('warms an image, then finds it cached, and counts both in the metrics', async () => {
    const client = new HttpReplicaWarmClient({ nodeId: 'local', secret: localSecret, clock: systemClock });
    cleanup.add(() => client.close());
    const ref = { upstream: primaryHost, repository: 'team/app', reference: 'v1' };
    const first = await client.warm({ id: 'local', url }, ref, { platforms: [], signal: AbortSignal.timeout(10_000) });
    expect(first).toMatchObject({ ok: true, digest: sha(manifest), blobs: 2, bytes: config.length + layer.length, cachedBlobs: 0 });
    expect(blobGets.sort()).toEqual([`/v2/team/app/blobs/${sha(config)}`, `/v2/team/app/blobs/${sha(layer)}`].sort());
    const second = await client.warm({ id: 'local', url }, ref, { platforms: [], signal: AbortSignal.timeout(10_000) });
    expect(second).toMatchObject({ ok: true, blobs: 2, cachedBlobs: 2 });
    expect(blobGets).toHaveLength(2);
    const metrics = await app.metrics.registry.metrics();
    expect(metrics).toContain('outpost_prefetch_warmed_images_total{result="warmed"} 2');
    expect(metrics).toContain('outpost_prefetch_warmed_blobs_total{state="cached"} 2');
    expect(metrics).toContain('outpost_prefetch_warmed_blobs_total{state="fetched"} 2');
  });

  it('refuses a warm signed with another secret', async () => {
    const client = new HttpReplicaWarmClient({ nodeId: 'x', secret: 'c'.repeat(64), clock: systemClock });
    cleanup.add(() => client.close());
    await expect(
      client.warm({ id: 'local', url }, { upstream: primaryHost, repository: 'team/app', reference: 'v1' }, { platforms: [], signal: AbortSignal.timeout(10_000) }),
    ).rejects.toMatchObject({ code: 'WARM_REFUSED' });
  });
});
