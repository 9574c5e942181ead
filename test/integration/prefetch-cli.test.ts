/**
 * `outpost prefetch` against a real node in front of a real distribution
 * registry: the warm fetches the selected platform's blobs once, a pull
 * afterwards takes every blob from the cache (no blob GET reaches the
 * primary), and an image the primary does not have fails, named, exit 1.
 */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { makeImage, makeIndex, makeLayer, pushIndex, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { runProcess } from '../support/process.ts';
import { pullOciDigests } from '../support/skopeo.ts';

const MiB = 1024 * 1024;
const token = 'prefetch-admin-token';
const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let outpost: OutpostNode;
let amd64: Image;
let arm64: Image;

async function prefetch(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const result = await runProcess(process.execPath, ['--import', 'tsx', 'src/main.ts', 'prefetch', ...args, '--url', outpost.url], {
    env: { OUTPOST_ADMIN_TOKEN: token },
    timeoutMs: 120_000,
  });
  return { code: result.exitCode, out: result.stdout.toString('utf8'), err: result.stderr };
}

/** The finished line of `image` in the (non-terminal) output: blobs, MB, cached. */
function finished(out: string, image: string): { blobs: number; total: number; mb: number; cached: number } | undefined {
  const line = out.split('\n').find((l) => l.startsWith(`${image}  `));
  const match = /^\S+ {2}(\d+)\/(\d+) blobs {2}([\d.]+)\/([\d.]+) MB {2}done(?: \((\d+) already cached\))?$/.exec(line ?? '');
  if (!match) return undefined;
  return { blobs: Number(match[1]), total: Number(match[2]), mb: Number(match[4]), cached: Number(match[5] ?? 0) };
}

beforeAll(async () => {
  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  amd64 = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 6 * MiB, seed: 'prefetch-amd64-a' }), makeLayer({ sizeBytes: 2 * MiB, seed: 'prefetch-amd64-b' })] });
  arm64 = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 3 * MiB, seed: 'prefetch-arm64' })], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
  await pushIndex(registry.url, 'warm/app', 'v1', makeIndex([amd64, arm64], 'oci'), [amd64, arm64]);
  outpost = await startOutpost({ upstreamUrl: registry.url, env: { OUTPOST_ADMIN_TOKEN: token, OUTPOST_TAG_TTL: '1h' } });
  cleanup.add(() => outpost.dispose());
}, 180_000);
afterAll(() => cleanup.run());

describe('outpost prefetch', () => {
  it('warms one platform of an image, so a pull sends no blob GET to the primary', async () => {
    await registry.flushLog();
    registry.clearRequests();
    const warm = await prefetch('warm/app:v1', '--platform', 'linux/amd64');
    expect(warm.err).toBe('');
    expect(warm.code).toBe(0);
    const image = `${registry.host}/warm/app:v1`;
    const bytes = amd64.blobs.reduce((sum, b) => sum + b.size, 0);
    expect(finished(warm.out, image)).toEqual({ blobs: 3, total: 3, mb: Number((bytes / 1e6).toFixed(1)), cached: 0 });
    expect(warm.out).toContain('prefetch: 1 image: 1 warmed, 0 skipped, 0 failed; 3 blobs');
    await registry.flushLog();
    // Exactly the amd64 image's blobs, each once; nothing of arm64.
    for (const blob of amd64.blobs) expect(registry.countRequests({ method: 'GET', kind: 'blob', pathIncludes: blob.digest })).toBe(1);
    for (const blob of arm64.blobs) expect(registry.countRequests({ kind: 'blob', pathIncludes: blob.digest })).toBe(0);

    registry.clearRequests();
    expect(await pullOciDigests(`${outpost.host}/warm/app:v1`, { overrideArch: 'amd64', overrideOs: 'linux' })).toEqual([amd64.digest]);
    await registry.flushLog();
    expect(registry.countRequests({ method: 'GET', kind: 'blob' })).toBe(0);
  });

  it('reports the blobs already cached on a second warm', async () => {
    const again = await prefetch('warm/app:v1', '--platform=linux/amd64');
    expect(again.code).toBe(0);
    expect(finished(again.out, `${registry.host}/warm/app:v1`)).toMatchObject({ blobs: 3, cached: 3 });
  });

  it('exits 1 naming an image the primary does not have, after warming the others', async () => {
    const result = await prefetch('warm/nope:v1', 'warm/app:v1', '--platform', 'linux/arm64');
    expect(result.code).toBe(1);
    expect(result.err).toContain(`${registry.host}/warm/nope:v1`);
    expect(result.err).toContain('MANIFEST_UNKNOWN');
    expect(finished(result.out, `${registry.host}/warm/app:v1`)).toMatchObject({ blobs: 2, cached: 0 });
    expect(result.out).toContain('1 warmed, 0 skipped, 1 failed');
  });

  it('refuses a malformed list before warming anything (400), and a request without the token', async () => {
    const ask = async (body: unknown, auth = token) => {
      const res = await request(`${outpost.url}/api/v0/prefetch`, {
        method: 'POST',
        headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.statusCode, json: (await res.body.json()) as { errors: { code: string; message: string }[] } };
    };
    const bad = await ask({ images: ['warm/app:v1', 'Warm/App'] });
    expect(bad.status).toBe(400);
    expect(bad.json.errors[0]).toMatchObject({ code: 'NAME_INVALID', message: expect.stringContaining('images[1]') });
    expect((await ask({ images: ['ghcr.io/org/app:v1'] })).json.errors[0]?.code).toBe('NAME_UNKNOWN');
    expect((await ask({ images: [] })).status).toBe(400);
    expect((await ask({ images: ['warm/app:v1'], platforms: ['amd64'] })).status).toBe(400);
    expect((await ask({ images: ['warm/app:v1'] }, 'wrong')).status).toBe(401);
    const usage = await prefetch('Warm/App');
    expect(usage.code).toBe(2);
    expect(usage.err).toContain('NAME_INVALID');
  });
});
