/** The hour of per-minute figures behind the status page's chart. */
import { describe, expect, it } from 'vitest';
import { HitHistory } from '../../../src/cluster/hit-history.ts';
import { noPulls, type PullStats } from '../../../src/cluster/pull-stats.ts';
import { cacheFigures } from '../../../src/cluster/status-page-data.ts';

const t0 = Date.parse('2026-11-30T03:00:00Z');
const stats = (s: Partial<PullStats>): PullStats => ({ ...noPulls, ...s });

describe('HitHistory', () => {
  it('turns cumulative samples into per-minute hit ratio and bytes', () => {
    const h = new HitHistory();
    h.sample(t0, stats({}));
    h.sample(t0 + 10_000, stats({ blobLookups: 4, blobHits: 1, servedFromCache: 100, fetchedUpstream: 300 }));
    h.sample(t0 + 60_000, stats({ blobLookups: 8, blobHits: 5, servedFromCache: 500, fetchedUpstream: 300 }));
    const minutes = h.minutes(t0 + 60_000);
    expect(minutes).toHaveLength(60);
    expect(minutes.at(-1)).toEqual({ start: t0 + 60_000, lookups: 4, hit_ratio: 1, from_cache_bytes: 400, upstream_bytes: 0 });
    expect(minutes.at(-2)).toEqual({ start: t0, lookups: 4, hit_ratio: 0.25, from_cache_bytes: 100, upstream_bytes: 300 });
    expect(minutes[0]).toEqual({ start: t0 - 58 * 60_000, lookups: 0, hit_ratio: null, from_cache_bytes: 0, upstream_bytes: 0 });
  });

  it('counts a counter that went down (a worker died with its counts) as no traffic, not negative', () => {
    const h = new HitHistory();
    h.sample(t0, stats({ blobLookups: 10, blobHits: 10, servedFromCache: 1_000 }));
    h.sample(t0 + 10_000, stats({ blobLookups: 4, blobHits: 4, servedFromCache: 400 }));
    h.sample(t0 + 20_000, stats({ blobLookups: 6, blobHits: 5, servedFromCache: 500 }));
    expect(h.minutes(t0 + 30_000).at(-1)).toEqual({ start: t0, lookups: 2, hit_ratio: 0.5, from_cache_bytes: 100, upstream_bytes: 0 });
  });

  it('keeps a bounded hour: traffic older than the hour leaves the chart, and samples too close together are ignored', () => {
    const h = new HitHistory();
    h.sample(t0, stats({}));
    h.sample(t0 + 10_000, stats({ blobLookups: 1, blobHits: 1 }));
    h.sample(t0 + 11_000, stats({ blobLookups: 99, blobHits: 0 })); // under half a period after the last: ignored
    expect(h.minutes(t0 + 10_000).at(-1)!.hit_ratio).toBe(1);
    for (let i = 2; i <= 400; i++) h.sample(t0 + i * 10_000, stats({ blobLookups: 1, blobHits: 1 }));
    const minutes = h.minutes(t0 + 400 * 10_000);
    expect(minutes.every((m) => m.lookups === 0)).toBe(true);
    expect((h as unknown as { samples: unknown[] }).samples.length).toBeLessThanOrEqual(368);
  });
});

describe('cacheFigures', () => {
  it('reads the cache gauges and pull counters of the node metrics, and what the WAN did not carry', () => {
    const text = [
      '# HELP outpost_cache_size_bytes x',
      'outpost_cache_size_bytes 2048',
      'outpost_cache_max_bytes 4096',
      'outpost_cache_entries 3',
      'outpost_evictions_total{reason="budget"} 2',
      'outpost_evictions_total{reason="retention"} 1',
      'outpost_evicted_bytes_total{reason="budget"} 700',
      'outpost_cache_requests_total{kind="blob",result="hit"} 3',
      'outpost_cache_requests_total{kind="blob",result="miss"} 1',
      'outpost_cache_requests_total{kind="manifest",result="hit"} 50',
      'outpost_served_bytes_total{source="cache"} 3000',
      'outpost_served_bytes_total{source="fill"} 1000',
      'outpost_upstream_fetched_bytes_total{upstream="a"} 1000',
    ].join('\n');
    expect(cacheFigures(text, 1)).toEqual({
      used_bytes: 2048,
      max_bytes: 4096,
      entries: 3,
      evictions: 3,
      evicted_bytes: 700,
      blob_lookups: 4,
      hit_ratio: 0.75,
      served_from_cache_bytes: 3000,
      served_from_fill_bytes: 1000,
      fetched_upstream_bytes: 1000,
      saved_bytes: 3000,
    });
    // A process on its own exports no cache gauges: the configured budget stands in.
    expect(cacheFigures('', 1234)).toMatchObject({ used_bytes: 0, max_bytes: 1234, hit_ratio: 0, saved_bytes: 0 });
  });
});
