/**
 * A cache on a tiny filesystem (a tmpfs the test mounts; it runs as root):
 * filling up mid-fill, already full, or read-only — clients still pull
 * correct bytes, nothing half-written or corrupt stays behind, and /health
 * and /metrics show it.
 */
import { execFileSync } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cachedBytes, corruptBlobs } from '../support/cache-dir.ts';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { makeImage, makeLayer, pushImage, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { pullOciDigests } from '../support/skopeo.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';

const MiB = 1024 * 1024;
const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let outpost: OutpostNode;
let mountPoint: string;
const images: Image[] = [];

async function pull(n: number): Promise<void> {
  expect(await pullOciDigests(`${outpost.host}/full/img${n}:v1`)).toEqual([images[n]!.digest]);
}

async function health(): Promise<{ status: number; body: { checks: Record<string, { status: string; detail?: string }> } }> {
  const res = await request(`${outpost.url}/health`);
  return { status: res.statusCode, body: (await res.body.json()) as never };
}

async function metric(name: string): Promise<number> {
  const text = await (await request(`${outpost.url}/metrics`)).body.text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

beforeAll(async () => {
  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  for (let n = 0; n < 3; n++) {
    const image = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 40 * MiB, seed: `full-${n}` })] });
    images.push(image);
    await pushImage(registry.url, `full/img${n}`, 'v1', image);
  }
  mountPoint = await makeTempDir('tmpfs');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mountPoint]);
  cleanup.add(() => removeTempDir(mountPoint));
  cleanup.add(() => execFileSync('umount', ['-l', mountPoint]));
  // The budget (10 GiB by default) is far larger than the 24 MiB filesystem: the disk, not the budget, runs out.
  outpost = await startOutpost({ upstreamUrl: registry.url, cacheDir: mountPoint });
  cleanup.add(() => outpost.dispose());
}, 180_000);
afterAll(() => cleanup.run());

describe('a cache disk that fills up', () => {
  it('finishes a pull whose layer does not fit, from the primary, and keeps nothing half-written', async () => {
    await pull(0);
    // The disk ran out mid-fill and the reader carried on from the primary with a ranged GET.
    expect(outpost.logs().some((l) => l.msg === 'cache write failed mid-fill; readers continue from the primary')).toBe(true);
    expect(await readdir(path.join(mountPoint, 'ingest'))).toEqual([]);
    expect(await corruptBlobs(mountPoint)).toEqual([]);
    expect(await metric('outpost_cache_write_failures_total')).toBeGreaterThan(0);
    expect(await metric('outpost_cache_writable')).toBe(0);
    // Whichever worker answers the probe knows: the failure is shared host-wide.
    for (let i = 0; i < 4; i++) {
      const res = await request(`${outpost.url}/health`, { reset: true });
      const body = (await res.body.json()) as { checks: Record<string, { status: string }> };
      expect(res.statusCode).toBe(200);
      expect(body.checks.cache_writes?.status).toBe('degraded');
    }
  });

  it('streams through uncached when the disk is already full', async () => {
    const free = Number(execFileSync('df', ['--output=avail', '-B1', mountPoint]).toString().split('\n')[1]);
    await writeFile(path.join(mountPoint, 'filler'), Buffer.alloc(Math.max(0, free - 4096)));
    const before = await cachedBytes(mountPoint);
    await pull(1);
    expect(await cachedBytes(mountPoint)).toBeLessThanOrEqual(before + 8192);
    expect(await readdir(path.join(mountPoint, 'ingest'))).toEqual([]);
    expect(await corruptBlobs(mountPoint)).toEqual([]);
  });

  it('keeps serving from a read-only cache and fails /health so load balancers move away, while /livez stays 200', async () => {
    execFileSync('mount', ['-o', 'remount,ro', mountPoint]);
    try {
      await pull(2);
      await pull(0);
      const { status, body } = await health();
      expect(status).toBe(503);
      expect(body.checks.cache_dir?.status).toBe('failing');
      // Liveness: restarting the node would not make the volume writable (Kubernetes probes /livez for liveness).
      const live = await request(`${outpost.url}/livez`);
      expect(live.statusCode).toBe(200);
      expect(await live.body.json()).toEqual({ alive: true });
    } finally {
      execFileSync('mount', ['-o', 'remount,rw', mountPoint]);
    }
  });
});
