/**
 * The per-host owner of the eviction index (runs in the cluster primary).
 * Workers send it batches of touches and additions; it alone decides and
 * performs evictions (unlink: readers with the file open keep reading),
 * sweeps retention, persists the LRU order, and answers the admin API.
 *
 * It also knows how the last run ended: `load` consumes the clean-shutdown
 * marker, and after an unclean shutdown deletes torn blobs (size not the
 * recorded one) and sets the time before which blobs are unverified;
 * `stop` writes the marker last. Partial files a dead worker left in
 * `ingest/` count against the budget until they are swept.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { EvictionIndex, type IndexBatch, type IndexEntry } from '../cache/eviction-index.ts';
import type { BlobStore, Clock, Logger } from '../cache/ports.ts';
import type { PrimaryMetrics } from '../observability/metrics.ts';
import { writerPid, type CacheLayout } from '../storage/layout.ts';
import type { Digest } from '../registry/digest.ts';
import { consumeCleanShutdown, readUnverifiedBefore, recordCleanShutdown, writeUnverifiedBefore } from '../storage/crash-state.ts';
import { diskBytes } from '../storage/disk-blob-store.ts';
import type { FileSync } from '../storage/file-sync.ts';
import { loadIndex, writeSnapshot } from '../storage/index-snapshot.ts';

export interface IndexOwnerOptions {
  layout: CacheLayout;
  store: BlobStore;
  clock: Clock;
  logger: Logger;
  metrics?: PrimaryMetrics;
  maxBytes: number;
  highWatermark: number;
  lowWatermark: number;
  retentionMs: number;
  snapshotIntervalMs?: number;
  /** How long a dead worker's partial files stay (counted) before they are swept (default 10 s). */
  orphanGraceMs?: number;
  sync?: FileSync;
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

