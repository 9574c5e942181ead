import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestOf } from '../../../src/registry/digest.ts';
import { DiskBlobStore } from '../../../src/storage/disk-blob-store.ts';
import { cacheLayout } from '../../../src/storage/layout.ts';

describe('DiskBlobStore', () => {
  let dir: string;
  let store: DiskBlobStore;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'outpost-store-'));
    store = new DiskBlobStore(cacheLayout(dir));
    await store.init();
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('publishes an ingest only after size and digest check out, reporting progress as bytes land', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 5);
    const digest = digestOf(data);
    const progress: number[] = [];
    const ingest = await store.beginIngest(digest, data.length, (n) => progress.push(n));
    for (let i = 0; i < data.length; i += 16 * 1024) await ingest.write(data.subarray(i, i + 16 * 1024));
    expect(await store.stat(digest)).toBeUndefined(); // not visible before commit
    const onDisk = await ingest.commit();
    expect(onDisk).toBeGreaterThanOrEqual(data.length);
    expect(progress.at(-1)).toBe(data.length);
    expect(progress.length).toBeLessThan(data.length / (16 * 1024)); // writes were coalesced
    const blob = await store.open(digest);
    expect((await blob!.readAll()).equals(data)).toBe(true);
    await blob!.close();
    expect(await readdir(path.join(dir, 'ingest'))).toEqual([]);
  });

  it('discards content whose digest or size does not match', async () => {
    const data = randomBytes(1000);
    const wrong = await store.beginIngest(digestOf(randomBytes(10)), data.length);
    await wrong.write(data);
    await expect(wrong.commit()).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    const short = await store.beginIngest(digestOf(data), data.length + 1);
    await short.write(data);
    await expect(short.commit()).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
    expect(await readdir(path.join(dir, 'ingest'))).toEqual([]);
    expect(await store.stat(digestOf(data))).toBeUndefined();
  });

  it('keeps serving an open blob after it is removed', async () => {
    const data = randomBytes(2 * 1024 * 1024);
    const digest = digestOf(data);
    await store.put(digest, data);
    const blob = await store.open(digest);
    await store.remove(digest);
    expect(await store.stat(digest)).toBeUndefined();
    expect((await blob!.readAll()).equals(data)).toBe(true);
    await blob!.close();
  });

  it('sweeps leftover temp files', async () => {
    await writeFile(path.join(dir, 'ingest', 'sha256-x.abc.partial'), 'junk');
    expect(await store.sweep()).toBe(1);
    expect(await readdir(path.join(dir, 'ingest'))).toEqual([]);
  });
});
