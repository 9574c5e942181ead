/**
 * The host's eviction policy (one per host, run by the cluster primary).
 * Workers send it batches of touches and additions; it alone decides and
 * carries out evictions (through {@link BlobFiles}: readers with a file open
 * keep reading), sweeps retention, persists the LRU order, keeps the pins,
 * and answers stats, listings and purges for the admin service.
 *
 * It also decides what the last run's end means: `load` consumes the
 * clean-shutdown marker, and after an unclean shutdown deletes torn blobs
 * (size not the recorded one) and sets the time before which blobs are
 * unverified; `stop` writes the marker last. Partial files a dead worker
 * left behind count against the budget until they are swept.
 *
 * Sees only ports: the files, the snapshot and the crash markers are
 * storage/'s (see layout.ts for where each lives on disk).
 */
import type { Digest } from '../registry/digest.ts';
import { EvictionIndex, type IndexBatch } from './eviction-index.ts';
import {
  noopIndexObserver,
  type BlobFiles,
  type Clock,
  type CrashMarkers,
  type EvictionReason,
  type IndexEntry,
  type IndexObserver,
  type IndexPersistence,
  type IngestLeftovers,
  type Logger,
} from './ports.ts';

export interface EvictionServiceOptions {
  files: BlobFiles;
  persistence: IndexPersistence;
  markers: CrashMarkers;
  leftovers: IngestLeftovers;
  clock: Clock;
  logger: Logger;
  observer?: IndexObserver;
  maxBytes: number;
  highWatermark: number;
  lowWatermark: number;
  retentionMs: number;
  /** Sweep `retentionMs` on its own timer (default true); false when the cluster primary schedules sweeps (retention schedule or rules). */
  periodicRetention?: boolean;
  snapshotIntervalMs?: number;
  /** How long a dead worker's partial files stay (counted) before they are swept (default 10 s). */
  orphanGraceMs?: number;
  /** Told which digests left this node's disk (eviction, retention, purge, corruption): the replica set's location index drops them. */
  onRemoved?: (digests: Digest[]) => void;
}

export interface LoadResult {
  entries: number;
  ms: number;
  /** Whether the last run stopped cleanly. */
  clean: boolean;
  /** Blobs deleted because their size was not the recorded one. */
  torn: number;
  /** Blobs older than this (mtime, ms) are unverified; undefined when all are verified. */
  unverifiedBefore: number | undefined;
}

export interface CacheStats {
  bytes: number;
  maxBytes: number;
  entries: number;
  blobs: number;
  manifests: number;
  pinned: number;
  evictions: number;
  evictedBytes: number;
}

