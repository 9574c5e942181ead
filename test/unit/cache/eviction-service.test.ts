/**
 * The eviction service on memory adapters: evictions under the budget
 * that spare pins, retention, a re-add while a removal is pending, purges,
 * listings, crash recovery at load, corrupt blobs dropped, and the partial
 * files a dead worker left behind.
 */
import { describe, expect, it } from 'vitest';
import { EvictionService, type EvictionServiceOptions } from '../../../src/cache/eviction-service.ts';
import type { EvictionReason, IndexObserver } from '../../../src/cache/ports.ts';
import type { Digest } from '../../../src/registry/digest.ts';
import { MemoryBlobFiles, MemoryCrashMarkers, MemoryIndexPersistence, MemoryIngestLeftovers } from '../../support/memory-cache-ports.ts';

const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

function setup(overrides: Partial<EvictionServiceOptions> = {}) {
  let now = 1_000_000;
  const clock = { now: () => now };
  const files = new MemoryBlobFiles();
  const persistence = new MemoryIndexPersistence(files);
  const markers = new MemoryCrashMarkers();
  const leftovers = new MemoryIngestLeftovers();
  const evicted: [EvictionReason, number][] = [];
  const usage: number[] = [];
  let torn = 0;
  const observer: IndexObserver = {
    budget: () => undefined,
    usage: (bytes) => void usage.push(bytes),
    evicted: (reason, bytes) => void evicted.push([reason, bytes]),
    tornFiles: (count) => void (torn += count),
  };
  const make = (more: Partial<EvictionServiceOptions> = {}) =>
    new EvictionService({
      files,
      persistence,
      markers,
      leftovers,
      clock,
      logger: silent,
      observer,
      maxBytes: 1000,
      highWatermark: 0.9,
      lowWatermark: 0.5,
      retentionMs: 0,
      orphanGraceMs: 0,
      ...overrides,
      ...more,
    });
  return {
    service: make(),
    make,
    files,
    persistence,
    markers,
    leftovers,
    evicted,
    usage,
    torn: () => torn,
    advance: (ms: number) => (now += ms),
    now: () => now,
  };
}

/** A cached file of `bytes` on disk, and the batch that tells the service about it. */
function cache(files: MemoryBlobFiles, name: string, bytes: number): { digest: Digest; added: [Digest, number, 'blob', number] } {
  const digest = files.put(name, { bytes });
  return { digest, added: [digest, bytes, 'blob', Buffer.byteLength(name)] };
}

