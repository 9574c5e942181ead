/**
 * The eviction service over the disk adapters, as the cluster primary wires
 * it: evictions that race with re-additions, crash recovery at load (torn
 * blobs deleted, the rest unverified), dropped corrupt blobs, partial files
 * a dead worker left behind; and the adapters' own edges (pins file,
 * purge of every repository, nothing outside `ingest/` touched).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EvictionService, type EvictionServiceOptions } from '../../../src/cache/eviction-service.ts';
import type { BlobFiles } from '../../../src/cache/ports.ts';
import { digestOf, type Digest } from '../../../src/registry/digest.ts';
import { DiskCrashMarkers, readUnverifiedBefore } from '../../../src/storage/crash-state.ts';
import { DiskBlobStore } from '../../../src/storage/disk-blob-store.ts';
import { DiskMetadataStore } from '../../../src/storage/disk-metadata-store.ts';
import { DiskPinStore } from '../../../src/storage/disk-pin-store.ts';
import { SnapshotIndexPersistence } from '../../../src/storage/index-snapshot.ts';
import { DiskIngestLeftovers } from '../../../src/storage/ingest-leftovers.ts';
import { cacheLayout, type CacheLayout } from '../../../src/storage/layout.ts';

const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

describe('EvictionService on disk', () => {
  let dir: string;
  let layout: CacheLayout;
  let store: DiskBlobStore;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'outpost-owner-'));
    layout = cacheLayout(dir);
    store = new DiskBlobStore(layout);
    await store.init();
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  function owner(overrides: Partial<EvictionServiceOptions> = {}): EvictionService {
    return new EvictionService({
      files: store,
      persistence: new SnapshotIndexPersistence(layout),
      markers: new DiskCrashMarkers(layout),
      leftovers: new DiskIngestLeftovers(layout),
      clock: { now: () => Date.now() },
      logger: silent,
      maxBytes: 1_000_000,
      highWatermark: 0.9,
      lowWatermark: 0.5,
      retentionMs: 0,
      orphanGraceMs: 0,
      ...overrides,
    });
  }

  async function cached(size: number): Promise<{ digest: Digest; bytes: number; size: number }> {
    const data = randomBytes(size);
    const digest = digestOf(data);
    return { digest, bytes: await store.put(digest, data), size };
  }

  it('keeps an entry that is added again while its eviction is removing the file', async () => {
    const digest = digestOf(Buffer.from('evicted then filled again'));
    let finishRemove: () => void = () => undefined;
    const slowFiles: BlobFiles = {
      inspect: (d) => store.inspect(d),
      remove: () =>
        new Promise<void>((resolve) => {
          finishRemove = resolve;
        }),
    };
    const o = owner({ files: slowFiles, maxBytes: 1000 });
    o.index.add(digest, 950, 'blob'); // over the high watermark
    const evicting = o.evict(); // removes the file: pending
    // A fill lands while rm is pending: its file is in place, and the index hears of it.
    await mkdir(path.dirname(layout.blobPath(digest)), { recursive: true });
    await writeFile(layout.blobPath(digest), randomBytes(900));
    o.apply({ touched: [], added: [[digest, 950, 'blob', 900]] });
    finishRemove();
    await evicting;
    expect(o.index.get(digest)).toMatchObject({ bytes: 950, size: 900 });
  });

  it('after an unclean shutdown deletes blobs whose size is not the recorded one and leaves the rest unverified', async () => {
    const first = owner();
    expect((await first.load()).unverifiedBefore).toBeUndefined(); // an empty cache has nothing to verify
    const intact = await cached(5000);
    const torn = await cached(9000);
    first.apply({ touched: [], added: [[intact.digest, intact.bytes, 'blob', intact.size], [torn.digest, torn.bytes, 'blob', torn.size]] });
    await first.snapshot(); // then the host dies: no clean stop
    await truncate(layout.blobPath(torn.digest), 4096);

    const second = owner();
    const loaded = await second.load();
    expect(loaded).toMatchObject({ clean: false, torn: 1, entries: 1 });
    await expect(stat(layout.blobPath(torn.digest))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(second.index.has(torn.digest)).toBe(false);
    const mtime = (await stat(layout.blobPath(intact.digest))).mtimeMs;
    expect(loaded.unverifiedBefore).toBeGreaterThan(mtime);
    expect(await readUnverifiedBefore(layout)).toBe(loaded.unverifiedBefore); // what workers read

    await second.stop(); // clean stop: the next start trusts sizes, unverified blobs stay unverified
    const third = owner();
    expect(await third.load()).toMatchObject({ clean: true, torn: 0, unverifiedBefore: loaded.unverifiedBefore });
    await third.stop();
  });

  it('forgets a corrupt blob a reader deleted, but keeps one a fill already put back', async () => {
    const o = owner();
    await o.load();
    const gone = digestOf(Buffer.from('gone'));
    o.apply({ touched: [], added: [[gone, 4096, 'blob', 4]] });
    await o.dropped(gone);
    expect(o.index.has(gone)).toBe(false);
    const refilled = await cached(3000);
    o.apply({ touched: [], added: [[refilled.digest, refilled.bytes, 'blob', refilled.size]] });
    await o.dropped(refilled.digest); // the corrupt copy was deleted, a good one is on disk already
    expect(o.index.get(refilled.digest)).toMatchObject({ bytes: refilled.bytes, size: 3000 });
  });

  it('learns the size of an entry from a version-1 snapshot once a scrub verified it', async () => {
    const o = owner();
    await o.load();
    const digest = digestOf(Buffer.from('old entry'));
    o.index.add(digest, 4096, 'blob', 1); // no size, as loaded from a version-1 snapshot
    o.verifiedSize(digest, 9);
    expect(o.index.get(digest)?.size).toBe(9);
    o.verifiedSize(digest, 10); // a recorded size is never replaced
    expect(o.index.get(digest)?.size).toBe(9);
  });

  it('counts the partial files of a worker that died in the budget until they are swept', async () => {
    const o = owner();
    await o.load();
    const dead = 4242;
    const orphan = path.join(layout.ingestDir, `sha256-${'a'.repeat(64)}.${dead}-0123456789ab.partial`);
    const live = path.join(layout.ingestDir, `sha256-${'b'.repeat(64)}.${dead + 1}-0123456789ab.partial`);
    await writeFile(orphan, randomBytes(64 * 1024));
    await writeFile(live, randomBytes(1024));
    await o.workerExited(dead);
    expect(o.stats().bytes).toBeGreaterThanOrEqual(64 * 1024);
    expect(await o.sweepOrphans()).toBe(1);
    expect(o.stats().bytes).toBe(0);
    expect(await readdir(layout.ingestDir)).toEqual([path.basename(live)]);
  });
});

describe('disk adapters of the eviction and admin services', () => {
  let dir: string;
  let layout: CacheLayout;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'outpost-adapters-'));
    layout = cacheLayout(dir);
    await mkdir(layout.ingestDir, { recursive: true });
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('keeps pins in index/pins.json, and reads a missing or foreign file as no pins', async () => {
    const pins = new DiskPinStore(layout);
    expect(await pins.load()).toEqual([]);
    await pins.save(['library/nginx:1.27', 'library/redis:7']);
    expect(JSON.parse(await readFile(path.join(dir, 'index', 'pins.json'), 'utf8'))).toEqual(['library/nginx:1.27', 'library/redis:7']);
    expect(await new DiskPinStore(layout).load()).toEqual(['library/nginx:1.27', 'library/redis:7']);
    await writeFile(layout.pinsPath, '{"not": "a list"');
    expect(await pins.load()).toEqual([]);
    await writeFile(layout.pinsPath, '["library/app:1", 42]');
    expect(await pins.load()).toEqual(['library/app:1']);
  });

  it('removes every repository of every upstream, and nothing else', async () => {
    const metadata = new DiskMetadataStore(layout);
    const digest = digestOf(Buffer.from('manifest'));
    await metadata.linkManifest('registry.test', 'library/app', digest);
    await metadata.linkManifest('mirror.test', 'library/other', digest);
    await metadata.putManifestMeta(digest, { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 8 });
    await metadata.removeAllRepositories();
    expect(await metadata.listRepositories('registry.test')).toEqual([]);
    expect(await metadata.listRepositories('mirror.test')).toEqual([]);
    expect(await metadata.getManifestMeta(digest)).toBeDefined();
    await metadata.removeAllRepositories(); // nothing left: still fine
  });

  it('never looks at or removes a file outside ingest/', async () => {
    const leftovers = new DiskIngestLeftovers(layout);
    const outside = path.join(dir, `x.4242-0123456789ab.partial`);
    await writeFile(outside, 'not in ingest');
    expect(await leftovers.inspect(outside)).toBeUndefined();
    await leftovers.remove(outside);
    expect(await readFile(outside, 'utf8')).toBe('not in ingest');
  });
});
