/**
 * The last hour of a node's pull counters, for the status page's chart: the
 * cumulative {@link PullStats} sampled every {@link sampleEveryMs} into a ring
 * that holds a little over an hour, and read back as per-minute figures (hit
 * ratio, bytes served from the cache, bytes fetched from primaries). No
 * external time-series store: a node restarted has an empty chart.
 *
 * The counters are sums over the node's workers; a worker that dies takes
 * its counts with it, so a sum can go down: such a step counts as nothing
 * rather than as negative traffic.
 */
import type { PullStats } from './pull-stats.ts';

export const sampleEveryMs = 10_000;
const minuteMs = 60_000;
const minutesShown = 60;
/** An hour of samples plus one minute, so the oldest minute has a sample before it. */
const samplesKept = Math.ceil((minutesShown + 1) * minuteMs / sampleEveryMs) + 1;

export interface MinuteFigures {
  /** Start of the minute, ms since the epoch. */
  start: number;
  /** Blob lookups in the minute. */
  lookups: number;
  /** Hits ÷ lookups; null when there was no lookup. */
  hit_ratio: number | null;
  /** Blob bytes sent from the disk cache. */
  from_cache_bytes: number;
  /** Blob bytes fetched from primaries. */
  upstream_bytes: number;
}

interface Sample {
  at: number;
  stats: PullStats;
}

function step(now: number, before: number): number {
  return now >= before ? now - before : 0;
}

export class HitHistory {
  private readonly samples: Sample[] = [];

  /** Records the counters as of `at` (ms); a sample sooner than half the period after the last is ignored. */
  sample(at: number, stats: PullStats): void {
    const last = this.samples.at(-1);
    if (last !== undefined && at - last.at < sampleEveryMs / 2) return;
    this.samples.push({ at, stats: { ...stats } });
    if (this.samples.length > samplesKept) this.samples.shift();
  }

  /** The last hour, oldest minute first, ending with the minute that holds `now`. */
  minutes(now: number): MinuteFigures[] {
    const current = Math.floor(now / minuteMs) * minuteMs;
    const first = current - (minutesShown - 1) * minuteMs;
    const buckets = Array.from({ length: minutesShown }, (_, i) => ({ start: first + i * minuteMs, lookups: 0, hits: 0, fromCache: 0, upstream: 0 }));
    for (let i = 1; i < this.samples.length; i++) {
      const before = this.samples[i - 1]!;
      const after = this.samples[i]!;
      const index = Math.floor((after.at - first) / minuteMs);
      const bucket = buckets[index];
      if (bucket === undefined) continue;
      bucket.lookups += step(after.stats.blobLookups, before.stats.blobLookups);
      bucket.hits += step(after.stats.blobHits, before.stats.blobHits);
      bucket.fromCache += step(after.stats.servedFromCache, before.stats.servedFromCache);
      bucket.upstream += step(after.stats.fetchedUpstream, before.stats.fetchedUpstream);
    }
    return buckets.map((b) => ({
      start: b.start,
      lookups: b.lookups,
      hit_ratio: b.lookups === 0 ? null : Math.round((Math.min(b.hits, b.lookups) / b.lookups) * 1000) / 1000,
      from_cache_bytes: b.fromCache,
      upstream_bytes: b.upstream,
    }));
  }
}
