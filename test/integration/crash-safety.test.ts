/**
 * Crash safety with a real node and a real distribution primary: the whole
 * node is killed (kill -9, primary and workers), cached blobs are torn the
 * ways a host crash tears them (truncated; zero-filled at the same size),
 * and the restarted node never sends a complete wrong body — it refetches,
 * or breaks the connection and heals on the next request. `outpost cache
 * verify` finds what nobody has read yet, and the metric counts it all.
 */
import { existsSync } from 'node:fs';
import { open, truncate } from 'node:fs/promises';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cachedBlobs, corruptBlobs } from '../support/cache-dir.ts';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { makeImage, makeLayer, pushImage, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { runProcess } from '../support/process.ts';
import { pullOciDigests } from '../support/skopeo.ts';
import { waitFor } from '../support/wait.ts';

const MiB = 1024 * 1024;
const token = 'crash-admin-token';
const repo = 'crash/app';
const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let outpost: OutpostNode;
let image: Image;
/** Blobs by role: each is torn differently after the crash. */
let blobs: Record<'truncated' | 'zeroTail' | 'zeroHead' | 'unread' | 'config', { digest: string; bytes: Buffer }>;

function blobFile(cacheDir: string, digest: string): string {
  const [algorithm, encoded] = digest.split(':') as [string, string];
  return path.join(cacheDir, 'blobs', algorithm, encoded.slice(0, 2), encoded);
}

/** Overwrites `length` bytes at `position` with zeros: same size, wrong content. */
async function zero(file: string, position: number, length: number): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    await handle.write(Buffer.alloc(length), 0, length, position);
  } finally {
    await handle.close();
  }
}

interface Answer {
  status: number;
  /** The whole body, when the response completed; undefined when the connection broke. */
  body: Buffer | undefined;
}

async function get(digest: string, headers: Record<string, string> = {}): Promise<Answer> {
  try {
    const res = await request(`${outpost.url}/v2/${repo}/blobs/${digest}`, { headers, headersTimeout: 30_000, bodyTimeout: 30_000 });
    try {
      return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) };
    } catch {
      return { status: res.statusCode, body: undefined };
    }
  } catch {
    return { status: 0, body: undefined };
  }
}

async function upstreamGets(digest: string): Promise<number> {
  await registry.flushLog();
  return registry.countRequests({ method: 'GET', kind: 'blob', pathIncludes: digest });
}

