/** The scrub: progress, corrupt blobs found and deleted, completion, a full run superseding a background one. */
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CacheScrub, type ScrubScope } from '../../../src/cache/cache-scrub.ts';
import type { IndexEntry } from '../../../src/cache/ports.ts';
import { digestOf, type Digest } from '../../../src/registry/digest.ts';
import { DiskBlobStore } from '../../../src/storage/disk-blob-store.ts';
import { cacheLayout, type CacheLayout } from '../../../src/storage/layout.ts';

const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

describe('CacheScrub', () => {
  let dir: string;
  let layout: CacheLayout;
  let store: DiskBlobStore;
  let entries: IndexEntry[];
  let corrupt: Digest[];

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'outpost-scrub-'));
    layout = cacheLayout(dir);
    corrupt = [];
    store = new DiskBlobStore(layout, { onCorrupt: (digest) => corrupt.push(digest) });
    await store.init();
    entries = [];
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function cached(size: number): Promise<Digest> {
    const data = randomBytes(size);
    const digest = digestOf(data);
    const bytes = await store.put(digest, data);
    entries.push({ digest, bytes, kind: 'blob', lastAccess: 0, size });
    return digest;
  }

  it('hashes every unverified blob, deletes the corrupt one and reports progress', async () => {
    const good = [await cached(300_000), await cached(5_000_000)];
    const bad = await cached(200_000);
    const handle = await open(layout.blobPath(bad), 'r+');
    await handle.write(Buffer.alloc(16), 0, 16, 1000);
    await handle.close();
    store.unverifiedBefore = Date.now() + 60_000;
    const completed: ScrubScope[] = [];
    const verified: [Digest, number][] = [];
    const scrub = new CacheScrub({
      store,
      entries: () => entries,
      bytesPerSecond: 0,
      logger: silent,
      onComplete: async (scope) => void completed.push(scope),
      onVerified: (digest, size) => void verified.push([digest, size]),
    });
    const started = scrub.start('unverified');
    expect(started).toMatchObject({ id: 1, running: true, total: 3, totalBytes: 5_500_000 });
    await scrub.settled();
    expect(scrub.status()).toMatchObject({ running: false, outcome: 'done', checked: 3, corrupt: 1, corruptDigests: [bad], bytes: 5_500_000 });
    expect(corrupt).toEqual([bad]);
    expect(completed).toEqual(['unverified']);
    expect(verified).toEqual([[good[0], 300_000], [good[1], 5_000_000]]); // sizes now known to be true
    // Verified now: a second background run reads nothing.
    scrub.start('unverified');
    await scrub.settled();
    expect(scrub.status()).toMatchObject({ id: 2, checked: 3, bytes: 0, corrupt: 0, missing: 1 });
  });

  it('lets `cache verify` (every blob) supersede a background run, and joins a full run in progress', async () => {
    await cached(1000);
    await cached(1000);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow = {
      verify: async (_digest: Digest, options: { signal: AbortSignal }) => {
        await Promise.race([gate, new Promise((_, reject) => options.signal.addEventListener('abort', () => reject(options.signal.reason)))]);
        return { result: 'ok' as const, bytes: 1000 };
      },
    };
    const scrub = new CacheScrub({ store: slow, entries: () => entries, bytesPerSecond: 0, logger: silent });
    const background = scrub.start('unverified');
    const full = scrub.start('all');
    expect(full.id).toBe(background.id + 1);
    expect(scrub.start('all').id).toBe(full.id); // joins
    expect(scrub.start('unverified').id).toBe(full.id); // covered
    release();
    await scrub.settled();
    expect(scrub.status()).toMatchObject({ id: full.id, scope: 'all', outcome: 'done', checked: 2 });
  });
});
