/**
 * The cold-fill hot path against a real distribution primary (behind the
 * fault proxy, to hold a fill observably in progress or corrupt it): many
 * concurrent cold GETs make one upstream GET; a slow client does not hold
 * back a fast one; a Range during a fill gets a 206 with the right bytes;
 * HEAD and GET agree mid-fill; a blob too large to cache is fetched once for
 * the concurrent clients of a worker; a lying primary mid-fill breaks every
 * client's connection.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { pushBlob } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { waitFor } from '../support/wait.ts';

const MiB = 1024 * 1024;
const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let proxy: FaultProxy;
let outpost: OutpostNode;

const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

async function newBlob(repo: string, size: number): Promise<{ bytes: Buffer; digest: string }> {
  const bytes = randomBytes(size);
  const digest = sha256(bytes);
  await pushBlob(registry.url, repo, { bytes, digest, size, mediaType: 'application/octet-stream' });
  return { bytes, digest };
}

/** GETs a blob and reads it all; `broken` when the connection ended before a complete body. */
async function getWhole(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers });
  const hash = createHash('sha256');
  let size = 0;
  let broken = false;
  try {
    for await (const chunk of res.body) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } catch {
    broken = true;
  }
  return { status: res.statusCode, headers: res.headers, size, digest: `sha256:${hash.digest('hex')}`, broken };
}

const blobGets = (digest: string): number => proxy.countRequests({ method: 'GET', kind: 'blob', pathIncludes: digest });

beforeAll(async () => {
  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  proxy = await startFaultProxy({ target: registry.url });
  cleanup.add(() => proxy.stop());
  outpost = await startOutpost({ upstreamUrl: proxy.url, env: { OUTPOST_TAG_TTL: '1h' } });
  cleanup.add(() => outpost.dispose());
}, 120_000);

afterAll(() => cleanup.run());

describe('cold fills', () => {
  it('32 concurrent cold GETs make one upstream GET and every body is correct', async () => {
    const { bytes, digest } = await newBlob('fill/many', 24 * MiB);
    const results = await Promise.all(Array.from({ length: 32 }, () => getWhole(`${outpost.url}/v2/fill/many/blobs/${digest}`)));
    for (const result of results) expect(result).toMatchObject({ status: 200, size: bytes.length, digest, broken: false });
    expect(blobGets(digest)).toBe(1);
  }, 60_000);

  it('lets a fast client finish while a slow one has not read, and the slow one still gets the right bytes', async () => {
    const { bytes, digest } = await newBlob('fill/slow', 64 * MiB);
    const url = `${outpost.url}/v2/fill/slow/blobs/${digest}`;
    // The slow client asks first (so it may be the fill's own client) and then reads nothing.
    const slow = await request(url);
    let slowBytes = 0;
    const fast = await getWhole(url);
    expect(fast).toMatchObject({ status: 200, size: bytes.length, digest, broken: false });
    // Bytes delivered, not time: the whole body reached the fast client while the slow one had read none
    // (were the fast one held back by the slow one, it would never finish and the test would time out).
    const hash = createHash('sha256');
    for await (const chunk of slow.body) {
      hash.update(chunk as Buffer);
      slowBytes += (chunk as Buffer).length;
    }
    expect({ status: slow.statusCode, size: slowBytes, digest: `sha256:${hash.digest('hex')}` }).toEqual({ status: 200, size: bytes.length, digest });
    expect(blobGets(digest)).toBe(1);
  }, 60_000);

  it('answers a Range during a fill with 206 and the right bytes, and HEAD agrees with GET mid-fill', async () => {
    const { bytes, digest } = await newBlob('fill/range', 8 * MiB);
    const url = `${outpost.url}/v2/fill/range/blobs/${digest}`;
    const rule = proxy.addFault({ mode: 'slowBlob', bytesPerSecond: 2 * MiB }, { when: (r) => r.path.includes(digest) && r.method === 'GET' });
    try {
      const whole = getWhole(url);
      // The fill is observably in progress: the primary has sent some of the blob, not all.
      await waitFor(() => proxy.requests({ method: 'GET', kind: 'blob', pathIncludes: digest }).some((r) => r.bytesSent > 2 * MiB), {
        what: 'the fill to be under way',
        timeoutMs: 20_000,
      });
      const head = await request(url, { method: 'HEAD' });
      await head.body.dump();
      const ranged = await request(url, { headers: { range: 'bytes=1048576-2097151' } });
      expect(proxy.requests({ method: 'GET', kind: 'blob', pathIncludes: digest }).every((r) => !r.completed)).toBe(true);
      expect(ranged.statusCode).toBe(206);
      expect(ranged.headers['content-range']).toBe(`bytes 1048576-2097151/${bytes.length}`);
      expect(ranged.headers['content-length']).toBe(String(MiB));
      const part = Buffer.from(await ranged.body.arrayBuffer());
      expect(part.equals(bytes.subarray(MiB, 2 * MiB))).toBe(true);
      // A resume from the middle to the end, the way containerd and dockerd continue a download.
      const resumed = await getWhole(url, { range: `bytes=${5 * MiB}-` });
      expect(resumed).toMatchObject({ status: 206, size: bytes.length - 5 * MiB, digest: sha256(bytes.subarray(5 * MiB)), broken: false });
      const got = await whole;
      expect(got).toMatchObject({ status: 200, size: bytes.length, digest, broken: false });
      for (const name of ['content-length', 'content-type', 'docker-content-digest', 'etag', 'accept-ranges']) {
        expect(head.headers[name], name).toEqual(got.headers[name]);
      }
      expect(head.statusCode).toBe(200);
      expect(blobGets(digest)).toBe(1);
    } finally {
      rule.remove();
    }
  }, 60_000);

  it('breaks every client connection when the primary sends wrong bytes mid-fill, and caches nothing', async () => {
    const { bytes, digest } = await newBlob('fill/lying', 6 * MiB);
    const rule = proxy.addFault({ mode: 'corruptBlob' }, { when: (r) => r.path.includes(digest) });
    try {
      const results = await Promise.all(Array.from({ length: 8 }, () => getWhole(`${outpost.url}/v2/fill/lying/blobs/${digest}`).catch(() => undefined)));
      for (const result of results) {
        // Never a complete-looking body: an error status, or a body broken before its end.
        if (result === undefined || result.status !== 200) continue;
        expect(result.broken || result.size < bytes.length).toBe(true);
      }
    } finally {
      rule.remove();
    }
    const after = await getWhole(`${outpost.url}/v2/fill/lying/blobs/${digest}`);
    expect(after).toMatchObject({ status: 200, size: bytes.length, digest, broken: false });
  }, 60_000);
});

