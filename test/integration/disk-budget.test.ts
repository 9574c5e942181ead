/**
 * The disk budget with a real distribution registry and skopeo: pulls far
 * over the budget stay under it (least recently used out, latest whole),
 * concurrent pulls during eviction get correct bytes, a restart keeps the
 * cache and its order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { cachedBlobs, cachedBytes, corruptBlobs } from '../support/cache-dir.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { makeImage, makeLayer, pushImage, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { pullOciDigests } from '../support/skopeo.ts';
import { waitFor } from '../support/wait.ts';

const MiB = 1024 * 1024;
const budget = 160 * MiB;
const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let outpost: OutpostNode;
const images: Image[] = [];

async function pull(n: number): Promise<void> {
  expect(await pullOciDigests(`${outpost.host}/budget/img${n}:v1`)).toEqual([images[n]!.digest]);
}

async function upstreamBlobGets(image: Image): Promise<number> {
  await registry.flushLog();
  return image.layers.reduce((n, layer) => n + registry.countRequests({ method: 'GET', kind: 'blob', pathIncludes: layer.digest }), 0);
}

async function settledUnderBudget(): Promise<void> {
  await waitFor(async () => (await cachedBytes(outpost.cacheDir)) <= budget, { what: 'the cache to be under budget', timeoutMs: 20_000 });
}

beforeAll(async () => {
  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  // Five images of ~42 MiB of incompressible layers: ~210 MiB in all.
  for (let n = 0; n < 5; n++) {
    const image = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 42 * MiB, seed: `budget-${n}` })] });
    images.push(image);
    await pushImage(registry.url, `budget/img${n}`, 'v1', image);
  }
  outpost = await startOutpost({ upstreamUrl: registry.url, env: { OUTPOST_CACHE_MAX_BYTES: '160MiB', OUTPOST_TAG_TTL: '1h' } });
  cleanup.add(() => outpost.dispose());
}, 300_000);
afterAll(() => cleanup.run());

describe('disk budget', () => {
  it('keeps ~210 MiB of pulls under a 160 MiB budget: the latest image whole, the oldest gone', async () => {
    for (let n = 0; n < 5; n++) await pull(n);
    await settledUnderBudget();
    const onDisk = await cachedBlobs(outpost.cacheDir);
    for (const layer of images[4]!.layers) expect(onDisk.has(layer.digest)).toBe(true);
    expect(onDisk.has(images[4]!.config.digest)).toBe(true);
    for (const layer of images[0]!.layers) expect(onDisk.has(layer.digest)).toBe(false);
    expect(await corruptBlobs(outpost.cacheDir)).toEqual([]);
  });

  it('re-pulls the latest image without an upstream blob GET and fetches the evicted one again', async () => {
    const latestBefore = await upstreamBlobGets(images[4]!);
    await pull(4);
    expect(await upstreamBlobGets(images[4]!)).toBe(latestBefore);
    const oldestBefore = await upstreamBlobGets(images[0]!);
    await pull(0);
    expect(await upstreamBlobGets(images[0]!)).toBe(oldestBefore + 1);
    await settledUnderBudget();
  });

  it('gives every concurrent pull correct bytes while eviction runs', async () => {
    await Promise.all([1, 2, 3].map((n) => pull(n)));
    await settledUnderBudget();
    expect(await corruptBlobs(outpost.cacheDir)).toEqual([]);
  });

  it('keeps the cache across a restart: a warm image pulls with no upstream blob GET', async () => {
    await pull(3); // the most recently used image
    const before = await upstreamBlobGets(images[3]!);
    await outpost.stop();
    await outpost.start();
    await pull(3);
    expect(await upstreamBlobGets(images[3]!)).toBe(before);
    expect(outpost.logs().some((l) => l.msg === 'cache index loaded' && (l.entries as number) > 0)).toBe(true);
  });
});
