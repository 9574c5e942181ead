/**
 * Pull statistics per replica in Redis, for dashboards and the leader's
 * cluster-wide views: one hash per replica, `<cluster>:pulls:<node-id>`,
 * rewritten every few seconds and expiring when the replica stops writing.
 */
import type { PullStats } from '../cluster/pull-stats.ts';
import type { RedisConnection } from './redis-connection.ts';

export async function publishPullStats(redis: RedisConnection, nodeId: string, stats: PullStats, at: number, ttlMs: number): Promise<void> {
  const key = redis.key('pulls', nodeId);
  await redis.client
    .multi()
    .hset(key, {
      blob_hits: stats.blobHits,
      blob_lookups: stats.blobLookups,
      served_from_cache_bytes: stats.servedFromCache,
      served_from_fill_bytes: stats.servedFromFill,
      fetched_upstream_bytes: stats.fetchedUpstream,
      updated_at: new Date(at).toISOString(),
    })
    .pexpire(key, ttlMs)
    .exec();
}