describe('a blob larger than the cache budget', () => {
  let small: OutpostNode;

  beforeAll(async () => {
    // Two workers: the stream-through transfer is shared inside a process, and with the other worker through its sibling endpoint.
    small = await startOutpost({ upstreamUrl: proxy.url, workers: 2, env: { OUTPOST_CACHE_MAX_BYTES: '4MiB' } });
    cleanup.add(() => small.dispose());
  }, 60_000);

  it('is fetched once for 12 concurrent clients on both workers, every body correct and verified, nothing cached', async () => {
    const { bytes, digest } = await newBlob('fill/huge', 24 * MiB);
    // A primary at 6 MiB/s: the clients all arrive while the shared window (8 MiB) still holds the first byte.
    const rule = proxy.addFault({ mode: 'slowBlob', bytesPerSecond: 6 * MiB }, { when: (r) => r.path.includes(digest) && r.method === 'GET' });
    try {
      const results = await Promise.all(Array.from({ length: 12 }, () => getWhole(`${small.url}/v2/fill/huge/blobs/${digest}`)));
      for (const result of results) expect(result).toMatchObject({ status: 200, size: bytes.length, digest, broken: false });
      expect(blobGets(digest)).toBe(1);
      expect(results.filter((r) => r.headers['x-outpost-cache'] === 'passthrough')).toHaveLength(1);
      // Both workers answered clients; the one not streaming read the blob from the other's sibling endpoint.
      const accessLines = (module: string) => small.logs().filter((l) => l['msg'] === 'request' && l['module'] === module);
      await waitFor(() => accessLines('http').filter((l) => l['reference'] === digest).length === 12, { what: 'the access log lines of the 12 GETs' });
      expect(new Set(accessLines('http').filter((l) => l['reference'] === digest).map((l) => l['pid'])).size).toBe(2);
      await waitFor(() => accessLines('sibling').some((l) => l['status'] === 200 && l['complete'] === true), { what: 'a sibling transfer in the access log' });
    } finally {
      rule.remove();
    }
    expect(await readdir(path.join(small.cacheDir, 'blobs'), { recursive: true }).catch(() => [])).not.toContainEqual(expect.stringContaining(digest.slice(7)));
  }, 60_000);

  it('completes the other worker\'s clients with the right bytes when the worker streaming the blob is killed mid-transfer', async () => {
    const { bytes, digest } = await newBlob('fill/huge-killed', 24 * MiB);
    const rule = proxy.addFault({ mode: 'slowBlob', bytesPerSecond: 6 * MiB }, { when: (r) => r.path.includes(digest) && r.method === 'GET' });
    try {
      const url = `${small.url}/v2/fill/huge-killed/blobs/${digest}`;
      const pending = Array.from({ length: 12 }, () => getWhole(url).catch(() => undefined));
      const streamer = () => small.logs().find((l) => l['digest'] === digest && String(l['msg']).includes('streaming through uncached'))?.['pid'] as number | undefined;
      await waitFor(() => streamer() !== undefined, { what: 'a worker streaming the blob through' });
      // Past the shared window: every client is on the transfer by now.
      await waitFor(() => proxy.requests({ method: 'GET', kind: 'blob', pathIncludes: digest }).some((r) => r.bytesSent > 10 * MiB), { what: 'the transfer to pass 10 MiB', timeoutMs: 20_000 });
      process.kill(streamer()!, 'SIGKILL');
      const results = await Promise.all(pending);
      const complete = results.filter((r) => r !== undefined && r.status === 200 && !r.broken);
      // The killed worker's own clients are cut off; the other worker's continue from the primary (a Range each).
      expect(complete.length).toBeGreaterThan(0);
      expect(complete.length).toBeLessThan(12);
      for (const result of complete) expect(result).toMatchObject({ size: bytes.length, digest });
      expect(proxy.requests({ method: 'GET', kind: 'blob', pathIncludes: digest }).filter((r) => r.status === 206)).toHaveLength(complete.length);
    } finally {
      rule.remove();
    }
    // The killed worker is replaced: the node serves on.
    await waitFor(
      async () => {
        const res = await request(`${small.url}/v2/`);
        await res.body.dump();
        return res.statusCode === 200;
      },
      { what: 'the node to answer again' },
    );
  }, 60_000);

  it('answers a Range of a blob streamed through with 206 and the right bytes, having read and verified it whole', async () => {
    const { bytes, digest } = await newBlob('fill/huge-range', 12 * MiB);
    const url = `${small.url}/v2/fill/huge-range/blobs/${digest}`;
    // A resume from the middle to the end, the way containerd and dockerd continue a download.
    const resumed = await getWhole(url, { range: `bytes=${5 * MiB}-` });
    expect(resumed).toMatchObject({ status: 206, size: bytes.length - 5 * MiB, digest: sha256(bytes.subarray(5 * MiB)), broken: false });
    expect(resumed.headers['x-outpost-cache']).toBe('passthrough');
    const part = await request(url, { headers: { range: 'bytes=1048576-2097151' } });
    expect(part.statusCode).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes 1048576-2097151/${bytes.length}`);
    expect(Buffer.from(await part.body.arrayBuffer()).equals(bytes.subarray(MiB, 2 * MiB))).toBe(true);
  }, 60_000);

  it('breaks every client when the primary lies about a blob streamed through', async () => {
    const { bytes, digest } = await newBlob('fill/huge-lying', 12 * MiB);
    const rule = proxy.addFault({ mode: 'corruptBlob' }, { when: (r) => r.path.includes(digest) });
    try {
      const url = `${small.url}/v2/fill/huge-lying/blobs/${digest}`;
      const results = await Promise.all(Array.from({ length: 6 }, () => getWhole(url).catch(() => undefined)));
      for (const result of results) {
        if (result === undefined || result.status !== 200) continue;
        expect(result.broken || result.size < bytes.length).toBe(true);
      }
      // A range, even one that ends long before the lie: its last byte waits for the whole blob's check.
      const ranged = await getWhole(url, { range: 'bytes=0-1048575' }).catch(() => undefined);
      if (ranged !== undefined && ranged.status === 206) expect(ranged.broken || ranged.size < MiB).toBe(true);
    } finally {
      rule.remove();
    }
  }, 60_000);
});
