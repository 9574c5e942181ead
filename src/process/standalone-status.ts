/**
 * `cluster_status` answered by a serving process on its own (no cluster
 * primary behind it, as when tests run the app in-process): the node alone,
 * as its own leader, with its health from its own checks.
 */
import type { Clock } from '../cache/ports.ts';
import { buildClusterStatus, type ClusterStatus } from '../cluster/cluster-status.ts';
import { hitRatio, pullStatsFromMetrics } from '../cluster/pull-stats.ts';
import type { Config } from '../config/types.ts';
import type { HealthReport } from '../observability/health.ts';
import { outpostVersion } from './version.ts';

export interface StandaloneStatusSources {
  config: Config;
  clock: Clock;
  health: () => Promise<HealthReport>;
  draining: () => boolean;
  /** This process's metrics (Prometheus text), for the hit ratio. */
  metrics: () => Promise<string>;
}

export function standaloneClusterStatus(sources: StandaloneStatusSources): () => Promise<ClusterStatus> {
  const { config, clock } = sources;
  const startedAt = clock.now();
  return async () => {
    const report = await sources.health();
    const now = clock.now();
    const problems = Object.entries(report.checks).flatMap(([name, check]) => (check.status === 'ok' ? [] : [check.detail ?? name]));
    return buildClusterStatus({
      now,
      self: {
        node_id: config.node.id,
        instance: '',
        advertise_url: config.node.advertiseUrl ?? '',
        version: outpostVersion(),
        started_at: new Date(startedAt).toISOString(),
        heartbeat_at: new Date(now).toISOString(),
        health: { status: report.status, problems, draining: sources.draining(), disk_failing: report.checks['cache_dir']?.status === 'failing' },
        cache_bytes: 0,
        cache_max_bytes: config.cache.maxBytes,
        hit_ratio: hitRatio(pullStatsFromMetrics(await sources.metrics())),
        fills_in_flight: 0,
      },
      staleAfterMs: 0,
    });
  };
}
