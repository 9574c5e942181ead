/**
 * The cold-fill hot path (fill-feed.ts): readers of a fill in the leader's
 * process are fed from the bytes as they arrive, not from the partial file;
 * a slow reader falls back to the file (cached) or its own ranged fetch
 * (uncached) and never holds the others or memory; a Range during a fill
 * starts where it asks and holds its last byte until the fill is verified;
 * a blob that is streamed through uncached is fetched once for every
 * concurrent reader of the process.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobSource } from '../../../src/cache/blob-source.ts';
import { BlobService, type BlobServiceOptions } from '../../../src/cache/blob-service.ts';
import { FillFeed } from '../../../src/cache/fill-feed.ts';
import { noopIndexReporter, noopObserver, type BlobStore } from '../../../src/cache/ports.ts';
import { MemoryFillCoordinator } from '../../../src/coordination/memory-fill-coordinator.ts';
import { digestOf } from '../../../src/registry/digest.ts';
import { DiskBlobStore } from '../../../src/storage/disk-blob-store.ts';
import { cacheLayout } from '../../../src/storage/layout.ts';
import { waitFor } from '../../support/wait.ts';
import { FakeUpstream, heldBlobBody } from '../../support/fake-upstream.ts';
import { everyBlobLinked } from '../../support/memory-cache-ports.ts';

const silent = { debug() {}, info() {}, warn() {}, error() {} };
const KiB = 1024;
const signal = (): AbortSignal => new AbortController().signal;

/** A reader of a source, one read at a time, the way HTTP sends it. */
function reader(source: BlobSource, start = 0) {
  let position = start;
  const received: Buffer[] = [];
  const read = async (length = 256 * KiB): Promise<number> => {
    const buffer = Buffer.allocUnsafe(length);
    const n = await source.read(buffer, position, length);
    position += n;
    if (n > 0) received.push(Buffer.from(buffer.subarray(0, n)));
    return n;
  };
  return {
    read,
    get position() {
      return position;
    },
    body: () => Buffer.concat(received),
    async readAtLeast(bytes: number): Promise<void> {
      while (position - start < bytes) if ((await read()) === 0) throw new Error('ended early');
    },
    /** Reads to the end like a client, then waits for the fill to end (the last byte comes before the blob is durable). */
    async rest(): Promise<Buffer> {
      try {
        while ((await read()) > 0);
        await source.settled?.();
      } finally {
        await source.close();
      }
      return Buffer.concat(received);
    },
  };
}

/** Waits for a condition, bounded. */
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A DiskBlobStore that counts partial-file opens and reads (what the fan-out saves). */
function countingStore(inner: DiskBlobStore) {
  const counts = { partialOpens: 0, partialBytes: 0 };
  const store: BlobStore = {
    stat: (d) => inner.stat(d),
    open: (d) => inner.open(d),
    put: (d, data) => inner.put(d, data),
    remove: (d) => inner.remove(d),
    beginIngest: (d, size, onProgress) => inner.beginIngest(d, size, onProgress),
    async openPartial(partialPath) {
      const file = await inner.openPartial(partialPath);
      if (!file) return file;
      counts.partialOpens += 1;
      return {
        async read(buffer, position, length) {
          const n = await file.read(buffer, position, length);
          counts.partialBytes += n;
          return n;
        },
        close: () => file.close(),
      };
    },
    discardPartial: (p) => inner.discardPartial(p),
    sweep: () => inner.sweep(),
  };
  return { store, counts };
}