export class EvictionService {
  readonly index: EvictionIndex;
  private readonly observer: IndexObserver;
  private dirty = false;
  private evicting = false;
  private evictions = 0;
  private evictedBytes = 0;
  private timers: NodeJS.Timeout[] = [];
  private pinSources = new Map<string, Digest[]>();
  /** Partial files of dead workers: path → what they take on disk and their mtime when found. */
  private orphans = new Map<string, { bytes: number; mtimeMs: number }>();
  private orphanTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: EvictionServiceOptions) {
    this.index = new EvictionIndex({
      maxBytes: options.maxBytes,
      highWatermark: options.highWatermark,
      lowWatermark: options.lowWatermark,
      retentionMs: options.retentionMs,
      clock: options.clock,
    });
    this.observer = options.observer ?? noopIndexObserver;
    this.observer.budget(options.maxBytes);
  }

  /**
   * Rebuilds the index from what is persisted and the files really there;
   * then brings usage under budget. After an unclean shutdown every file's
   * size is checked, torn ones are deleted, and the unverified-before time
   * is set later than every blob's mtime (in whole seconds), so each blob
   * is hashed before it is trusted again.
   */
  async load(): Promise<LoadResult> {
    const { markers, persistence, files, logger, clock } = this.options;
    const started = performance.now();
    const clean = await markers.consumeCleanShutdown();
    const loaded = await persistence.load({ checkSizes: !clean });
    for (const digest of loaded.torn) await files.remove(digest);
    if (loaded.torn.length > 0) {
      this.observer.tornFiles(loaded.torn.length);
      logger.warn({ torn: loaded.torn.length, digests: loaded.torn.slice(0, 20) }, 'deleted cached blobs whose size is not the recorded size');
    }
    for (const entry of loaded.entries) this.index.add(entry.digest, entry.bytes, entry.kind, entry.lastAccess, entry.size);
    let unverifiedBefore = await markers.readUnverifiedBefore();
    if (!clean && loaded.entries.length > 0) {
      const after = Math.max(clock.now(), loaded.newestMtimeMs + 1, unverifiedBefore ?? 0);
      unverifiedBefore = Math.ceil(after / 1000) * 1000;
      await markers.writeUnverifiedBefore(unverifiedBefore);
      logger.warn({ blobs: loaded.entries.length, unverifiedBefore: new Date(unverifiedBefore).toISOString() }, 'unclean shutdown: cached blobs are verified before they are served again');
    }
    const ms = Math.round(performance.now() - started);
    logger.info(
      { entries: this.index.size, bytes: this.index.totalBytes, fromSnapshot: loaded.fromSnapshot, scanned: loaded.scanned, clean, ms },
      'cache index loaded',
    );
    this.updateGauges();
    await this.evict();
    return { entries: this.index.size, ms, clean, torn: loaded.torn.length, unverifiedBefore };
  }

  start(): void {
    const every = this.options.snapshotIntervalMs ?? 30_000;
    this.timers.push(setInterval(() => void this.snapshot(), every).unref());
    if (this.options.retentionMs > 0 && this.options.periodicRetention !== false) {
      const sweep = Math.min(Math.max(this.options.retentionMs / 10, 1_000), 3_600_000);
      this.timers.push(setInterval(() => void this.sweepRetention(), sweep).unref());
    }
  }

  /** A clean stop: the snapshot, then the clean-shutdown marker (last, so a crash before it counts as unclean). */
  async stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    if (this.orphanTimer) clearTimeout(this.orphanTimer);
    this.dirty = true;
    await this.snapshot();
    try {
      await this.options.markers.recordCleanShutdown();
    } catch (err) {
      this.options.logger.warn({ err: String(err) }, 'could not record the clean shutdown; the next start verifies the cache');
    }
  }

  apply(batch: IndexBatch): void {
    const now = this.options.clock.now();
    for (const [digest, bytes, kind, size] of batch.added) this.index.add(digest, bytes, kind, now, size);
    for (const digest of batch.touched) this.index.touch(digest, now);
    if (batch.added.length > 0 || batch.touched.length > 0) this.dirty = true;
    this.updateGauges();
    if (this.index.overHighWatermark()) void this.evict();
  }

  /** Evicts least recently used entries until usage is under the low watermark. */
  async evict(): Promise<number> {
    if (this.evicting) return 0;
    this.evicting = true;
    try {
      const victims = this.index.planEviction();
      await this.removeEntries(victims, 'budget');
      if (victims.length > 0) {
        this.options.logger.info(
          { evicted: victims.length, bytes: victims.reduce((n, v) => n + v.bytes, 0), usage: this.index.totalBytes, max: this.options.maxBytes },
          'evicted least recently used entries',
        );
      }
      return victims.length;
    } finally {
      this.evicting = false;
    }
  }

  async sweepRetention(): Promise<number> {
    const victims = this.index.planRetention();
    await this.removeEntries(victims, 'retention');
    if (victims.length > 0) this.options.logger.info({ evicted: victims.length }, 'evicted entries past retention');
    return victims.length;
  }

  /**
   * A retention sweep whose victims a policy chooses (retention rules,
   * cache/retention-policy.ts) among the entries, least recently used first;
   * pinned entries are never removed whatever it chooses.
   */
  async sweepRetentionOf(choose: (entries: IndexEntry[], pinned: ReadonlySet<Digest>) => Promise<IndexEntry[]>): Promise<{ evicted: number; bytes: number }> {
    const victims = (await choose([...this.index.entries()], this.index.pinnedDigests)).filter((entry) => !this.index.isPinned(entry.digest));
    await this.removeEntries(victims, 'retention');
    const bytes = victims.reduce((n, v) => n + v.bytes, 0);
    if (victims.length > 0) this.options.logger.info({ evicted: victims.length, bytes }, 'evicted entries past retention');
    return { evicted: victims.length, bytes };
  }

  async snapshot(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    try {
      await this.options.persistence.save(this.index.entries());
    } catch (err) {
      this.dirty = true;
      this.options.logger.warn({ err: String(err) }, 'could not write the cache index snapshot');
    }
  }

  stats(): CacheStats {
    let blobs = 0;
    let manifests = 0;
    for (const entry of this.index.entries()) {
      if (entry.kind === 'blob') blobs += 1;
      else manifests += 1;
    }
    return {
      bytes: this.index.totalBytes,
      maxBytes: this.options.maxBytes,
      entries: this.index.size,
      blobs,
      manifests,
      pinned: this.index.pinnedDigests.size,
      evictions: this.evictions,
      evictedBytes: this.evictedBytes,
    };
  }

  /** Most recently used first; `cursor` is the offset of the page. */
  list(limit: number, cursor: number): { entries: (IndexEntry & { pinned: boolean })[]; next: number | undefined } {
    const out: (IndexEntry & { pinned: boolean })[] = [];
    let i = 0;
    for (const entry of this.index.recent()) {
      if (i++ < cursor) continue;
      if (out.length >= limit) return { entries: out, next: cursor + limit };
      out.push({ ...entry, pinned: this.index.isPinned(entry.digest) });
    }
    return { entries: out, next: undefined };
  }

  /** Removes these digests, pinned or not; files the index did not know about go too. */
  async purgeDigests(digests: Digest[]): Promise<{ removed: number; bytes: number }> {
    const victims = digests.map((d) => this.index.get(d)).filter((e): e is IndexEntry => e !== undefined);
    await Promise.all(digests.map((d) => this.options.files.remove(d)));
    await this.removeEntries(victims, 'purge');
    const unindexed = digests.filter((d) => !victims.some((v) => v.digest === d) && !this.index.has(d));
    if (unindexed.length > 0) this.options.onRemoved?.(unindexed);
    return { removed: victims.length, bytes: victims.reduce((n, v) => n + v.bytes, 0) };
  }

  /** Removes every entry, pinned or not (the repositories' metadata is the admin service's to remove). */
  async purgeAll(): Promise<{ removed: number; bytes: number }> {
    const victims = [...this.index.entries()];
    const bytes = this.index.totalBytes;
    await this.removeEntries(victims, 'purge');
    return { removed: victims.length, bytes };
  }

  /** Pins: each reference resolves (in a worker) to the digests it protects. */
  setPin(reference: string, digests: Digest[]): void {
    this.pinSources.set(reference, digests);
    this.index.setPinned([...this.pinSources.values()].flat());
  }

  unpin(reference: string): boolean {
    const existed = this.pinSources.delete(reference);
    this.index.setPinned([...this.pinSources.values()].flat());
    return existed;
  }

  pins(): { reference: string; digests: number }[] {
    return [...this.pinSources.entries()].map(([reference, digests]) => ({ reference, digests: digests.length }));
  }

  /**
   * A blob found corrupt and deleted (by a worker's read or a scrub). A
   * fill may already have put a good copy back: then it stays indexed.
   */
  async dropped(digest: Digest): Promise<void> {
    const entry = this.index.remove(digest);
    this.dirty = true;
    this.updateGauges();
    const file = await this.options.files.inspect(digest).catch(() => undefined);
    if (file && !this.index.has(digest)) this.index.add(digest, file.bytes, entry?.kind ?? 'blob', this.options.clock.now(), file.size);
    else if (!file) this.options.onRemoved?.([digest]);
    this.updateGauges();
  }

  /** A blob hashed to its digest: record its size when the index did not know it (entries from a version-1 snapshot). */
  verifiedSize(digest: Digest, size: number): void {
    const entry = this.index.get(digest);
    if (!entry || entry.size !== undefined) return;
    entry.size = size;
    this.dirty = true;
  }

  /** A worker exited: the files it was writing are orphans, counted until swept after the grace period. */
  async workerExited(pid: number | undefined): Promise<void> {
    if (pid === undefined) return;
    for (const file of await this.options.leftovers.writtenBy(pid)) this.orphans.set(file.path, { bytes: file.bytes, mtimeMs: file.mtimeMs });
    this.countOrphans();
    if (this.orphans.size === 0) return;
    this.options.logger.info({ pid, files: this.orphans.size }, 'a worker left partial files; counted until swept');
    if (this.index.overHighWatermark()) void this.evict();
    this.scheduleOrphanSweep();
  }

  /** Deletes orphaned partial files nobody wrote to since they were found. */
  async sweepOrphans(): Promise<number> {
    const { leftovers } = this.options;
    let swept = 0;
    for (const [file, orphan] of [...this.orphans]) {
      const now = await leftovers.inspect(file);
      if (now && now.mtimeMs !== orphan.mtimeMs) {
        // Still written to: someone took it over. Look again later.
        this.orphans.set(file, { bytes: now.bytes, mtimeMs: now.mtimeMs });
        continue;
      }
      if (now) {
        await leftovers.remove(file);
        swept += 1;
      }
      this.orphans.delete(file);
    }
    this.countOrphans();
    if (this.orphans.size > 0) this.scheduleOrphanSweep();
    return swept;
  }

  private scheduleOrphanSweep(): void {
    this.orphanTimer ??= setTimeout(() => {
      this.orphanTimer = undefined;
      void this.sweepOrphans();
    }, this.options.orphanGraceMs ?? 10_000).unref();
  }

  private countOrphans(): void {
    let bytes = 0;
    for (const orphan of this.orphans.values()) bytes += orphan.bytes;
    this.index.setUntrackedBytes(bytes);
    this.updateGauges();
  }

  private async removeEntries(victims: IndexEntry[], reason: EvictionReason): Promise<void> {
    const { files, logger } = this.options;
    const removed: Digest[] = [];
    for (const victim of victims) {
      try {
        await files.remove(victim.digest);
      } catch (err) {
        logger.warn({ digest: victim.digest, err: String(err) }, 'could not remove a cache entry');
        continue;
      }
      const current = this.index.get(victim.digest);
      if (current === victim || current === undefined) {
        this.index.remove(victim.digest);
        removed.push(victim.digest);
      } else {
        // Re-added while the file was being removed (a fill landed): keep that entry, unless its file went too.
        const file = await files.inspect(victim.digest).catch(() => undefined);
        if (!file && this.index.get(victim.digest) === current) {
          this.index.remove(victim.digest);
          removed.push(victim.digest);
        }
      }
      this.evictions += 1;
      this.evictedBytes += victim.bytes;
      this.observer.evicted(reason, victim.bytes);
    }
    if (victims.length > 0) this.dirty = true;
    if (removed.length > 0) this.options.onRemoved?.(removed);
    this.updateGauges();
  }

  private updateGauges(): void {
    this.observer.usage(this.index.totalBytes, this.index.size);
  }
}
