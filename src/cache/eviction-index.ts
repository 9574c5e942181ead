/**
 * The disk budget's bookkeeping: every cached blob and manifest, keyed by
 * digest, sized in bytes actually on disk, in least-recently-used order
 * (lru-cache does the ordering). One eviction service per host decides
 * evictions — in the cluster primary, fed by workers in batches — so two
 * workers never evict independently. Pure: no I/O; the eviction service
 * (eviction-service.ts) deletes what `plan*` returns.
 */
import { LRUCache } from 'lru-cache';
import { tryParseDigest, type Digest } from '../registry/digest.ts';
import type { Clock, EntryKind, IndexEntry } from './ports.ts';

/** What workers send the eviction service: hits, and entries that landed on disk. */
export interface IndexBatch {
  touched: Digest[];
  /** `size`: the content's length (bytes of the blob itself, not of its disk blocks), when known. */
  added: [digest: Digest, bytes: number, kind: EntryKind, size?: number][];
}

/** A batch as it arrives over IPC: anything that is not a well-formed entry is dropped. */
export function parseIndexBatch(value: unknown): IndexBatch {
  const raw = (typeof value === 'object' && value !== null ? value : {}) as { touched?: unknown; added?: unknown };
  const touched = Array.isArray(raw.touched) ? raw.touched.map(tryParseDigest).filter((d): d is Digest => d !== undefined) : [];
  const added: IndexBatch['added'] = [];
  for (const entry of Array.isArray(raw.added) ? (raw.added as unknown[]) : []) {
    if (!Array.isArray(entry)) continue;
    const [rawDigest, bytes, kind, size] = entry as unknown[];
    const digest = tryParseDigest(rawDigest);
    if (digest && isByteCount(bytes) && (kind === 'blob' || kind === 'manifest')) {
      added.push(isByteCount(size) ? [digest, bytes, kind, size] : [digest, bytes, kind]);
    }
  }
  return { touched, added };
}

function isByteCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

export interface EvictionIndexOptions {
  maxBytes: number;
  /** Fraction of maxBytes at which eviction starts. */
  highWatermark: number;
  /** Fraction of maxBytes eviction brings usage under. */
  lowWatermark: number;
  /** Evict entries not hit for this long (0: never). */
  retentionMs: number;
  clock: Clock;
}

export class EvictionIndex {
  private readonly lru = new LRUCache<Digest, IndexEntry>({
    maxSize: Number.MAX_SAFE_INTEGER,
    sizeCalculation: (entry) => Math.max(1, entry.bytes),
  });
  private pinned = new Set<Digest>();
  private total = 0;
  /** Bytes on disk the budget counts that are no entry (orphaned partial files until they are swept). */
  private untracked = 0;

  constructor(private readonly options: EvictionIndexOptions) {}

  /** Bytes counted against the budget: every entry, and untracked bytes. */
  get totalBytes(): number {
    return this.total + this.untracked;
  }

  setUntrackedBytes(bytes: number): void {
    this.untracked = Math.max(0, bytes);
  }

  get size(): number {
    return this.lru.size;
  }

  get maxBytes(): number {
    return this.options.maxBytes;
  }

  /** Records a new entry as the most recently used (or at `lastAccess` when reloading, oldest first). */
  add(digest: Digest, bytes: number, kind: EntryKind, lastAccess = this.options.clock.now(), size?: number): void {
    const existing = this.lru.peek(digest);
    if (existing) this.total -= existing.bytes;
    const entry: IndexEntry = { digest, bytes, kind, lastAccess };
    if (size !== undefined) entry.size = size;
    this.lru.set(digest, entry);
    this.total += bytes;
  }

  touch(digest: Digest, at = this.options.clock.now()): boolean {
    const entry = this.lru.get(digest);
    if (!entry) return false;
    if (at > entry.lastAccess) entry.lastAccess = at;
    return true;
  }

  remove(digest: Digest): IndexEntry | undefined {
    const entry = this.lru.peek(digest);
    if (!entry) return undefined;
    this.lru.delete(digest);
    this.total -= entry.bytes;
    return entry;
  }

  get(digest: Digest): IndexEntry | undefined {
    return this.lru.peek(digest);
  }

  has(digest: Digest): boolean {
    return this.lru.has(digest);
  }

  setPinned(digests: Iterable<Digest>): void {
    this.pinned = new Set(digests);
  }

  isPinned(digest: Digest): boolean {
    return this.pinned.has(digest);
  }

  get pinnedDigests(): ReadonlySet<Digest> {
    return this.pinned;
  }

  overHighWatermark(): boolean {
    return this.totalBytes > this.options.maxBytes * this.options.highWatermark;
  }

  /**
   * Least recently used first, what must go to bring usage under the low
   * watermark — nothing while usage is under the high one. Pinned entries
   * are skipped (blobs being written are not in the index until committed).
   */
  planEviction(): IndexEntry[] {
    if (!this.overHighWatermark()) return [];
    const target = this.options.maxBytes * this.options.lowWatermark;
    let remaining = this.totalBytes;
    const victims: IndexEntry[] = [];
    for (const entry of this.entries()) {
      if (remaining <= target) break;
      if (this.pinned.has(entry.digest)) continue;
      victims.push(entry);
      remaining -= entry.bytes;
    }
    return victims;
  }

  /** Entries not hit within the retention period (never pinned ones). */
  planRetention(): IndexEntry[] {
    if (this.options.retentionMs <= 0) return [];
    const cutoff = this.options.clock.now() - this.options.retentionMs;
    const victims: IndexEntry[] = [];
    for (const entry of this.entries()) {
      if (entry.lastAccess >= cutoff) continue;
      if (!this.pinned.has(entry.digest)) victims.push(entry);
    }
    return victims;
  }

  /** Least recently used first. */
  *entries(): IterableIterator<IndexEntry> {
    for (const entry of this.lru.rvalues()) if (entry) yield entry;
  }

  /** Most recently used first. */
  *recent(): IterableIterator<IndexEntry> {
    for (const entry of this.lru.values()) if (entry) yield entry;
  }
}
