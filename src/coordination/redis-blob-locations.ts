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
 * whoever asked, and every byte fetched from a replica is verified.
 *
 * Error contract: every method rejects with an ioredis error when Redis does
 * not answer (no offline queue, bounded commands: redis-connection.ts).
 */
import type { PeerRef } from '../cache/ports.ts';
import type { Digest } from '../registry/digest.ts';
import type { RedisConnection } from './redis-connection.ts';

/** Commands per pipeline when a whole cache is announced. */
const batchSize = 1_000;

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

  /** Publishes this replica's address for `ttlMs`. */
  async advertise(url: string, ttlMs: number): Promise<void> {
    await this.redis.client.set(this.redis.key('node', this.nodeId), url, 'PX', ttlMs);
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
