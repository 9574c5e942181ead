/**
 * Every metric Outpost exports, in one place. `outpost_` prefix, unit
 * suffixes, and bounded label values only: never a digest, repository or
 * tag. prom-client's default process metrics keep their standard names
 * (`process_*`, `nodejs_*`) so stock dashboards and alerts work.
 *
 * Every process of a node (the cluster primary and each worker) fills its
 * own registry, default metrics included; /metrics is the node: the primary
 * merges all of them into one registry ({@link nodeMetrics}), so each metric
 * appears once, as one series per label set, for the whole node.
 */
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Aggregator } from 'prom-client';
import type { CacheKind, CacheObserver, CacheResult, IndexObserver } from '../cache/ports.ts';

/** One process's metrics, as prom-client's `getMetricsAsJSON()` gives them (JSON, so they cross IPC). */
export type ProcessMetrics = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/**
 * How a default process metric combines over the node's processes, where
 * Outpost overrides prom-client's own `aggregator` (prom-client's in brackets):
 *
 * - `process_start_time_seconds`: min [omit] — when the node (its cluster
 *   primary) started, so uptime panels work.
 * - `process_max_fds`: min [sum] — a per-process limit, the same in every process.
 * - `nodejs_eventloop_lag_seconds` and `nodejs_eventloop_lag_{mean,stddev,p50,p90,p99}_seconds`:
 *   max [average] — the worst process, so one stuck worker shows.
 *
 * Everything else keeps prom-client's choice: sum for the CPU counters
 * (`process_cpu_*seconds_total`), the memory gauges
 * (`process_resident_memory_bytes`, `nodejs_heap_size_used_bytes`, ...),
 * open fds, active handles/requests/resources and the GC histogram — the
 * node's total, which is what capacity questions need; min for
 * `nodejs_eventloop_lag_min_seconds`, max for `..._max_seconds`, first for
 * `nodejs_version_info`. Outpost's own metrics sum, except those that name
 * another aggregator below (`outpost_draining`: max,
 * `outpost_upstream_ratelimit_remaining`: min, `outpost_upstream_ratelimit_limit`
 * and `outpost_upstream_circuit_state`: max).
 */
const nodeAggregators: Readonly<Record<string, Aggregator>> = {
  process_start_time_seconds: 'min',
  process_max_fds: 'min',
  nodejs_eventloop_lag_seconds: 'max',
  nodejs_eventloop_lag_mean_seconds: 'max',
  nodejs_eventloop_lag_stddev_seconds: 'max',
  nodejs_eventloop_lag_p50_seconds: 'max',
  nodejs_eventloop_lag_p90_seconds: 'max',
  nodejs_eventloop_lag_p99_seconds: 'max',
};

/** The node's metrics: every process's registry merged into one (one family per name, valid Prometheus text). */
export function nodeMetrics(processes: readonly ProcessMetrics[]): Registry {
  const adjusted = processes.map((metrics) =>
    metrics.map((metric) => {
      const aggregator = nodeAggregators[metric.name];
      return aggregator === undefined ? metric : { ...metric, aggregator };
    }),
  );
  return AggregatorRegistry.aggregate(adjusted);
}

const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** Route classes used as label values (the `V2Route` kinds plus ops). */
export const routeClasses = ['base', 'catalog', 'manifest', 'blob', 'tags', 'referrers', 'upload', 'health', 'livez', 'nginx_status', 'metrics', 'admin', 'peer', 'other'] as const;
export type RouteClass = (typeof routeClasses)[number];