export class IndexOwner {
  readonly index: EvictionIndex;
  private dirty = false;
  private evicting = false;
  private evictions = 0;
  private evictedBytes = 0;
  private timers: NodeJS.Timeout[] = [];
  private pinSources = new Map<string, Digest[]>();
  /** Partial files of dead workers: path → what they take on disk and their mtime when found. */
  private orphans = new Map<string, { bytes: number; mtimeMs: number }>();
  private orphanTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: IndexOwnerOptions) {
    this.index = new EvictionIndex({
      maxBytes: options.maxBytes,
      highWatermark: options.highWatermark,
      lowWatermark: options.lowWatermark,
      retentionMs: options.retentionMs,
      clock: options.clock,
    });
    options.metrics?.cacheMax.set(options.maxBytes);
  }

  /**
   * Rebuilds the index from the snapshot and the files on disk; then brings
   * usage under budget. After an unclean shutdown every file is stat'ed,
   * torn ones are deleted, and `index/unverified-before` is set later than
   * every blob's mtime (in whole seconds), so each blob is hashed before it
   * is trusted again.
   */
  async load(): Promise<LoadResult> {
    const { layout, logger, clock, sync } = this.options;
    const started = performance.now();
    const clean = await consumeCleanShutdown(layout, sync);
    const loaded = await loadIndex(layout, { checkSizes: !clean });
    for (const digest of loaded.torn) await this.options.store.remove(digest);
    if (loaded.torn.length > 0) {
      this.options.metrics?.corruptFiles.inc({ check: 'size' }, loaded.torn.length);
      logger.warn({ torn: loaded.torn.length, digests: loaded.torn.slice(0, 20) }, 'deleted cached blobs whose size is not the recorded size');
    }
    for (const entry of loaded.entries) this.index.add(entry.digest, entry.bytes, entry.kind, entry.lastAccess, entry.size);
    let unverifiedBefore = await readUnverifiedBefore(layout);
    if (!clean && loaded.entries.length > 0) {
      const after = Math.max(clock.now(), loaded.newestMtimeMs + 1, unverifiedBefore ?? 0);
      unverifiedBefore = Math.ceil(after / 1000) * 1000;
      await writeUnverifiedBefore(layout, unverifiedBefore, sync);
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
    if (this.options.retentionMs > 0) {
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
      await recordCleanShutdown(this.options.layout, this.options.sync);
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

  async snapshot(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    try {
      await writeSnapshot(this.options.layout, this.index.entries());
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

  async purgeDigests(digests: Digest[]): Promise<{ removed: number; bytes: number }> {
    const victims = digests.map((d) => this.index.get(d)).filter((e): e is IndexEntry => e !== undefined);
    // Files the index did not know about go too.
    await Promise.all(digests.map((d) => this.options.store.remove(d)));
    await this.removeEntries(victims, 'purge');
    const unindexed = digests.filter((d) => !victims.some((v) => v.digest === d) && !this.index.has(d));
    if (unindexed.length > 0) this.options.onRemoved?.(unindexed);
    return { removed: victims.length, bytes: victims.reduce((n, v) => n + v.bytes, 0) };
  }

  async purgeAll(): Promise<{ removed: number; bytes: number }> {
    const victims = [...this.index.entries()];
    const bytes = this.index.totalBytes;
    await this.removeEntries(victims, 'purge');
    await rm(path.join(this.options.layout.root, 'repositories'), { recursive: true, force: true });
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
    const info = await stat(this.options.layout.blobPath(digest)).catch(() => undefined);
    if (info && !this.index.has(digest)) this.index.add(digest, diskBytes(info), entry?.kind ?? 'blob', this.options.clock.now(), info.size);
    else if (!info) this.options.onRemoved?.([digest]);
    this.updateGauges();
  }

  /** A blob hashed to its digest: record its size when the index did not know it (entries from a version-1 snapshot). */
  verifiedSize(digest: Digest, size: number): void {
    const entry = this.index.get(digest);
    if (!entry || entry.size !== undefined) return;
    entry.size = size;
    this.dirty = true;
  }

  /** A worker exited: its partial files in `ingest/` are orphans, counted until swept after the grace period. */
  async workerExited(pid: number | undefined): Promise<void> {
    if (pid === undefined) return;
    const dir = this.options.layout.ingestDir;
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      if (writerPid(name) !== pid) continue;
      const file = path.join(dir, name);
      const info = await stat(file).catch(() => undefined);
      if (info) this.orphans.set(file, { bytes: diskBytes(info), mtimeMs: info.mtimeMs });
    }
    this.countOrphans();
    if (this.orphans.size === 0) return;
    this.options.logger.info({ pid, files: this.orphans.size }, 'a worker left partial files; counted until swept');
    if (this.index.overHighWatermark()) void this.evict();
    this.orphanTimer ??= setTimeout(() => {
      this.orphanTimer = undefined;
      void this.sweepOrphans();
    }, this.options.orphanGraceMs ?? 10_000).unref();
  }

  /** Deletes orphaned partial files nobody wrote to since they were found. */
  async sweepOrphans(): Promise<number> {
    let swept = 0;
    for (const [file, orphan] of [...this.orphans]) {
      const info = await stat(file).catch(() => undefined);
      if (info && info.mtimeMs !== orphan.mtimeMs) {
        // Still written to: someone took it over. Look again later.
        this.orphans.set(file, { bytes: diskBytes(info), mtimeMs: info.mtimeMs });
        continue;
      }
      if (info) {
        await rm(file, { force: true });
        swept += 1;
      }
      this.orphans.delete(file);
    }
    this.countOrphans();
    if (this.orphans.size > 0) {
      this.orphanTimer ??= setTimeout(() => {
        this.orphanTimer = undefined;
        void this.sweepOrphans();
      }, this.options.orphanGraceMs ?? 10_000).unref();
    }
    return swept;
  }

  private countOrphans(): void {
    let bytes = 0;
    for (const orphan of this.orphans.values()) bytes += orphan.bytes;
    this.index.setUntrackedBytes(bytes);
    this.updateGauges();
  }

  private async removeEntries(victims: IndexEntry[], reason: 'budget' | 'retention' | 'purge'): Promise<void> {
    const removed: Digest[] = [];
    for (const victim of victims) {
      try {
        await this.options.store.remove(victim.digest);
      } catch (err) {
        this.options.logger.warn({ digest: victim.digest, err: String(err) }, 'could not remove a cache entry');
        continue;
      }
      const current = this.index.get(victim.digest);
      if (current === victim || current === undefined) {
        this.index.remove(victim.digest);
        removed.push(victim.digest);
      } else {
        // Re-added while the file was being removed (a fill landed): keep that entry, unless its file went too.
        const info = await stat(this.options.layout.blobPath(victim.digest)).catch(() => undefined);
        if (!info && this.index.get(victim.digest) === current) {
          this.index.remove(victim.digest);
          removed.push(victim.digest);
        }
      }
      this.evictions += 1;
      this.evictedBytes += victim.bytes;
      this.options.metrics?.evictions.inc({ reason });
      this.options.metrics?.evictedBytes.inc({ reason }, victim.bytes);
    }
    if (victims.length > 0) this.dirty = true;
    if (removed.length > 0) this.options.onRemoved?.(removed);
    this.updateGauges();
  }

  private updateGauges(): void {
    this.options.metrics?.cacheSize.set(this.index.totalBytes);
    this.options.metrics?.cacheEntries.set(this.index.size);
  }
}
