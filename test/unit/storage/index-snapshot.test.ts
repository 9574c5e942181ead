/** The index snapshot records each blob's size; after an unclean shutdown a file of another size is reported torn. */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestOf, type Digest } from '../../../src/registry/digest.ts';
import { DiskBlobStore } from '../../../src/storage/disk-blob-store.ts';
import { loadIndex, snapshotPath, writeSnapshot } from '../../../src/storage/index-snapshot.ts';
import { cacheLayout, type CacheLayout } from '../../../src/storage/layout.ts';

describe('index snapshot', () => {
  let dir: string;
  let layout: CacheLayout;
  let store: DiskBlobStore;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'outpost-snapshot-'));
    layout = cacheLayout(dir);
    store = new DiskBlobStore(layout);
    await store.init();
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function cached(size: number): Promise<{ digest: Digest; bytes: number; size: number }> {
    const data = randomBytes(size);
    const digest = digestOf(data);
    return { digest, bytes: await store.put(digest, data), size };
  }

  it('records each entry\'s content size (format version 2)', async () => {
    const a = await cached(5000);
    await writeSnapshot(layout, [{ digest: a.digest, bytes: a.bytes, kind: 'blob', lastAccess: 1, size: a.size }]);
    const lines = (await readFile(snapshotPath(layout), 'utf8')).trim().split('\n');
    expect(lines).toEqual(['outpost-lru 2', `${a.digest} ${a.bytes} blob 1 5000`]);
    const loaded = await loadIndex(layout);
    expect(loaded.entries).toEqual([{ digest: a.digest, bytes: a.bytes, kind: 'blob', lastAccess: 1, size: 5000 }]);
  });

  it('reports a file whose size is not the recorded size, when sizes are checked (unclean start)', async () => {
    const intact = await cached(5000);
    const torn = await cached(9000);
    await writeSnapshot(layout, [
      { digest: intact.digest, bytes: intact.bytes, kind: 'blob', lastAccess: 1, size: intact.size },
      { digest: torn.digest, bytes: torn.bytes, kind: 'blob', lastAccess: 2, size: torn.size },
    ]);
    await truncate(layout.blobPath(torn.digest), 4096);
    const trusted = await loadIndex(layout); // a clean start does not stat what the snapshot knows
    expect(trusted.torn).toEqual([]);
    const checked = await loadIndex(layout, { checkSizes: true });
    expect(checked.torn).toEqual([torn.digest]);
    expect(checked.entries.map((e) => e.digest)).toEqual([intact.digest]);
    expect(checked.newestMtimeMs).toBeGreaterThan(0);
  });

  it('still loads a version 1 snapshot (no sizes)', async () => {
    const a = await cached(5000);
    await mkdir(path.dirname(snapshotPath(layout)), { recursive: true });
    await writeFile(snapshotPath(layout), `outpost-lru 1\n${a.digest} ${a.bytes} blob 42\n`);
    const loaded = await loadIndex(layout, { checkSizes: true });
    expect(loaded.fromSnapshot).toBe(1);
    expect(loaded.entries).toEqual([{ digest: a.digest, bytes: a.bytes, kind: 'blob', lastAccess: 42 }]);
    expect(loaded.torn).toEqual([]);
  });
});