export function workerMetrics(registry: Registry = new Registry()) {
  collectDefaultMetrics({ register: registry }); // process_*, nodejs_*: standard names
  const m = {
    registry,
    httpRequests: new Counter({
      name: 'outpost_http_requests_total',
      help: 'HTTP requests answered, by route class, method and status code.',
      labelNames: ['route', 'method', 'status'] as const,
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'outpost_http_request_duration_seconds',
      help: 'Time from request to the end of the response, by route class.',
      labelNames: ['route'] as const,
      buckets: latencyBuckets,
      registers: [registry],
    }),
    cacheRequests: new Counter({
      name: 'outpost_cache_requests_total',
      help: 'Cache lookups by kind (blob, manifest, tag, tags_list, referrers) and result (hit, miss, coalesced, revalidated, stale, passthrough).',
      labelNames: ['kind', 'result'] as const,
      registers: [registry],
    }),
    servedBytes: new Counter({
      name: 'outpost_served_bytes_total',
      help: 'Blob bytes sent to clients, by source: cache (on disk before the request) or fill (fetched for this request or a coalesced one).',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
    upstreamBytes: new Counter({
      name: 'outpost_upstream_fetched_bytes_total',
      help: 'Blob bytes fetched from the primary by fills.',
      registers: [registry],
    }),
    prefetchImages: new Counter({
      name: 'outpost_prefetch_warmed_images_total',
      help: 'Images this node warmed (prefetch: an ad-hoc warm or a job run), by result: warmed, skipped (no selected platform) or failed.',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    prefetchBlobs: new Counter({
      name: 'outpost_prefetch_warmed_blobs_total',
      help: 'Blobs of the images this node warmed, by state: cached (on disk before the warm) or fetched (by the warm).',
      labelNames: ['state'] as const,
      registers: [registry],
    }),
    staleServed: new Counter({
      name: 'outpost_stale_served_total',
      help: 'Answers served from cache because the primary was unavailable (stale-if-error), by kind and reason.',
      labelNames: ['kind', 'reason'] as const,
      registers: [registry],
    }),
    fillsInFlight: new Gauge({
      name: 'outpost_fills_in_flight',
      help: 'Blob fills in progress (from the primary or a peer replica).',
      registers: [registry],
    }),
    fills: new Counter({
      name: 'outpost_fills_total',
      help: 'Blob fills (from the primary or a peer replica), by outcome (ok, failed).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    peerFills: new Counter({
      name: 'outpost_peer_fills_total',
      help: 'Requests a fill made to a peer replica, by result: ok, or why the next source was used (not_found, unreachable, timeout, refused, broken, mismatch, error).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    peerBytes: new Counter({
      name: 'outpost_peer_bytes_total',
      help: 'Blob bytes fills received from peer replicas instead of the primary.',
      registers: [registry],
    }),
    fanOutReaders: new Counter({
      name: 'outpost_fill_fanout_readers_total',
      help: 'Readers of a fill run by this process, by event: joined (fed from memory as the bytes arrive), fell_behind (left the window: the partial file, or their own ranged fetch for a blob streamed through).',
      labelNames: ['event'] as const,
      registers: [registry],
    }),
    fillLockWaits: new Counter({
      name: 'outpost_fill_lock_waits_total',
      help: 'Fills that found another replica holding the cluster fill lock and followed that replica instead of asking the primary.',
      registers: [registry],
    }),
    ...upstreamCallMetrics(registry),
    ...breakerMetrics(registry),
    rateLimitRemaining: new Gauge({
      name: 'outpost_upstream_ratelimit_remaining',
      help: 'Last `ratelimit-remaining` seen from a primary (Docker Hub), by primary host.',
      labelNames: ['upstream'] as const,
      aggregator: 'min',
      registers: [registry],
    }),
    rateLimitLimit: new Gauge({
      name: 'outpost_upstream_ratelimit_limit',
      help: 'Last `ratelimit-limit` seen from a primary (Docker Hub: pulls per window), by primary host.',
      labelNames: ['upstream'] as const,
      aggregator: 'max',
      registers: [registry],
    }),
    cacheWriteFailures: new Counter({
      name: 'outpost_cache_write_failures_total',
      help: 'Cache writes that failed (disk full, read-only, permissions), by errno code; the content was streamed through uncached.',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    draining: new Gauge({
      name: 'outpost_draining',
      help: '1 while the node drains after SIGTERM.',
      aggregator: 'max',
      registers: [registry],
    }),
  };
  return m;
}

export type WorkerMetrics = ReturnType<typeof workerMetrics>;

/**
 * Requests to primaries: the workers' (pulls, fills) and the cluster
 * primary's (prefetch jobs listing catalogs and tags, `list_page`), summed
 * into the node's series.
 */
function upstreamCallMetrics(registry: Registry) {
  return {
    upstreamRequests: new Counter({
      name: 'outpost_upstream_requests_total',
      help: 'Requests to primaries, by operation and outcome (ok or an UPSTREAM_* code).',
      labelNames: ['operation', 'outcome'] as const,
      registers: [registry],
    }),
    upstreamDuration: new Histogram({
      name: 'outpost_upstream_request_duration_seconds',
      help: 'Time to a primary’s response headers, by operation.',
      labelNames: ['operation'] as const,
      buckets: latencyBuckets,
      registers: [registry],
    }),
    upstreamErrors: new Counter({
      name: 'outpost_upstream_errors_total',
      help: 'Failed requests to primaries (each once, retries included; a 404 is an answer, not an error) and content that failed verification, by code.',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
  };
}

export type UpstreamCallMetrics = ReturnType<typeof upstreamCallMetrics>;

/**
 * Circuit breakers, in every process that holds one: the workers' (every
 * request to a primary) and the cluster primary's (prefetch listings).
 */
function breakerMetrics(registry: Registry) {
  return {
    circuitState: new Gauge({
      name: 'outpost_upstream_circuit_state',
      help: 'Circuit breaker of a primary: 0 closed, 1 half-open, 2 open; the worst process of the node. By configured primary host.',
      labelNames: ['upstream'] as const,
      aggregator: 'max',
      registers: [registry],
    }),
    circuitOpens: new Counter({
      name: 'outpost_upstream_circuit_opens_total',
      help: 'Times a primary\'s circuit breaker opened (after consecutive outages or a failed probe), by configured primary host.',
      labelNames: ['upstream'] as const,
      registers: [registry],
    }),
  };
}

export type BreakerMetrics = ReturnType<typeof breakerMetrics>;

/** Metrics only the cluster primary knows, and the primary process's own default metrics. */
export function primaryMetrics(registry: Registry = new Registry()) {
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    workerRestarts: new Counter({
      name: 'outpost_worker_restarts_total',
      help: 'Workers that died and were restarted by the cluster primary.',
      registers: [registry],
    }),
    workersUp: new Gauge({
      name: 'outpost_workers_up',
      help: 'Workers currently running.',
      registers: [registry],
    }),
    workersConfigured: new Gauge({
      name: 'outpost_workers_configured',
      help: 'Workers the node is configured to run.',
      registers: [registry],
    }),
    cacheSize: new Gauge({
      name: 'outpost_cache_size_bytes',
      help: 'Bytes on disk in the cache (blobs and manifests), as the eviction index counts them.',
      registers: [registry],
    }),
    cacheMax: new Gauge({
      name: 'outpost_cache_max_bytes',
      help: 'The disk budget (OUTPOST_CACHE_MAX_BYTES).',
      registers: [registry],
    }),
    cacheEntries: new Gauge({
      name: 'outpost_cache_entries',
      help: 'Blobs and manifests in the cache.',
      registers: [registry],
    }),
    evictions: new Counter({
      name: 'outpost_evictions_total',
      help: 'Cache entries evicted to stay under the disk budget or by retention.',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    evictedBytes: new Counter({
      name: 'outpost_evicted_bytes_total',
      help: 'Bytes evicted from the cache.',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    cacheWritable: new Gauge({
      name: 'outpost_cache_writable',
      help: '1 when the cache directory accepts writes; 0 when it is full or broken (the node then streams through uncached).',
      registers: [registry],
    }),
    fillsCoordinated: new Gauge({
      name: 'outpost_coordinated_fills_in_flight',
      help: 'Fills the host-wide coordinator tracks right now.',
      registers: [registry],
    }),
    // Counted here for the whole node — workers report what their reads find over IPC — so the
    // total survives worker restarts (a worker's own counter would vanish from the aggregate with it).
    corruptFiles: new Counter({
      name: 'outpost_cache_corrupt_files_total',
      help: 'Cached files found corrupt and deleted, by check: size (not the recorded size at start after an unclean shutdown) or digest (content did not hash to its digest when read or scrubbed).',
      labelNames: ['check'] as const,
      registers: [registry],
    }),
    clusterLeader: new Gauge({
      name: 'outpost_cluster_leader',
      help: '1 while this node is the replica set leader (runs cluster-wide duties); a standalone node is its own leader.',
      registers: [registry],
    }),
    clusterMembers: new Gauge({
      name: 'outpost_cluster_members',
      help: 'Replicas registered in etcd with a verified record, as this node last saw them (1 when standalone).',
      registers: [registry],
    }),
    etcdUp: new Gauge({
      name: 'outpost_etcd_up',
      help: '1 while etcd answers this node; absent when no etcd is configured.',
      registers: [registry],
    }),
    redisUp: new Gauge({
      name: 'outpost_redis_up',
      help: '1 while Redis answers this node; absent when no Redis is configured.',
      registers: [registry],
    }),
    ...upstreamCallMetrics(registry),
    ...breakerMetrics(registry),
    locationEntriesSwept: new Counter({
      name: 'outpost_location_entries_swept_total',
      help: 'Entries of replicas whose address expired removed from the location index by the sweep this node ran (as leader).',
      registers: [registry],
    }),
    tlsCertificateExpiry: new Gauge({
      name: 'outpost_tls_certificate_expiry_seconds',
      help: 'Unix time at which the HTTPS certificate the workers serve expires (its notAfter), updated when a SIGHUP reload succeeds on every worker; absent when the node serves HTTP.',
      registers: [registry],
    }),
    // Prefetch jobs (prefetch/prefetch-jobs.ts): counted on the leader that runs them; `job` is bounded by the config.
    prefetchRuns: new Counter({
      name: 'outpost_prefetch_runs_total',
      help: 'Prefetch runs finished by this node, by job and result (succeeded, partial: some images failed, failed: the run itself failed).',
      labelNames: ['job', 'result'] as const,
      registers: [registry],
    }),
    prefetchImages: new Counter({
      name: 'outpost_prefetch_images_total',
      help: 'Images of prefetch runs done by this node, by job and result (warmed, skipped, failed).',
      labelNames: ['job', 'result'] as const,
      registers: [registry],
    }),
    prefetchBytes: new Counter({
      name: 'outpost_prefetch_bytes_total',
      help: 'Bytes of the blobs of the images prefetch runs warmed (counted once per image, whatever the number of replicas).',
      labelNames: ['job'] as const,
      registers: [registry],
    }),
    prefetchRunDuration: new Histogram({
      name: 'outpost_prefetch_run_duration_seconds',
      help: 'Duration of finished prefetch runs, from start (on whichever leader) to finish.',
      labelNames: ['job'] as const,
      buckets: [1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400],
      registers: [registry],
    }),
  };
}

export type PrimaryMetrics = ReturnType<typeof primaryMetrics>;

/** The eviction service's observations as metrics. */
export function indexMetricsObserver(m: PrimaryMetrics): IndexObserver {
  return {
    budget: (maxBytes) => m.cacheMax.set(maxBytes),
    usage: (bytes, entries) => {
      m.cacheSize.set(bytes);
      m.cacheEntries.set(entries);
    },
    evicted: (reason, bytes) => {
      m.evictions.inc({ reason });
      m.evictedBytes.inc({ reason }, bytes);
    },
    tornFiles: (count) => m.corruptFiles.inc({ check: 'size' }, count),
  };
}

/** The core's observations as metrics. */
/** Counts one warm's result (cache/image-warmer.ts `onResult`). */
export function countWarm(m: WorkerMetrics, result: { ok: boolean; skipped?: string; blobs: number; cachedBlobs: number }): void {
  m.prefetchImages.inc({ result: !result.ok ? 'failed' : result.skipped !== undefined ? 'skipped' : 'warmed' });
  if (!result.ok) return;
  m.prefetchBlobs.inc({ state: 'cached' }, result.cachedBlobs);
  m.prefetchBlobs.inc({ state: 'fetched' }, result.blobs - result.cachedBlobs);
}

export function metricsObserver(m: WorkerMetrics): CacheObserver {
  return {
    cacheResult: (kind: CacheKind, result: CacheResult) => m.cacheRequests.inc({ kind, result }),
    staleServed: (kind, reason) => m.staleServed.inc({ kind, reason }),
    fillStarted: () => m.fillsInFlight.inc(),
    fillEnded: (outcome, bytes) => {
      m.fillsInFlight.dec();
      m.fills.inc({ outcome });
      m.upstreamBytes.inc(bytes);
    },
    peerFill: (result) => m.peerFills.inc({ result }),
    peerBytes: (bytes) => m.peerBytes.inc(bytes),
    fillLockWait: () => m.fillLockWaits.inc(),
    fanOut: (event) => m.fanOutReaders.inc({ event }),
    upstreamFailure: (code) => m.upstreamErrors.inc({ code }),
    cacheWriteFailed: (code) => m.cacheWriteFailures.inc({ code }),
  };
}

/** Prefetch runs as metrics (prefetch/prefetch-jobs.ts PrefetchObserver). */
export function prefetchMetricsObserver(m: PrimaryMetrics): {
  runFinished(job: string, result: string, seconds: number): void;
  imageDone(job: string, result: string, bytes: number): void;
} {
  return {
    runFinished: (job, result, seconds) => {
      m.prefetchRuns.inc({ job, result });
      m.prefetchRunDuration.observe({ job }, seconds);
    },
    imageDone: (job, result, bytes) => {
      m.prefetchImages.inc({ job, result });
      if (bytes > 0) m.prefetchBytes.inc({ job }, bytes);
    },
  };
}
