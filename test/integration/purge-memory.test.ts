/**
 * A purge reaches every worker's memory: after `purge` (all, repository,
 * digest) the tag answer, the manifest and the small config blob are never
 * served again from any worker's memory — the next request of each goes to
 * the primary.
 */
import { get } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { makeImage, makeLayer, pushImage, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';

const token = 'purge-memory-token';
const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let outpost: OutpostNode;
let image: Image;
const name = 'purge/app';

/** One request on its own connection, so successive requests spread over the workers. */
function fresh(path: string, headers: Record<string, string> = {}): Promise<{ status: number; cache: string | undefined; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = get(`${outpost.url}${path}`, { agent: false, headers, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, cache: res.headers['x-outpost-cache'] as string | undefined, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function purge(body: unknown): Promise<void> {
  const res = await fetch(`${outpost.url}/api/v0/cache/purge`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
}

const manifestPath = `/v2/${name}/manifests/v1`;
const accept = { accept: 'application/vnd.oci.image.manifest.v1+json' };

/** Warms both workers' memory: several requests on fresh connections. */
async function warm(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    expect((await fresh(manifestPath, accept)).status).toBe(200);
    expect((await fresh(`/v2/${name}/blobs/${image.config.digest}`)).status).toBe(200);
  }
}

beforeAll(async () => {
  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  image = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 4096, seed: 'purge-memory' })] });
  await pushImage(registry.url, name, 'v1', image);
  outpost = await startOutpost({ upstreamUrl: registry.url, workers: 2, env: { OUTPOST_ADMIN_TOKEN: token, OUTPOST_TAG_TTL: '1h' } });
  cleanup.add(() => outpost.dispose());
}, 120_000);
afterAll(() => cleanup.run());

describe('purge reaches every worker', () => {
  for (const [what, body] of [
    ['purge all', { all: true }],
    ['purge of the repository', { repository: name }],
  ] as const) {
    it(`after ${what}, no worker serves the tag, manifest or small blob from memory`, async () => {
      // Each round lands on the next worker (fresh connections); every one must go to the primary.
      for (let round = 0; round < 4; round++) {
        await warm();
        await purge(body);
        await registry.flushLog();
        registry.clearRequests();
        const manifest = await fresh(manifestPath, accept);
        expect(manifest.status).toBe(200);
        expect(manifest.cache, `round ${round}: manifest`).toBe('miss');
        const config = await fresh(`/v2/${name}/blobs/${image.config.digest}`);
        expect(config.body.equals(image.config.bytes)).toBe(true);
        expect(config.cache, `round ${round}: config blob`).toBe('miss');
        await registry.flushLog();
        expect(registry.countRequests({ method: 'GET', kind: 'manifest' })).toBeGreaterThanOrEqual(1);
        expect(registry.countRequests({ method: 'GET', kind: 'blob' })).toBeGreaterThanOrEqual(1);
      }
    });
  }

  it('after a purge of the config digest, no worker serves that blob from memory', async () => {
    for (let round = 0; round < 4; round++) {
      await warm();
      await purge({ digest: image.config.digest });
      const config = await fresh(`/v2/${name}/blobs/${image.config.digest}`);
      expect(config.body.equals(image.config.bytes)).toBe(true);
      expect(config.cache, `round ${round}`).toBe('miss');
    }
  });
});