describe('EvictionService', () => {
  it('evicts least recently used entries down to the low watermark, never a pinned one', async () => {
    const { service, files, evicted, advance } = setup();
    const a = cache(files, 'a', 300);
    const b = cache(files, 'b', 300);
    const c = cache(files, 'c', 200);
    service.apply({ touched: [], added: [a.added] });
    advance(1);
    service.apply({ touched: [], added: [b.added] });
    advance(1);
    service.apply({ touched: [], added: [c.added] });
    service.setPin('library/app:1', [a.digest]); // the oldest, but pinned
    advance(1);
    const d = cache(files, 'd', 200);
    service.apply({ touched: [], added: [d.added] }); // 1000 > 900: eviction starts on its own
    await expect.poll(() => service.stats().evictions).toBe(2);
    expect(files.removed).toEqual([b.digest, c.digest]); // 1000 - 500 = 500 <= 500
    expect(files.has(a.digest)).toBe(true);
    expect(service.index.has(a.digest)).toBe(true);
    expect(evicted).toEqual([
      ['budget', 300],
      ['budget', 200],
    ]);
    expect(service.stats()).toMatchObject({ bytes: 500, entries: 2, pinned: 1, evictions: 2, evictedBytes: 500 });
    expect(service.pins()).toEqual([{ reference: 'library/app:1', digests: 1 }]);
  });

  it('sweeps entries not hit within the retention period, but keeps pinned and recently hit ones', async () => {
    const { service, files, evicted, advance } = setup({ retentionMs: 60_000, maxBytes: 1_000_000 });
    const old = cache(files, 'old', 10);
    const pinned = cache(files, 'pinned', 10);
    const hit = cache(files, 'hit', 10);
    service.apply({ touched: [], added: [old.added, pinned.added, hit.added] });
    service.setPin('library/app:1', [pinned.digest]);
    advance(30_000);
    service.apply({ touched: [hit.digest], added: [] });
    advance(40_000);
    expect(await service.sweepRetention()).toBe(1);
    expect(files.removed).toEqual([old.digest]);
    expect([...service.index.entries()].map((e) => e.digest)).toEqual([pinned.digest, hit.digest]);
    expect(evicted).toEqual([['retention', 10]]);
  });

  it('removes what a retention policy chooses, never a pinned entry whatever it chooses', async () => {
    const { service, files, evicted } = setup({ maxBytes: 1_000_000 });
    const a = cache(files, 'a', 10);
    const pinned = cache(files, 'pinned', 20);
    const kept = cache(files, 'kept', 30);
    service.apply({ touched: [], added: [a.added, pinned.added, kept.added] });
    service.setPin('library/app:1', [pinned.digest]);
    let offered: string[] = [];
    const result = await service.sweepRetentionOf(async (entries, pins) => {
      offered = entries.map((e) => e.digest);
      expect([...pins]).toEqual([pinned.digest]);
      return entries.filter((e) => e.digest !== kept.digest); // chooses the pinned one too
    });
    expect(offered).toEqual([a.digest, pinned.digest, kept.digest]); // least recently used first
    expect(result).toEqual({ evicted: 1, bytes: 10 });
    expect(files.removed).toEqual([a.digest]);
    expect(evicted).toEqual([['retention', 10]]);
  });

  it('does not sweep on its own timer when the primary schedules sweeps (periodicRetention: false)', () => {
    const { make } = setup({ retentionMs: 60_000 });
    const own = make();
    own.start();
    const scheduled = make({ periodicRetention: false });
    scheduled.start();
    // One timer for snapshots, one for retention; none for retention when scheduled elsewhere.
    expect((own as unknown as { timers: unknown[] }).timers).toHaveLength(2);
    expect((scheduled as unknown as { timers: unknown[] }).timers).toHaveLength(1);
    void own.stop();
    void scheduled.stop();
  });

  it('keeps an entry that is added again while its eviction is removing the file', async () => {
    const { service, files } = setup();
    const digest = files.put('evicted then filled again', { bytes: 950 });
    service.index.add(digest, 950, 'blob'); // over the high watermark
    const release = files.holdRemoves();
    const evicting = service.evict(); // the file is unlinked, the removal not finished
    // A fill lands while the removal is pending: its file is in place, and the index hears of it.
    files.put('evicted then filled again', { bytes: 960 });
    service.apply({ touched: [], added: [[digest, 960, 'blob', 25]] });
    release();
    await evicting;
    expect(service.index.get(digest)).toMatchObject({ bytes: 960, size: 25 });
  });

  it('forgets a re-added entry when its file went with the removal after all', async () => {
    const { service, files } = setup();
    const digest = files.put('evicted, re-added, then gone', { bytes: 950 });
    service.index.add(digest, 950, 'blob');
    const release = files.holdRemoves();
    const evicting = service.evict();
    service.apply({ touched: [], added: [[digest, 950, 'blob']] }); // the report came, but the removal took the file
    release();
    await evicting;
    expect(service.index.has(digest)).toBe(false);
  });

  it('purges digests, pinned or not, and files the index does not know', async () => {
    const { service, files, evicted } = setup({ maxBytes: 1_000_000 });
    const a = cache(files, 'a', 100);
    const unknown = files.put('on disk, not indexed', { bytes: 50 });
    service.apply({ touched: [], added: [a.added] });
    service.setPin('library/app:1', [a.digest]);
    expect(await service.purgeDigests([a.digest, unknown])).toEqual({ removed: 1, bytes: 100 });
    expect(files.files.size).toBe(0);
    expect(service.index.size).toBe(0);
    expect(evicted).toEqual([['purge', 100]]);
  });

  it('purges everything', async () => {
    const { service, files } = setup({ maxBytes: 1_000_000 });
    const a = cache(files, 'a', 100);
    const b = cache(files, 'b', 200);
    service.apply({ touched: [], added: [a.added, b.added] });
    service.setPin('library/app:1', [b.digest]);
    expect(await service.purgeAll()).toEqual({ removed: 2, bytes: 300 });
    expect(files.files.size).toBe(0);
    expect(service.stats()).toMatchObject({ bytes: 0, entries: 0 });
  });

  it('lists entries most recently used first, in pages, with their pins', () => {
    const { service, files, advance } = setup({ maxBytes: 1_000_000 });
    const [a, b, c] = ['a', 'b', 'c'].map((name) => cache(files, name, 10));
    for (const entry of [a!, b!, c!]) {
      service.apply({ touched: [], added: [entry.added] });
      advance(1);
    }
    service.setPin('library/app:1', [a!.digest]);
    const first = service.list(2, 0);
    expect(first.entries.map((e) => e.digest)).toEqual([c!.digest, b!.digest]);
    expect(first.next).toBe(2);
    const second = service.list(2, 2);
    expect(second.entries).toMatchObject([{ digest: a!.digest, pinned: true, kind: 'blob', bytes: 10 }]);
    expect(second.next).toBeUndefined();
  });

  it('after an unclean shutdown deletes torn blobs, and marks the rest unverified until after their newest mtime', async () => {
    const { make, files, persistence, markers, torn } = setup({ maxBytes: 1_000_000 });
    const intact = files.put('intact', { bytes: 4096, mtimeMs: 5_000_000 });
    const broken = files.put('torn', { bytes: 4096, mtimeMs: 1_000 });
    persistence.saved = [
      { digest: intact, bytes: 4096, kind: 'blob', lastAccess: 1, size: 6 },
      { digest: broken, bytes: 4096, kind: 'blob', lastAccess: 2, size: 9000 }, // not the size of the file now
    ];
    const service = make();
    const loaded = await service.load(); // no clean-shutdown marker
    expect(loaded).toMatchObject({ clean: false, torn: 1, entries: 1, unverifiedBefore: 5_001_000 });
    expect(files.removed).toEqual([broken]);
    expect(torn()).toBe(1);
    expect(markers.unverifiedBefore).toBe(5_001_000); // whole seconds, after the newest mtime
    await service.stop();
    expect(markers.calls.at(-1)).toBe('recordCleanShutdown'); // last, after the snapshot
    expect(persistence.saved?.map((e) => e.digest)).toEqual([intact]);

    const next = await make().load(); // a clean start trusts sizes; what is unverified stays unverified
    expect(next).toMatchObject({ clean: true, torn: 0, entries: 1, unverifiedBefore: 5_001_000 });
  });

  it('sets no unverified time after an unclean shutdown of an empty cache', async () => {
    const { service, markers } = setup();
    expect(await service.load()).toMatchObject({ clean: false, entries: 0, unverifiedBefore: undefined });
    expect(markers.calls).not.toContain('writeUnverifiedBefore');
  });

  it('brings a cache over budget under it at load', async () => {
    const { make, files, markers } = setup();
    markers.clean = true;
    files.put('old', { bytes: 600, mtimeMs: 1 });
    const recent = files.put('recent', { bytes: 400, mtimeMs: 2 });
    const service = make();
    await service.load();
    expect([...service.index.entries()].map((e) => e.digest)).toEqual([recent]);
  });

  it('snapshots only after a change, and tries again after a failed write', async () => {
    const { service, files, persistence } = setup({ maxBytes: 1_000_000 });
    await service.snapshot();
    expect(persistence.saves).toBe(0);
    service.apply({ touched: [], added: [cache(files, 'a', 10).added] });
    persistence.failSaves = true;
    await service.snapshot();
    persistence.failSaves = false;
    await service.snapshot();
    expect(persistence.saves).toBe(1);
    await service.snapshot();
    expect(persistence.saves).toBe(1);
  });

  it('forgets a corrupt blob a reader deleted, but keeps one a fill already put back', async () => {
    const { service, files, now } = setup({ maxBytes: 1_000_000 });
    const gone = cache(files, 'gone', 4096);
    service.apply({ touched: [], added: [gone.added] });
    files.files.delete(gone.digest); // the reader deleted it
    await service.dropped(gone.digest);
    expect(service.index.has(gone.digest)).toBe(false);
    const refilled = files.put('refilled', { bytes: 8192 });
    service.index.add(refilled, 4096, 'manifest', 1, 8);
    await service.dropped(refilled); // the corrupt copy was deleted, a good one is in place already
    expect(service.index.get(refilled)).toEqual({ digest: refilled, bytes: 8192, kind: 'manifest', lastAccess: now(), size: 8 });
  });

  it('learns the size of an entry from a version-1 snapshot once a scrub verified it, and never replaces one', () => {
    const { service, files } = setup();
    const digest = files.put('old entry');
    service.index.add(digest, 4096, 'blob', 1);
    service.verifiedSize(digest, 9);
    service.verifiedSize(digest, 10);
    expect(service.index.get(digest)?.size).toBe(9);
  });

  it('counts the partial files of a worker that died in the budget until they are swept', async () => {
    const { service, leftovers } = setup({ maxBytes: 1_000_000 });
    leftovers.write('ingest/a.4242-0.partial', 4242, 64 * 1024, 10);
    leftovers.write('ingest/b.4243-0.partial', 4243, 1024, 10);
    await service.workerExited(4242);
    expect(service.stats().bytes).toBe(64 * 1024);
    expect(await service.sweepOrphans()).toBe(1);
    expect(service.stats().bytes).toBe(0);
    expect([...leftovers.files.keys()]).toEqual(['ingest/b.4243-0.partial']);
  });

  it('keeps counting a dead worker\'s partial file that is still being written, and sweeps it once it stops', async () => {
    const { service, leftovers } = setup({ maxBytes: 1_000_000, orphanGraceMs: 60_000 });
    leftovers.write('ingest/a.4242-0.partial', 4242, 1024, 10);
    await service.workerExited(4242);
    leftovers.write('ingest/a.4242-0.partial', 4242, 2048, 20); // someone took it over
    expect(await service.sweepOrphans()).toBe(0);
    expect(service.stats().bytes).toBe(2048);
    expect(await service.sweepOrphans()).toBe(1);
    expect(leftovers.files.size).toBe(0);
    await service.stop();
  });

  it('evicts when a dead worker\'s partial files push usage over the high watermark', async () => {
    const { service, files, leftovers } = setup();
    const a = cache(files, 'a', 500);
    service.apply({ touched: [], added: [a.added] });
    leftovers.write('ingest/x.7-0.partial', 7, 450);
    await service.workerExited(7);
    await expect.poll(() => files.has(a.digest)).toBe(false);
  });
});
