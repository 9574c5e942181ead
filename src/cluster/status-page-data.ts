/**
 * The status page's document (`GET /api/v0/meta/status_page`, and the data
 * the page at `/` is rendered from): the replica set as cluster_status
 * shows it, this node's cache use and pull counters read from its metrics,
 * the last hour per minute, and this node's pulls. Pure: no I/O.
 *
 * "Saved" is what the WAN did not carry: blob bytes sent to clients (from
 * disk or from a fill in progress) minus blob bytes fetched from primaries.
 */
import type { PrefetchJobStatus } from '../prefetch/ports.ts';
import type { ClusterStatus } from './cluster-status.ts';
import type { HitHistory, MinuteFigures } from './hit-history.ts';
import type { PullResult, RecentPull, RepositoryPulls } from './pull-activity.ts';
import { hitRatio, pullStatsFromMetrics } from './pull-stats.ts';
import { isoSeconds } from './cluster-status.ts';

export interface CacheFigures {
  used_bytes: number;
  max_bytes: number;
  entries: number;
  evictions: number;
  evicted_bytes: number;
  blob_lookups: number;
  hit_ratio: number;
  served_from_cache_bytes: number;
  served_from_fill_bytes: number;
  fetched_upstream_bytes: number;
  saved_bytes: number;
}

export interface RecentPullView {
  at: string;
  repository: string;
  reference: string;
  client: string;
  result: PullResult;
  user?: string;
  /** The replica that answered it (when the pulls are the whole set's). */
  node?: string;
}

/** The pulls the page shows: the replica set's (merged in Redis) or, without Redis, this node's own. */
export interface PullsView {
  scope: 'cluster' | 'node';
  recent: Array<RecentPull & { node?: string }>;
  byPulls: RepositoryPulls[];
  byBytes: RepositoryPulls[];
}

export interface StatusPageData {
  generated_at: string;
  /** The node that answered (the figures below are its own; `cluster` is the whole set). */
  node_id: string;
  cluster: ClusterStatus;
  cache: CacheFigures;
  history: MinuteFigures[];
  top_by_pulls: RepositoryPulls[];
  top_by_bytes: RepositoryPulls[];
  recent_pulls: RecentPullView[];
  /** `cluster`: recent pulls and top repositories of every replica (Redis); `node`: this node's only. */
  pulls_scope: 'cluster' | 'node';
  /** Whether pulls carry a user (access control is on). */
  show_users: boolean;
  /** The prefetch jobs (as `GET /api/v0/prefetch/jobs` lists them); a string: why they could not be read; absent: this process runs none. */
  jobs?: PrefetchJobStatus[] | string;
}

export interface StatusPageInputs {
  now: number;
  nodeId: string;
  status: ClusterStatus;
  /** The node's metrics (Prometheus text, every process). */
  metricsText: string;
  /** The configured disk budget, when the metrics do not say (a process on its own). */
  maxBytes: number;
  history: HitHistory;
  pulls: PullsView;
  showUsers: boolean;
  /** The prefetch jobs, or why they could not be read; undefined: this process runs none. */
  jobs?: PrefetchJobStatus[] | string;
}

const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)/;

/** Sums of the cache gauges and counters the cluster primary exports. */
function cacheGauges(text: string): Record<'outpost_cache_size_bytes' | 'outpost_cache_max_bytes' | 'outpost_cache_entries' | 'outpost_evictions_total' | 'outpost_evicted_bytes_total', number | undefined> {
  const sums: Record<string, number | undefined> = {
    outpost_cache_size_bytes: undefined,
    outpost_cache_max_bytes: undefined,
    outpost_cache_entries: undefined,
    outpost_evictions_total: undefined,
    outpost_evicted_bytes_total: undefined,
  };
  for (const line of text.split('\n')) {
    const m = sampleLine.exec(line);
    if (m === null || !(m[1]! in sums)) continue;
    const value = Number(m[2]);
    if (Number.isFinite(value)) sums[m[1]!] = (sums[m[1]!] ?? 0) + value;
  }
  return sums as ReturnType<typeof cacheGauges>;
}

export function cacheFigures(metricsText: string, maxBytes: number): CacheFigures {
  const gauges = cacheGauges(metricsText);
  const pulls = pullStatsFromMetrics(metricsText);
  return {
    used_bytes: gauges.outpost_cache_size_bytes ?? 0,
    max_bytes: gauges.outpost_cache_max_bytes || maxBytes,
    entries: gauges.outpost_cache_entries ?? 0,
    evictions: gauges.outpost_evictions_total ?? 0,
    evicted_bytes: gauges.outpost_evicted_bytes_total ?? 0,
    blob_lookups: pulls.blobLookups,
    hit_ratio: Math.round(hitRatio(pulls) * 1000) / 1000,
    served_from_cache_bytes: pulls.servedFromCache,
    served_from_fill_bytes: pulls.servedFromFill,
    fetched_upstream_bytes: pulls.fetchedUpstream,
    saved_bytes: Math.max(0, pulls.servedFromCache + pulls.servedFromFill - pulls.fetchedUpstream),
  };
}

export function buildStatusPageData(inputs: StatusPageInputs): StatusPageData {
  const { now, pulls } = inputs;
  return {
    generated_at: isoSeconds(now),
    node_id: inputs.nodeId,
    cluster: inputs.status,
    cache: cacheFigures(inputs.metricsText, inputs.maxBytes),
    history: inputs.history.minutes(now),
    top_by_pulls: pulls.byPulls,
    top_by_bytes: pulls.byBytes,
    recent_pulls: pulls.recent.map((p) => ({ ...p, at: isoSeconds(p.at) })),
    pulls_scope: pulls.scope,
    show_users: inputs.showUsers,
    ...(inputs.jobs === undefined ? {} : { jobs: inputs.jobs }),
  };
}
