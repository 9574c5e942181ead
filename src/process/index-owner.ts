/**
 * The per-host owner of the eviction index (runs in the cluster primary).
 * Workers send it batches of touches and additions; it alone decides and
 * performs evictions (unlink: readers with the file open keep reading),
 * sweeps retention, persists the LRU order, and answers the admin API.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { EvictionIndex, type IndexBatch, type IndexEntry } from '../cache/eviction-index.ts';
import type { BlobStore, Clock, Logger } from '../cache/ports.ts';
import type { PrimaryMetrics } from '../observability/metrics.ts';
import type { CacheLayout } from '../storage/layout.ts';
import type { Digest } from '../registry/digest.ts';
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

  /** Rebuilds the index from the snapshot and the files on disk; then brings usage under budget. */
  async load(): Promise<{ entries: number; ms: number }> {
    const started = performance.now();
    const loaded = await loadIndex(this.options.layout);
    for (const entry of loaded.entries) this.index.add(entry.digest, entry.bytes, entry.kind, entry.lastAccess);
    const ms = Math.round(performance.now() - started);
    this.options.logger.info(
      { entries: this.index.size, bytes: this.index.totalBytes, fromSnapshot: loaded.fromSnapshot, scanned: loaded.scanned, ms },
      'cache index loaded',
    );
    this.updateGauges();
    await this.evict();
    return { entries: this.index.size, ms };
  }

  start(): void {
    const every = this.options.snapshotIntervalMs ?? 30_000;
    this.timers.push(setInterval(() => void this.snapshot(), every).unref());
    if (this.options.retentionMs > 0) {
      const sweep = Math.min(Math.max(this.options.retentionMs / 10, 1_000), 3_600_000);
      this.timers.push(setInterval(() => void this.sweepRetention(), sweep).unref());
    }
  }

  async stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.dirty = true;
    await this.snapshot();
  }

  apply(batch: IndexBatch): void {
    const now = this.options.clock.now();
    for (const [digest, bytes, kind] of batch.added) this.index.add(digest, bytes, kind, now);
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

  private async removeEntries(victims: IndexEntry[], reason: 'budget' | 'retention' | 'purge'): Promise<void> {
    for (const victim of victims) {
      try {
        await this.options.store.remove(victim.digest);
      } catch (err) {
        this.options.logger.warn({ digest: victim.digest, err: String(err) }, 'could not remove a cache entry');
        continue;
      }
      this.index.remove(victim.digest);
      this.evictions += 1;
      this.evictedBytes += victim.bytes;
      this.options.metrics?.evictions.inc({ reason });
      this.options.metrics?.evictedBytes.inc({ reason }, victim.bytes);
    }
    if (victims.length > 0) this.dirty = true;
    this.updateGauges();
  }

  private updateGauges(): void {
    this.options.metrics?.cacheSize.set(this.index.totalBytes);
    this.options.metrics?.cacheEntries.set(this.index.size);
  }
}
