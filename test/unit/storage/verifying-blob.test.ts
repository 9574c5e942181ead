/**
 * Blobs present before an unclean shutdown are unverified: reads hash them
 * and never hand out a complete wrong body; a match marks the file verified,
 * a mismatch deletes it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestOf, type Digest } from '../../../src/registry/digest.ts';
import { DiskBlobStore } from '../../../src/storage/disk-blob-store.ts';
import { cacheLayout, type CacheLayout } from '../../../src/storage/layout.ts';

const MiB = 1024 * 1024;

/** Overwrites `length` bytes at `position` with zeros, keeping the size (a zero-filled tail after a crash). */
async function zero(file: string, position: number, length: number): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    await handle.write(Buffer.alloc(length), 0, length, position);
  } finally {
    await handle.close();
  }
}

async function readWhole(blob: { read(b: Buffer, p: number, l: number): Promise<number>; size: number }, chunk = MiB): Promise<{ data: Buffer; reads: number }> {
  const out = Buffer.alloc(blob.size);
  let position = 0;
  let reads = 0;
  while (position < blob.size) {
    const buffer = Buffer.allocUnsafe(Math.min(chunk, blob.size - position));
    const n = await blob.read(buffer, position, buffer.length);
    if (n === 0) break;
    buffer.copy(out, position, 0, n);
    position += n;
    reads += 1;
  }
  return { data: out, reads };
}

describe('unverified blobs (after an unclean shutdown)', () => {
  let dir: string;
  let layout: CacheLayout;
  let store: DiskBlobStore;
  let corrupt: Digest[];
  const now = Date.now();

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'outpost-verify-'));
    layout = cacheLayout(dir);
    corrupt = [];
    store = new DiskBlobStore(layout, { onCorrupt: (digest) => corrupt.push(digest), clock: { now: () => now } });
    await store.init();
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function cached(size: number): Promise<{ data: Buffer; digest: Digest; file: string }> {
    const data = randomBytes(size);
    const digest = digestOf(data);
    await store.put(digest, data);
    return { data, digest, file: layout.blobPath(digest) };
  }

  /** What start-up does after a crash: everything on disk now is older than the cutoff. */
  function crash(): void {
    store.unverifiedBefore = Math.ceil((now + 60_000) / 1000) * 1000;
  }

  it('serves an intact blob whole while hashing it, then marks it verified for every later reader', async () => {
    const blob = await cached(6 * MiB + 7);
    const trusted = await store.open(blob.digest); // no crash yet: read plainly
    expect(trusted!.willReadWhole).toBeUndefined();
    await trusted!.close();
    crash();
    const opened = await store.open(blob.digest);
    opened!.willReadWhole?.();
    const { data } = await readWhole(opened!);
    await opened!.close();
    expect(data.equals(blob.data)).toBe(true);
    expect((await stat(blob.file)).mtimeMs).toBeGreaterThanOrEqual(store.unverifiedBefore!);
    expect(corrupt).toEqual([]);
    // Verified now: a later open reads the file plainly.
    const again = await store.open(blob.digest);
    expect(again!.willReadWhole).toBeUndefined();
    await again!.close();
  });

  it('holds the last bytes of a zero-tailed blob back, fails the read and deletes the file', async () => {
    const blob = await cached(6 * MiB);
    await zero(blob.file, 6 * MiB - 4096, 4096);
    crash();
    const opened = await store.open(blob.digest);
    opened!.willReadWhole?.();
    const buffer = Buffer.allocUnsafe(MiB);
    for (let i = 0; i < 5; i++) expect(await opened!.read(buffer, i * MiB, MiB)).toBe(MiB); // everything but the last chunk
    await expect(opened!.read(buffer, 5 * MiB, MiB)).rejects.toMatchObject({ code: 'BLOB_CORRUPT' });
    await opened!.close();
    await expect(stat(blob.file)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(corrupt).toEqual([blob.digest]);
    expect(await store.open(blob.digest)).toBeUndefined(); // the next request is a miss: it fetches again
  });

  it('fails the read of a truncated blob at its end', async () => {
    const blob = await cached(6 * MiB);
    await truncate(blob.file, 5 * MiB + 100);
    crash();
    const opened = await store.open(blob.digest);
    opened!.willReadWhole?.();
    await expect(readWhole(opened!)).rejects.toMatchObject({ code: 'BLOB_CORRUPT' });
    await opened!.close();
    expect(corrupt).toEqual([blob.digest]);
  });

  it('verifies the whole file before a range read returns anything', async () => {
    const blob = await cached(6 * MiB);
    await zero(blob.file, 0, 100);
    crash();
    const opened = await store.open(blob.digest);
    const buffer = Buffer.alloc(100, 0xff);
    await expect(opened!.read(buffer, 0, 100)).rejects.toMatchObject({ code: 'BLOB_CORRUPT' });
    expect(buffer.equals(Buffer.alloc(100, 0xff))).toBe(true); // no byte handed out
    await opened!.close();
    expect(corrupt).toEqual([blob.digest]);
  });

  it('checks a small blob whole when it is opened: a corrupt one is a miss, so no memory cache ever holds it', async () => {
    const blob = await cached(10_000);
    await zero(blob.file, 9_000, 1_000);
    crash();
    expect(await store.stat(blob.digest)).toBeUndefined();
    expect(await store.open(blob.digest)).toBeUndefined();
    expect(corrupt).toEqual([blob.digest]);
    const good = await cached(10_000);
    crash();
    const opened = await store.open(good.digest);
    expect((await opened!.readAll()).equals(good.data)).toBe(true);
    await opened!.close();
  });

  it('scrubs: skips verified blobs, verifies unverified ones, deletes corrupt ones', async () => {
    const intact = await cached(2 * MiB);
    const broken = await cached(2 * MiB);
    await zero(broken.file, MiB, 10);
    crash();
    expect(await store.verify(intact.digest)).toEqual({ result: 'ok', bytes: 2 * MiB });
    expect(await store.verify(intact.digest)).toEqual({ result: 'skipped', bytes: 0 });
    expect(await store.verify(intact.digest, { all: true })).toEqual({ result: 'ok', bytes: 2 * MiB });
    expect(await store.verify(broken.digest)).toMatchObject({ result: 'corrupt' });
    expect(await store.verify(broken.digest)).toMatchObject({ result: 'missing' });
    expect(corrupt).toEqual([broken.digest]);
  });
});