describe('the fill fan-out', () => {
  let dir: string;
  let disk: DiskBlobStore;
  let upstream: FakeUpstream;
  const target = () => ({ upstream, upstreamKey: 'registry.test', name: 'library/app' });

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'outpost-fanout-'));
    disk = new DiskBlobStore(cacheLayout(dir));
    await disk.init();
    upstream = new FakeUpstream();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function service(overrides: Partial<BlobServiceOptions> = {}): BlobService {
    return new BlobService({
      links: everyBlobLinked,
      store: disk,
      coordinator: new MemoryFillCoordinator(),
      observer: noopObserver,
      index: noopIndexReporter,
      logger: silent,
      stallTimeoutMs: 5_000,
      cacheable: () => true,
      ...overrides,
    });
  }

  it('feeds every reader of the process from memory: one upstream GET, no partial-file read, all bodies correct', async () => {
    const blob = randomBytes(3 * 1024 * KiB + 11);
    const digest = digestOf(blob);
    const body = new PassThrough();
    upstream.blobBody = () => ({ size: blob.length, body });
    const { store, counts } = countingStore(disk);
    const blobs = service({ store });
    const sources = await Promise.all(Array.from({ length: 8 }, () => blobs.open(target(), digest, signal())));
    const bodies = Promise.all(sources.map((s) => reader(s).rest()));
    for (let at = 0; at < blob.length; at += 64 * KiB) body.write(blob.subarray(at, at + 64 * KiB));
    body.end();
    for (const got of await bodies) expect(got.equals(blob)).toBe(true);
    expect(upstream.count('GET blob')).toBe(1);
    expect(counts.partialOpens).toBe(0);
    expect(counts.partialBytes).toBe(0);
    expect(await disk.stat(digest)).toEqual({ size: blob.length });
  });

  it('lets a fast reader get every byte but the last while a slow one reads nothing; the slow one then reads the file', async () => {
    const blob = randomBytes(2 * 1024 * KiB);
    const digest = digestOf(blob);
    const body = new PassThrough();
    upstream.blobBody = () => ({ size: blob.length, body });
    const { store, counts } = countingStore(disk);
    const blobs = service({ store, fanOut: { windowBytes: 128 * KiB } });
    const fast = reader(await blobs.open(target(), digest, signal()));
    const slow = reader(await blobs.open(target(), digest, signal()));
    body.write(blob.subarray(0, 64 * KiB));
    await slow.read(16 * KiB); // on the feed, then stops reading
    body.write(blob.subarray(64 * KiB, blob.length - 1000));
    // Bytes delivered, not time: the fast reader gets everything that arrived (but the held-back last byte).
    await fast.readAtLeast(blob.length - 1000);
    expect(fast.position).toBe(blob.length - 1000);
    expect(slow.position).toBe(16 * KiB);
    body.end(blob.subarray(blob.length - 1000));
    expect((await fast.rest()).equals(blob)).toBe(true);
    expect(counts.partialOpens).toBe(0);
    // The slow reader fell out of the window: it continues from the file, with the right bytes.
    expect((await slow.rest()).equals(blob)).toBe(true);
    expect(upstream.count('GET blob')).toBe(1);
  });

  it('keeps the window bounded however far the fill runs ahead of its readers', () => {
    const feed = new FillFeed({ digest: digestOf(Buffer.from('x')), windowBytes: 256 * KiB, kind: 'cached', size: undefined, partialPath: '/p' });
    const hash = createHash('sha256');
    const slow = feed.reader(0)!;
    for (let i = 0; i < 64; i++) {
      feed.push(Buffer.alloc(64 * KiB), hash.copy());
      feed.persisted((i + 1) * 64 * KiB);
      // A reader that has yet to read keeps chunks up to the hard cap (2 windows), never more.
      expect(feed.windowHeld).toBeLessThanOrEqual(2 * 256 * KiB);
    }
    expect(feed.windowHeld).toBeGreaterThan(256 * KiB);
    expect(slow.read(Buffer.alloc(KiB), KiB, feed.end)).toBe('behind');
    slow.close();
    // Without a reader that needs them, what the file holds leaves the window down to its size.
    feed.push(Buffer.alloc(64 * KiB), hash.copy());
    feed.persisted(65 * 64 * KiB);
    expect(feed.windowHeld).toBeLessThanOrEqual(256 * KiB);
    const late = feed.reader(feed.start)!;
    // Not yet in the file: kept whatever the window says, so a reader that falls behind finds its bytes somewhere.
    feed.push(Buffer.alloc(256 * KiB), hash.copy());
    expect(feed.windowHeld).toBeGreaterThanOrEqual(2 * 256 * KiB);
    expect(late.read(Buffer.alloc(KiB), KiB, feed.end)).toBe(KiB);
  });

  it('answers a Range mid-fill from where it starts, holding its last byte until the fill is verified', async () => {
    const blob = randomBytes(1024 * KiB);
    const digest = digestOf(blob);
    const body = new PassThrough();
    upstream.blobBody = () => ({ size: blob.length, body });
    const blobs = service();
    const leader = reader(await blobs.open(target(), digest, signal()));
    const ranged = await blobs.open(target(), digest, signal());
    expect(ranged.seekable).toBe(true);
    ranged.willReadRange!(300 * KiB, 400 * KiB);
    body.write(blob.subarray(0, 600 * KiB));
    const part = reader(ranged, 300 * KiB);
    await part.readAtLeast(100 * KiB); // bytes 300 KiB … 400 KiB − 1, as they arrived
    expect(part.body().equals(blob.subarray(300 * KiB, 400 * KiB))).toBe(true);
    let last = false;
    const lastByte = part.read(1).then((n) => {
      last = true;
      return n;
    });
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(last).toBe(false); // the range's last byte waits for the verified fill
    body.end(blob.subarray(600 * KiB));
    expect(await lastByte).toBe(1);
    expect(part.body().equals(blob.subarray(300 * KiB, 400 * KiB + 1))).toBe(true);
    await ranged.close();
    expect((await leader.rest()).equals(blob)).toBe(true);
  });

  it('breaks a Range mid-fill whose fill turns out to be wrong bytes, before its last byte', async () => {
    const blob = randomBytes(512 * KiB);
    const digest = digestOf(blob);
    const wrong = Buffer.from(blob);
    wrong[wrong.length - 1]! ^= 0xff;
    const body = new PassThrough();
    upstream.blobBody = () => ({ size: blob.length, body });
    const blobs = service();
    const leader = reader(await blobs.open(target(), digest, signal()));
    const ranged = await blobs.open(target(), digest, signal());
    ranged.willReadRange!(100 * KiB, 200 * KiB);
    const part = reader(ranged, 100 * KiB);
    const reading = part.rest();
    body.end(wrong);
    await expect(reading).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
    expect(part.position - 100 * KiB).toBeLessThanOrEqual(100 * KiB);
    await expect(leader.rest()).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
  });

  describe('a blob that cannot be cached', () => {
    it('is fetched once for every concurrent reader of the process, all bodies correct', async () => {
      const blob = randomBytes(1024 * KiB + 5);
      const digest = digestOf(blob);
      const body = new PassThrough();
      upstream.blobBody = () => ({ size: blob.length, body });
      const blobs = service({ cacheable: () => false });
      const sources = await Promise.all(Array.from({ length: 6 }, () => blobs.open(target(), digest, signal())));
      expect(sources.map((s) => s.result).sort()).toEqual(['coalesced', 'coalesced', 'coalesced', 'coalesced', 'coalesced', 'passthrough']);
      const bodies = Promise.all(sources.map((s) => reader(s).rest()));
      for (let at = 0; at < blob.length; at += 32 * KiB) body.write(blob.subarray(at, at + 32 * KiB));
      body.end();
      for (const got of await bodies) expect(got.equals(blob)).toBe(true);
      expect(upstream.count('GET blob')).toBe(1);
      expect(await disk.stat(digest)).toBeUndefined();
    });

    it('cuts every reader off before the last byte when the bytes do not match', async () => {
      const blob = randomBytes(300 * KiB);
      const digest = digestOf(blob);
      const wrong = Buffer.from(blob);
      wrong[10]! ^= 0xff;
      const body = new PassThrough();
      upstream.blobBody = () => ({ size: blob.length, body });
      const blobs = service({ cacheable: () => false });
      const sources = await Promise.all(Array.from({ length: 4 }, () => blobs.open(target(), digest, signal())));
      body.end(wrong);
      for (const source of sources) {
        const r = reader(source);
        await expect(r.rest()).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
        expect(r.position).toBeLessThan(blob.length);
      }
      expect(upstream.count('GET blob')).toBe(1);
    });

    it('cuts off a reader that holds the others back past the grace: it continues with its own ranged fetch, verified', async () => {
      const blob = randomBytes(1024 * KiB);
      const digest = digestOf(blob);
      upstream.blobs.set(digest, blob);
      // The primary's body in 16 KiB chunks, held after the first 32 KiB.
      const held = heldBlobBody(blob, 32 * KiB, 16 * KiB);
      upstream.blobBody = held.body;
      const blobs = service({ cacheable: () => false, fanOut: { windowBytes: 64 * KiB, laggardGraceMs: 50 } });
      const fast = reader(await blobs.open(target(), digest, signal()));
      const slow = reader(await blobs.open(target(), digest, signal()));
      expect(upstream.count('GET blob')).toBe(1);
      await slow.readAtLeast(20 * KiB);
      await fast.readAtLeast(20 * KiB);
      held.release();
      expect((await fast.rest()).equals(blob)).toBe(true);
      expect((await slow.rest()).equals(blob)).toBe(true);
      // One transfer for both, plus the slow reader's own fetch of the rest, from where it was.
      const [whole, from = 0, ...more] = upstream.blobGetStarts(digest);
      expect([whole, more]).toEqual([0, []]);
      expect(from).toBeGreaterThanOrEqual(20 * KiB);
      expect(from).toBeLessThan(blob.length);
    });

    it('stops the transfer when every reader left', async () => {
      const blob = randomBytes(1024 * KiB);
      const digest = digestOf(blob);
      const body = new PassThrough();
      upstream.blobBody = () => ({ size: blob.length, body });
      const blobs = service({ cacheable: () => false, fanOut: { windowBytes: 64 * KiB } });
      const only = await blobs.open(target(), digest, signal());
      body.write(blob.subarray(0, 256 * KiB));
      await only.close();
      await until('the origin body to be destroyed', () => body.destroyed);
    });
  });

  it('serves a peer a Range of a fill in progress from where it starts', async () => {
    const blob = randomBytes(512 * KiB);
    const digest = digestOf(blob);
    const body = new PassThrough();
    upstream.blobBody = () => ({ size: blob.length, body });
    const blobs = service();
    const leader = reader(await blobs.open(target(), digest, signal()));
    body.write(blob.subarray(0, 300 * KiB));
    const forPeer = await blobs.openForPeer(digest, signal());
    expect(forPeer.seekable).toBe(true);
    forPeer.willReadRange!(200 * KiB, blob.length - 1);
    const part = reader(forPeer, 200 * KiB);
    await part.readAtLeast(100 * KiB - 1);
    expect(part.body().equals(blob.subarray(200 * KiB, part.position))).toBe(true);
    body.end(blob.subarray(300 * KiB));
    expect((await part.rest()).equals(blob.subarray(200 * KiB))).toBe(true);
    expect((await leader.rest()).equals(blob)).toBe(true);
  });

  it('answers HEAD of a blob being filled from the fill, without asking the primary', async () => {
    const blob = randomBytes(200 * KiB);
    const digest = digestOf(blob);
    const body = new PassThrough();
    upstream.blobBody = () => ({ size: blob.length, body });
    const blobs = service();
    const leader = reader(await blobs.open(target(), digest, signal()));
    expect(await blobs.stat(target(), digest, signal())).toEqual({ size: blob.length, result: 'coalesced' });
    expect(upstream.count('HEAD blob')).toBe(0);
    body.end(blob);
    expect((await leader.rest()).equals(blob)).toBe(true);
  });

  it('hands out the last byte once the digest matches, without waiting for the disk; the blob is cached once durable', async () => {
    const blob = randomBytes(300 * KiB + 5);
    const digest = digestOf(blob);
    let releaseSync!: () => void;
    const syncGate = new Promise<void>((resolve) => (releaseSync = resolve));
    let syncing = false;
    const slowDisk = new DiskBlobStore(cacheLayout(dir), {
      sync: { file: async () => ((syncing = true), await syncGate), dir: async () => undefined },
    });
    await slowDisk.init();
    const body = new PassThrough();
    upstream.blobBody = () => ({ size: blob.length, body });
    const blobs = service({ store: slowDisk });
    const source = await blobs.open(target(), digest, signal());
    const client = reader(source);
    body.end(blob);
    while (client.position < blob.length) expect(await client.read()).toBeGreaterThan(0);
    expect(client.body().equals(blob)).toBe(true);
    expect(await client.read()).toBe(0);
    // The whole verified body is out, and the file is still being flushed: not in the cache yet.
    await waitFor(() => syncing, { what: 'the fill to flush its file', timeoutMs: 5_000 });
    expect(await slowDisk.stat(digest)).toBeUndefined();
    const settled = source.settled!();
    releaseSync();
    await settled;
    expect(await slowDisk.stat(digest)).toEqual({ size: blob.length });
    await source.close();
  });

  it('hands a reader on the window views of the chunks the primary sent, copied nowhere, the last byte once verified', async () => {
    const blob = randomBytes(1024 * KiB + 3);
    const digest = digestOf(blob);
    const sent: Buffer[] = [];
    for (let at = 0; at < blob.length; at += 64 * KiB) sent.push(Buffer.from(blob.subarray(at, at + 64 * KiB)));
    let end!: () => void;
    const ended = new Promise<void>((resolve) => (end = resolve));
    // One chunk per read, as the primary's socket hands them over; the body ends when the test says.
    const body = Readable.from(
      (async function* () {
        yield* sent;
        await ended;
      })(),
    );
    upstream.blobBody = () => ({ size: blob.length, body });
    const source = await service().open(target(), digest, signal());
    const received: Buffer[] = [];
    let position = 0;
    while (position < blob.length - 1) {
      const views = await source.readViews!(position, 256 * KiB);
      expect(views).toBeDefined();
      for (const view of views!) {
        expect(sent.some((chunk) => chunk.buffer === view.buffer)).toBe(true);
        received.push(view);
        position += view.length;
      }
    }
    expect(position).toBe(blob.length - 1); // the last byte waits for the digest
    end();
    const last = await source.readViews!(position, 256 * KiB);
    expect(last!.reduce((n, v) => n + v.length, 0)).toBe(1);
    received.push(...last!);
    expect(await source.readViews!(blob.length, 256 * KiB)).toEqual([]);
    expect(Buffer.concat(received).equals(blob)).toBe(true);
    await source.settled!();
    await source.close();
  });

  it('never hands out the last byte of a body that does not match its digest, however early it is all there', async () => {
    const blob = randomBytes(300 * KiB + 5);
    const digest = digestOf(blob);
    const lie = Buffer.from(blob);
    lie[lie.length - 1]! ^= 0xff;
    const body = new PassThrough();
    upstream.blobBody = () => ({ size: blob.length, body });
    const blobs = service();
    const client = reader(await blobs.open(target(), digest, signal()));
    body.end(lie);
    await expect(client.rest()).rejects.toThrow();
    expect(client.position).toBeLessThan(blob.length);
    expect(await disk.stat(digest)).toBeUndefined();
  });
});
