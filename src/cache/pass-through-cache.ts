/**
 * Small answers the primary owns and Outpost only relays — tag lists and
 * referrers — kept in memory for the tag TTL and served stale when the
 * primary is unavailable.
 *
 * Memory is bounded in bytes, not entries: the primary decides how big an
 * answer is, so 10k entries could be 10k times the largest answer. Entries
 * are weighed with `sizeOf` (default `approximateBytes`) and the least
 * recently used go once `maxBytes` is exceeded; an answer larger than the
 * whole budget is relayed but not kept in memory (the RelayedStore still
 * has it for stale-if-error).
 */
import { LRUCache } from 'lru-cache';
import type { ErrorCode } from '../registry/errors.ts';
import type { CacheKind, CacheObserver, CacheResult, Clock, Logger, PurgeScope } from './ports.ts';
import { isUpstreamError, isUpstreamOutage, keyInRepositories } from './ports.ts';
import { SingleFlight } from './single-flight.ts';
import { toRegistryError } from './upstream-failure.ts';

interface Entry<T> {
  value: T;
  fetchedAt: number;
}

/** Where the last answer is kept beyond this process's memory (shared by workers, survives restarts). */
export interface RelayedStore<T> {
  load(key: string): Promise<{ value: T; fetchedAt: number } | undefined>;
  save(key: string, entry: { value: T; fetchedAt: number }): Promise<void>;
}

export interface PassThroughCacheOptions {
  kind: CacheKind;
  notFound: ErrorCode;
  clock: Clock;
  observer: CacheObserver;
  logger: Logger;
  ttlMs: number;
  timeoutMs: number;
  /** Memory budget for the kept answers, keys included. Default 32 MiB (per cache, per worker). */
  maxBytes?: number;
}

export const DEFAULT_PASS_THROUGH_MAX_BYTES = 32 * 1024 * 1024;

export class PassThroughCache<T extends object> {
  private readonly entries: LRUCache<string, Entry<T>>;
  private readonly flights = new SingleFlight<{ value: T; result: CacheResult }>();

  constructor(private readonly options: PassThroughCacheOptions) {
    this.entries = new LRUCache<string, Entry<T>>({
      maxSize: options.maxBytes ?? DEFAULT_PASS_THROUGH_MAX_BYTES,
      sizeCalculation: (entry, key) => Math.max(1, Math.ceil(approximateBytes(key) + approximateBytes(entry.value) + 16)),
    });
  }

  /** Drops purged repositories' answers from this process's memory. */
  forget(scope: PurgeScope): void {
    if (scope.kind === 'all') {
      this.entries.clear();
      return;
    }
    for (const key of [...this.entries.keys()]) if (keyInRepositories(key, scope.repositories)) this.entries.delete(key);
  }

  async get(
    key: string,
    load: (signal: AbortSignal) => Promise<T>,
    store?: RelayedStore<T>,
  ): Promise<{ value: T; result: CacheResult }> {
    const { clock, observer, kind } = this.options;
    const entry = this.entries.get(key);
    if (entry && clock.now() - entry.fetchedAt < this.options.ttlMs) {
      observer.cacheResult(kind, 'hit');
      return { value: entry.value, result: 'hit' };
    }
    return this.flights.run(key, async () => {
      try {
        const value = await load(AbortSignal.timeout(this.options.timeoutMs));
        const fresh = { value, fetchedAt: clock.now() };
        this.entries.set(key, fresh);
        await store?.save(key, fresh).catch(() => undefined);
        observer.cacheResult(kind, 'miss');
        return { value, result: 'miss' as const };
      } catch (err) {
        let known: Entry<T> | undefined = entry;
        if (isUpstreamOutage(err)) {
          // Another worker (or an earlier run) may have stored a newer answer than this process's memory.
          const stored = await store?.load(key).catch(() => undefined);
          if (stored && (!known || stored.fetchedAt > known.fetchedAt)) known = stored;
        }
        if (known && isUpstreamOutage(err)) {
          const reason = isUpstreamError(err) ? err.code : 'error';
          observer.staleServed(kind, reason);
          observer.cacheResult(kind, 'stale');
          this.options.logger.warn({ kind, reason }, 'primary unavailable; serving last known answer');
          return { value: known.value, result: 'stale' as const };
        }
        // The failed upstream call was counted by the instrumented Upstream already.
        throw toRegistryError(err, this.options.notFound);
      }
    });
  }
}

/**
 * Rough heap bytes of a relayed answer: strings by length (tags are ASCII,
 * one byte a character) plus a header, buffers by length, arrays and objects
 * by their members plus a slot each. Meant to bound memory, not to measure it.
 */
export function approximateBytes(value: unknown): number {
  if (typeof value === 'string') return 16 + value.length;
  if (ArrayBuffer.isView(value)) return 64 + value.byteLength;
  if (Array.isArray(value)) {
    let bytes = 16;
    for (const item of value) bytes += 8 + approximateBytes(item);
    return bytes;
  }
  if (typeof value === 'object' && value !== null) {
    let bytes = 32;
    for (const [key, item] of Object.entries(value)) bytes += 8 + key.length + approximateBytes(item);
    return bytes;
  }
  return 8;
}
