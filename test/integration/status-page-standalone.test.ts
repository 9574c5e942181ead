/**
 * The status page of an app serving on its own, in-process (no cluster
 * primary, no Redis): its pulls are recorded in the process itself and the
 * page says they are this node's only. Without an admin token the page is
 * open. A real distribution registry is the primary; pulls are plain HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatusPageData } from '../../src/cluster/status-page-data.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createOutpostApp } from '../../src/process/node-app.ts';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { makeImage, makeLayer, MEDIA_TYPES, pushImage, type Image } from '../support/images.ts';
import { waitForCachedBlobs } from '../support/cache-dir.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';
import { waitFor } from '../support/wait.ts';

const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let url: string;
let image: Image;
let cacheDir: string;

beforeAll(async () => {
  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  image = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 50_000 })] });
  await pushImage(registry.url, 'solo/app', 'v1', image);
  const dir = await makeTempDir('status-standalone');
  cacheDir = dir;
  cleanup.add(() => removeTempDir(dir));
  const config = loadConfig({ env: { OUTPOST_CACHE_DIR: dir, OUTPOST_UPSTREAM_URL: registry.url, OUTPOST_NODE_ID: 'solo', OUTPOST_LOG_LEVEL: 'silent' } });
  const app = await createOutpostApp(config);
  const port = await app.listen(0, '127.0.0.1');
  cleanup.add(() => app.close());
  url = `http://127.0.0.1:${port}`;
}, 60_000);
afterAll(() => cleanup.run());

async function pull(): Promise<void> {
  const manifest = await fetch(`${url}/v2/solo/app/manifests/v1`, { headers: { accept: MEDIA_TYPES.oci.manifest }, signal: AbortSignal.timeout(10_000) });
  expect(manifest.status).toBe(200);
  await manifest.arrayBuffer();
  for (const blob of image.blobs) {
    const res = await fetch(`${url}/v2/solo/app/blobs/${blob.digest}`, { signal: AbortSignal.timeout(10_000) });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  }
}

describe('status page of an in-process app', () => {
  it('is open without an admin token and records its own pulls, hit or miss, with the client address', async () => {
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('data-replica="solo"');
    await pull();
    await waitForCachedBlobs(cacheDir, image.blobs.map((b) => b.digest)); // so the second pull is all hits
    await pull();
    // A pull is recorded when its response closes, and the document is reused for a second: poll, bounded.
    let data: StatusPageData | undefined;
    await waitFor(
      async () => {
        data = (await (await fetch(`${url}/api/v0/meta/status_page`, { signal: AbortSignal.timeout(5_000) })).json()) as StatusPageData;
        return data.recent_pulls.length >= 2 && data.cache.blob_lookups >= 2 * image.blobs.length;
      },
      { what: 'the status document to show both pulls', timeoutMs: 10_000, intervalMs: 100 },
    );
    if (data === undefined) throw new Error('unreachable');
    expect(data.pulls_scope).toBe('node');
    expect(data.recent_pulls.map((p) => [p.repository, p.reference, p.result, p.client])).toEqual([
      ['solo/app', 'v1', 'hit', '127.0.0.1'],
      ['solo/app', 'v1', 'miss', '127.0.0.1'],
    ]);
    expect(data.recent_pulls[0]!.user).toBeUndefined();
    const blobBytes = image.blobs.reduce((n, b) => n + b.size, 0);
    expect(data.top_by_pulls).toEqual([{ repository: 'solo/app', pulls: 2, bytes: expect.any(Number) }]);
    // Response bytes (headers included) of both pulls' blob GETs.
    expect(data.top_by_bytes[0]!.bytes).toBeGreaterThanOrEqual(2 * blobBytes);
    expect(data.cache.blob_lookups).toBe(2 * image.blobs.length);
    expect(data.cache.hit_ratio).toBe(0.5);
    const html = await (await fetch(`${url}/status`)).text();
    expect(html).toContain('on this node (solo) only');
    expect(html).toContain('solo/app:v1');
  });
});
