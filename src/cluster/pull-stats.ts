/**
 * A replica's pull statistics, read from the Prometheus text of its
 * aggregated worker metrics: the blob hit ratio cluster_status shows and the
 * counters published per replica in Redis.
 */

export interface PullStats {
  blobHits: number;
  /** Every blob lookup: hits, misses, coalesced waits, pass-throughs. */
  blobLookups: number;
  /** Blob bytes sent from disk. */
  servedFromCache: number;
  /** Blob bytes sent while being fetched. */
  servedFromFill: number;
  /** Blob bytes fetched from primaries. */
  fetchedUpstream: number;
}

export const noPulls: PullStats = { blobHits: 0, blobLookups: 0, servedFromCache: 0, servedFromFill: 0, fetchedUpstream: 0 };

/** Hits ÷ lookups; 0 before the first lookup. */
export function hitRatio(stats: PullStats): number {
  return stats.blobLookups === 0 ? 0 : stats.blobHits / stats.blobLookups;
}

const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/;

export function pullStatsFromMetrics(text: string): PullStats {
  const stats = { ...noPulls };
  for (const line of text.split('\n')) {
    const m = sampleLine.exec(line);
    if (m === null) continue;
    const [, name, labels = '', raw] = m;
    const value = Number(raw);
    if (!Number.isFinite(value)) continue;
    if (name === 'outpost_cache_requests_total' && labels.includes('kind="blob"')) {
      stats.blobLookups += value;
      if (labels.includes('result="hit"')) stats.blobHits += value;
    } else if (name === 'outpost_served_bytes_total') {
      if (labels.includes('source="cache"')) stats.servedFromCache += value;
      else if (labels.includes('source="fill"')) stats.servedFromFill += value;
    } else if (name === 'outpost_upstream_fetched_bytes_total') {
      stats.fetchedUpstream += value;
    }
  }
  return stats;
}