async function corruptCount(node: OutpostNode, check: 'size' | 'digest'): Promise<number> {
  const text = await (await request(`${node.url}/metrics`)).body.text();
  const line = text.split('\n').find((l) => l.startsWith(`outpost_cache_corrupt_files_total{check="${check}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

beforeAll(async () => {
  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  const layers = [6, 6, 6, 5].map((mib, i) => makeLayer({ sizeBytes: mib * MiB, seed: `crash-${i}` }));
  image = makeImage({ mediaTypes: 'oci', layers });
  await pushImage(registry.url, repo, 'v1', image);
  const [truncated, zeroTail, zeroHead, unread] = layers.map((l) => ({ digest: l.digest, bytes: l.bytes })) as [
    { digest: string; bytes: Buffer },
    { digest: string; bytes: Buffer },
    { digest: string; bytes: Buffer },
    { digest: string; bytes: Buffer },
  ];
  blobs = { truncated, zeroTail, zeroHead, unread, config: { digest: image.config.digest, bytes: image.config.bytes } };

  // Background scrub off: the read path must do the verifying here.
  outpost = await startOutpost({
    upstreamUrl: registry.url,
    workers: 2,
    env: { OUTPOST_ADMIN_TOKEN: token, OUTPOST_CACHE_SCRUB_RATE: '0', OUTPOST_TAG_TTL: '1h' },
  });
  cleanup.add(() => outpost.dispose());
  expect(await pullOciDigests(`${outpost.host}/${repo}:v1`)).toEqual([image.digest]);
  // A clean restart writes the index snapshot (with each blob's size); then the host "crashes".
  await outpost.stop();
  await outpost.start();
  await outpost.crash();

  const dir = outpost.cacheDir;
  await truncate(blobFile(dir, truncated.digest), 2 * MiB);
  await zero(blobFile(dir, zeroTail.digest), zeroTail.bytes.length - 64 * 1024, 64 * 1024);
  await zero(blobFile(dir, zeroHead.digest), 0, 4096);
  await zero(blobFile(dir, unread.digest), unread.bytes.length - 100, 100);
  await zero(blobFile(dir, blobs.config.digest), blobs.config.bytes.length - 10, 10);
  await outpost.start();
}, 300_000);
afterAll(() => cleanup.run());

describe('after a kill -9 of the whole node', () => {
  it('starts unclean: deletes the truncated blob (not its recorded size) and leaves the rest unverified', async () => {
    expect(outpost.logs().some((l) => l.msg === 'deleted cached blobs whose size is not the recorded size' && l.torn === 1)).toBe(true);
    expect(existsSync(blobFile(outpost.cacheDir, blobs.truncated.digest))).toBe(false);
    expect(existsSync(path.join(outpost.cacheDir, 'index', 'unverified-before'))).toBe(true);
    expect(await corruptCount(outpost, 'size')).toBe(1);
  });

  it('serves the truncated blob correctly, fetched once more from the primary', async () => {
    const before = await upstreamGets(blobs.truncated.digest);
    const answer = await get(blobs.truncated.digest);
    expect(answer.status).toBe(200);
    expect(answer.body?.equals(blobs.truncated.bytes)).toBe(true);
    expect(await upstreamGets(blobs.truncated.digest)).toBe(before + 1);
  });

  it('never completes a zero-tailed blob: the connection breaks, and the next request heals it', async () => {
    const before = await upstreamGets(blobs.zeroTail.digest);
    const first = await get(blobs.zeroTail.digest);
    // Either the right bytes (already refetched) or a broken connection — never a complete wrong body.
    if (first.body !== undefined) expect(first.body.equals(blobs.zeroTail.bytes)).toBe(true);
    expect(first.body).toBeUndefined(); // here: the read found it, held the last bytes back and broke off
    const second = await get(blobs.zeroTail.digest);
    expect(second.status).toBe(200);
    expect(second.body?.equals(blobs.zeroTail.bytes)).toBe(true);
    expect(await upstreamGets(blobs.zeroTail.digest)).toBe(before + 1);
    const third = await get(blobs.zeroTail.digest); // from the cache again
    expect(third.body?.equals(blobs.zeroTail.bytes)).toBe(true);
    expect(await upstreamGets(blobs.zeroTail.digest)).toBe(before + 1);
  });

  it('verifies the whole file before answering a Range request on an unverified blob', async () => {
    const before = await upstreamGets(blobs.zeroHead.digest);
    const ranged = await get(blobs.zeroHead.digest, { range: 'bytes=0-99' });
    if (ranged.body !== undefined) expect(ranged.body.equals(blobs.zeroHead.bytes.subarray(0, ranged.body.length))).toBe(true);
    expect(ranged.body).toBeUndefined();
    const whole = await get(blobs.zeroHead.digest);
    expect(whole.body?.equals(blobs.zeroHead.bytes)).toBe(true);
    expect(await upstreamGets(blobs.zeroHead.digest)).toBe(before + 1);
  });

  it('never keeps a corrupt small blob in memory: the first request already gets the right bytes', async () => {
    const before = await upstreamGets(blobs.config.digest);
    for (let i = 0; i < 4; i++) {
      const answer = await get(blobs.config.digest); // lands on either worker
      expect(answer.body?.equals(blobs.config.bytes)).toBe(true);
    }
    expect(await upstreamGets(blobs.config.digest)).toBe(before + 1);
  });

  it('`outpost cache verify` finds the blob nobody read, deletes it and exits non-zero; the metric counts every find', async () => {
    const result = await runProcess(process.execPath, ['--import', 'tsx', 'src/main.ts', 'cache', 'verify', '--url', outpost.url, '--interval-ms', '100'], {
      env: { OUTPOST_ADMIN_TOKEN: token },
      timeoutMs: 60_000,
    });
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toMatch(/verify: \d+\/\d+ files, [\d.]+\/[\d.]+ MiB, \d+ corrupt/);
    const status = JSON.parse(result.stdout.toString('utf8')) as { outcome: string; corrupt: number; corruptDigests: string[]; checked: number; total: number };
    expect(status).toMatchObject({ outcome: 'done', corrupt: 1, corruptDigests: [blobs.unread.digest] });
    expect(status.checked).toBe(status.total);
    expect(existsSync(blobFile(outpost.cacheDir, blobs.unread.digest))).toBe(false);
    // Everything left is intact, and the scrub covered every unverified blob.
    expect(await corruptBlobs(outpost.cacheDir)).toEqual([]);
    expect(existsSync(path.join(outpost.cacheDir, 'index', 'unverified-before'))).toBe(false);
    // zero-tailed, zero-headed, config and unread by their digest; the truncated one by its size.
    await waitFor(async () => (await corruptCount(outpost, 'digest')) === 4, { what: 'the corrupt-files metric to count 4 digest mismatches' });
    expect(await corruptCount(outpost, 'size')).toBe(1);
    const healed = await get(blobs.unread.digest);
    expect(healed.body?.equals(blobs.unread.bytes)).toBe(true);

    const clean = await runProcess(process.execPath, ['--import', 'tsx', 'src/main.ts', 'cache', 'verify', '--url', outpost.url, '--interval-ms', '100'], {
      env: { OUTPOST_ADMIN_TOKEN: token },
      timeoutMs: 60_000,
    });
    expect(clean.exitCode).toBe(0);
  });

  it('scrubs in the background after an unclean start when the scrub is on', async () => {
    await outpost.crash();
    const victim = blobs.zeroTail;
    await zero(blobFile(outpost.cacheDir, victim.digest), 1000, 10);
    const scrubbing = await startOutpost({
      upstreamUrl: registry.url,
      workers: 1,
      cacheDir: outpost.cacheDir,
      env: { OUTPOST_ADMIN_TOKEN: token, OUTPOST_CACHE_SCRUB_RATE: '64MiB' },
    });
    cleanup.add(() => scrubbing.dispose());
    await waitFor(() => !existsSync(path.join(scrubbing.cacheDir, 'index', 'unverified-before')), {
      what: 'the background scrub to verify the cache',
      timeoutMs: 60_000,
    });
    expect((await cachedBlobs(scrubbing.cacheDir)).has(victim.digest)).toBe(false);
    expect(await corruptBlobs(scrubbing.cacheDir)).toEqual([]);
    expect(await corruptCount(scrubbing, 'digest')).toBe(1);
    await scrubbing.stop();
  });
});
