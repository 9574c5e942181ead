/**
 * Which replicas hold which content, and where they are, in Redis:
 *
 *   <cluster>:blob:<digest>    set of node ids holding the digest on disk (blobs
 *                              and manifest bytes): added when a fill commits,
 *                              removed on eviction, purge and corruption
 *   <cluster>:node:<node-id>   the replica's advertise URL; expires unless the
 *                              replica refreshes it, so a dead replica's entries
 *                              are no longer handed out once it expired
 *
 * Entries are hints: a replica that answers 404 is dropped from the set by
 * whoever asked, and every byte fetched from a replica is verified. The
 * entries of a replica whose address expired are swept from every set (a
 * replica that left for good, e.g. a replaced pod, would otherwise stay in
 * the set of everything it held); a replica that finds its address had
 * expired announces its holdings again.
 *
 * Error contract: every method rejects with an ioredis error when Redis does
 * not answer (no offline queue, bounded commands: redis-connection.ts).
 */
import type { PeerRef } from '../cache/ports.ts';
import type { Digest } from '../registry/digest.ts';
import type { RedisConnection } from './redis-connection.ts';

/** Commands per pipeline when a whole cache is announced. */
const batchSize = 1_000;
/** Sets pruned per round trip by {@link RedisBlobLocations.sweep}. */
const sweepBatch = 200;

/**
 * Removes from one location set (KEYS[1]) the node ids without an address
 * (`ARGV[1]` .. id), atomically: a replica announces its holdings only after
 * its address, so one announcing meanwhile is never removed. (It reads keys
 * it is not given, which a single Redis allows and Redis Cluster would not.)
 */
const pruneScript = `local removed = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. id) == 0 then
    redis.call('SREM', KEYS[1], id)
    removed = removed + 1
  end
end
return removed`;

export class RedisBlobLocations {
  constructor(
    private readonly redis: RedisConnection,
    private readonly nodeId: string,
  ) {}

  /** This replica holds these digests. */
  async announce(digests: Iterable<Digest>): Promise<number> {
    return this.each(digests, (pipeline, digest) => pipeline.sadd(this.redis.key('blob', digest), this.nodeId));
  }

  /** `nodeId` (this replica by default) no longer holds these digests. */
  async withdraw(digests: Iterable<Digest>, nodeId = this.nodeId): Promise<number> {
    return this.each(digests, (pipeline, digest) => pipeline.srem(this.redis.key('blob', digest), nodeId));
  }

  /** Replicas other than this one that announced `digest` and whose address has not expired. */
  async holders(digest: Digest): Promise<PeerRef[]> {
    const ids = (await this.redis.client.smembers(this.redis.key('blob', digest))).filter((id) => id !== this.nodeId);
    if (ids.length === 0) return [];
    const urls = await this.redis.client.mget(ids.map((id) => this.redis.key('node', id)));
    return ids.flatMap((id, i) => (typeof urls[i] === 'string' && urls[i] !== '' ? [{ id, url: urls[i] }] : []));
  }

  /** Where a replica is, if it refreshed its address lately. */
  async address(nodeId: string): Promise<string | undefined> {
    return (await this.redis.client.get(this.redis.key('node', nodeId))) ?? undefined;
  }

  /** Publishes this replica's address for `ttlMs`; false when it was not there (the first time, or it expired meanwhile). */
  async advertise(url: string, ttlMs: number): Promise<boolean> {
    const key = this.redis.key('node', this.nodeId);
    const results = await this.redis.client.multi().exists(key).set(key, url, 'PX', ttlMs).exec();
    const failed = results?.find(([err]) => err !== null);
    if (failed) throw failed[0];
    return results?.[0]?.[1] === 1;
  }

  /** Removes the entries of every replica whose address expired from every location set; a few sets per round trip. */
  async sweep(): Promise<{ sets: number; removed: number }> {
    let cursor = '0';
    let sets = 0;
    let removed = 0;
    do {
      const [next, keys] = await this.redis.client.scan(cursor, 'MATCH', this.redis.key('blob', '*'), 'COUNT', sweepBatch);
      cursor = next;
      if (keys.length === 0) continue;
      const pipeline = this.redis.client.pipeline();
      for (const key of keys) pipeline.eval(pruneScript, 1, key, this.redis.key('node', ''));
      for (const [err, count] of (await pipeline.exec()) ?? []) {
        if (err) throw err;
        removed += Number(count);
      }
      sets += keys.length;
    } while (cursor !== '0');
    return { sets, removed };
  }

  /** A clean stop: peers stop asking this replica at once. */
  async leave(): Promise<void> {
    await this.redis.client.del(this.redis.key('node', this.nodeId));
  }

  private async each(digests: Iterable<Digest>, add: (pipeline: ReturnType<RedisConnection['client']['pipeline']>, digest: Digest) => void): Promise<number> {
    let count = 0;
    let pipeline = this.redis.client.pipeline();
    let queued = 0;
    for (const digest of digests) {
      add(pipeline, digest);
      queued += 1;
      count += 1;
      if (queued >= batchSize) {
        await exec(pipeline);
        pipeline = this.redis.client.pipeline();
        queued = 0;
      }
    }
    if (queued > 0) await exec(pipeline);
    return count;
  }
}

async function exec(pipeline: { exec(): Promise<[Error | null, unknown][] | null> }): Promise<void> {
  const results = await pipeline.exec();
  const failed = results?.find(([err]) => err !== null);
  if (failed) throw failed[0];
}
