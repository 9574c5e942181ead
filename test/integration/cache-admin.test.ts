/** The admin API and `outpost cache` CLI against a running node: stats, listing, purges, pins that survive eviction. */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cachedBlobs } from '../support/cache-dir.ts';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { makeImage, makeLayer, pushImage, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { runProcess } from '../support/process.ts';
import { pullOciDigests } from '../support/skopeo.ts';
import { waitFor } from '../support/wait.ts';

const MiB = 1024 * 1024;
const token = 'admin-token-for-tests';
const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let outpost: OutpostNode;
const images: Image[] = [];

async function pull(n: number): Promise<void> {
  expect(await pullOciDigests(`${outpost.host}/admin/img${n}:v1`)).toEqual([images[n]!.digest]);
}

async function api(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, auth = token): Promise<{ status: number; json: any }> {
  const res = await request(`${outpost.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.statusCode, json: await res.body.json() };
}

async function cli(...args: string[]): Promise<{ code: number | null; out: any }> {
  const result = await runProcess(process.execPath, ['--import', 'tsx', 'src/main.ts', 'cache', ...args, '--url', outpost.url], {
    env: { OUTPOST_ADMIN_TOKEN: token },
    timeoutMs: 30_000,
  });
  const text = result.stdout.toString('utf8').trim();
  return { code: result.exitCode, out: text.startsWith('{') ? JSON.parse(text) : text };
}

beforeAll(async () => {
  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  for (let n = 0; n < 4; n++) {
    const image = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 20 * MiB, seed: `admin-${n}` })] });
    images.push(image);
    await pushImage(registry.url, `admin/img${n}`, 'v1', image);
  }
  outpost = await startOutpost({
    upstreamUrl: registry.url,
    env: { OUTPOST_ADMIN_TOKEN: token, OUTPOST_CACHE_MAX_BYTES: '50MiB', OUTPOST_TAG_TTL: '1h' },
  });
  cleanup.add(() => outpost.dispose());
}, 180_000);
afterAll(() => cleanup.run());

describe('admin API', () => {
  it('refuses requests without the admin token', async () => {
    const { status, json } = await api('GET', '/api/v0/cache/stats', undefined, 'wrong');
    expect(status).toBe(401);
    expect(json.errors[0].code).toBe('UNAUTHORIZED');
  });

  it('reports stats and lists entries, most recent first, paged', async () => {
    await pull(0);
    const stats = await cli('stats');
    expect(stats.code).toBe(0);
    expect(stats.out).toMatchObject({ maxBytes: 50 * MiB, blobs: expect.any(Number), manifests: expect.any(Number) });
    await waitFor(async () => (await api('GET', '/api/v0/cache/stats')).json.bytes >= 20 * MiB, { what: 'the index to count the pull' });
    const page = await api('GET', '/api/v0/cache/entries?limit=1');
    expect(page.status).toBe(200);
    expect(page.json.entries).toHaveLength(1);
    expect(page.json.next).toBe(1);
    const all = await cli('ls', '--limit', '100');
    const digests = all.out.entries.map((e: { digest: string }) => e.digest);
    expect(digests).toEqual(expect.arrayContaining([images[0]!.digest, images[0]!.layers[0]!.digest, images[0]!.config.digest]));
  });

  it('purges a digest, and the next pull fetches it again', async () => {
    const layer = images[0]!.layers[0]!.digest;
    const purged = await cli('purge', '--digest', layer);
    expect(purged.out).toMatchObject({ removed: 1 });
    expect((await cachedBlobs(outpost.cacheDir)).has(layer)).toBe(false);
    await registry.flushLog();
    const before = registry.countRequests({ method: 'GET', kind: 'blob', pathIncludes: layer });
    await pull(0);
    await registry.flushLog();
    expect(registry.countRequests({ method: 'GET', kind: 'blob', pathIncludes: layer })).toBe(before + 1);
  });

  it('purges a repository: its blobs and tags leave the cache and the catalog', async () => {
    await pull(1);
    const { status } = await api('POST', '/api/v0/cache/purge', { repository: 'admin/img1' });
    expect(status).toBe(200);
    const onDisk = await cachedBlobs(outpost.cacheDir);
    expect(onDisk.has(images[1]!.layers[0]!.digest)).toBe(false);
    expect(onDisk.has(images[1]!.digest)).toBe(false);
    const catalog = (await (await request(`${outpost.url}/v2/_catalog`)).body.json()) as { repositories: string[] };
    expect(catalog.repositories).not.toContain('admin/img1');
  });

  it('never evicts a pinned image, whatever else is pulled', async () => {
    const pinned = await cli('pin', 'admin/img0:v1');
    expect(pinned.code).toBe(0);
    expect(pinned.out).toMatchObject({ reference: 'admin/img0:v1', digests: 3 });
    for (const n of [1, 2, 3, 1, 2]) await pull(n); // 100 MiB of pulls through a 50 MiB budget
    await waitFor(async () => (await api('GET', '/api/v0/cache/stats')).json.evictions > 0, { what: 'evictions to happen' });
    const onDisk = await cachedBlobs(outpost.cacheDir);
    expect(onDisk.has(images[0]!.layers[0]!.digest)).toBe(true);
    expect(onDisk.has(images[0]!.digest)).toBe(true);
    const pins = await api('GET', '/api/v0/cache/pins');
    expect(pins.json.pins).toEqual([{ reference: 'admin/img0:v1', digests: 3 }]);
    const unpinned = await cli('unpin', 'admin/img0:v1');
    expect(unpinned.out).toMatchObject({ removed: true });
  });
});

describe('pins from the configuration', () => {
  it('resolves and caches a configured pin at start-up', async () => {
    const pinnedNode = await startOutpost({
      upstreamUrl: registry.url,
      workers: 1,
      env: { OUTPOST_ADMIN_TOKEN: token, OUTPOST_CACHE_PINS: 'admin/img3:v1' },
    });
    cleanup.add(() => pinnedNode.dispose());
    await waitFor(
      async () => {
        const res = await request(`${pinnedNode.url}/api/v0/cache/pins`, { headers: { authorization: `Bearer ${token}` } });
        const body = (await res.body.json()) as { pins: { reference: string; digests: number }[] };
        return body.pins.some((p) => p.reference === 'admin/img3:v1' && p.digests === 3);
      },
      { what: 'the configured pin to resolve', timeoutMs: 30_000 },
    );
    // Pinning fetched the whole image: it is on disk before anyone pulled it.
    const onDisk = await cachedBlobs(pinnedNode.cacheDir);
    expect(onDisk.has(images[3]!.layers[0]!.digest)).toBe(true);
    expect(onDisk.has(images[3]!.config.digest)).toBe(true);
  });
});

describe('retention', () => {
  it('evicts what has not been pulled within the retention period', async () => {
    const node = await startOutpost({ upstreamUrl: registry.url, workers: 1, env: { OUTPOST_CACHE_RETENTION: '2s' } });
    cleanup.add(() => node.dispose());
    expect(await pullOciDigests(`${node.host}/admin/img2:v1`)).toEqual([images[2]!.digest]);
    const layer = images[2]!.layers[0]!.digest;
    expect((await cachedBlobs(node.cacheDir)).has(layer)).toBe(true);
    await waitFor(async () => !(await cachedBlobs(node.cacheDir)).has(layer), { what: 'the unused layer to be evicted', timeoutMs: 20_000 });
    // The sweep logs once it has removed everything it chose: wait for the line rather than race it.
    await waitFor(() => node.logs().some((l) => l.msg === 'evicted entries past retention'), { what: 'the retention sweep log line', timeoutMs: 10_000 });
  });
});

describe('a pinned tag that moves', () => {
  it('moves the pin: the new image is fetched and protected without anyone pulling it', async () => {
    const first = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 1 * MiB, seed: 'moving-1' })] });
    const second = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 1 * MiB, seed: 'moving-2' })] });
    await pushImage(registry.url, 'admin/moving', 'v1', first);
    const node = await startOutpost({
      upstreamUrl: registry.url,
      workers: 1,
      env: { OUTPOST_ADMIN_TOKEN: token, OUTPOST_CACHE_PINS: 'admin/moving:v1', OUTPOST_TAG_TTL: '1s' },
    });
    cleanup.add(() => node.dispose());
    await waitFor(async () => (await cachedBlobs(node.cacheDir)).has(first.layers[0]!.digest), { what: 'the pinned image to be cached', timeoutMs: 30_000 });
    await pushImage(registry.url, 'admin/moving', 'v1', second);
    await waitFor(async () => (await cachedBlobs(node.cacheDir)).has(second.layers[0]!.digest), {
      what: 'the pin to follow the moved tag',
      timeoutMs: 30_000,
    });
  });
});

describe('admin API switched off', () => {
  it('answers UNSUPPORTED when no admin token is configured', async () => {
    const plain = await startOutpost({ upstreamUrl: registry.url, workers: 1 });
    cleanup.add(() => plain.dispose());
    const res = await request(`${plain.url}/api/v0/cache/stats`, { headers: { authorization: 'Bearer anything' } });
    expect(res.statusCode).toBe(405);
    expect(((await res.body.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('UNSUPPORTED');
  });
});
