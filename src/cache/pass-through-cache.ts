/**
 * Small answers the primary owns and Outpost only relays — tag lists and
 * referrers — kept in memory for the tag TTL and served stale when the
 * primary is unavailable.
 */
import { LRUCache } from 'lru-cache';
import type { ErrorCode } from '../registry/errors.ts';
import type { CacheKind, CacheObserver, CacheResult, Clock, Logger } from './ports.ts';
import { isUpstreamError, isUpstreamOutage } from './ports.ts';
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
  maxEntries?: number;
}

export class PassThroughCache<T extends object> {
  private readonly entries: LRUCache<string, Entry<T>>;
  private readonly flights = new SingleFlight<{ value: T; result: CacheResult }>();

  constructor(private readonly options: PassThroughCacheOptions) {
    this.entries = new LRUCache({ max: options.maxEntries ?? 10_000 });
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
        const known = entry ?? (isUpstreamOutage(err) ? await store?.load(key).catch(() => undefined) : undefined);
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
