/**
 * The cluster-wide fill lock of a digest in Redis:
 *
 *   <cluster>:fill:<digest>  "<node-id> <token>", with a TTL (PX)
 *
 * Taken (SET PX, in a script: only when free) by the replica that fetches the blob from the primary,
 * renewed while the fill runs, released (compare-and-delete on the token)
 * when it ends — after announcing the blob when it was cached, in the same
 * script, so another replica never finds neither a holder nor a lock. A
 * replica that dies stops renewing: the lock expires within its TTL. A lock
 * left by this very node (a worker or process that died) is taken over at
 * once.
 *
 * Error contract: every method rejects with an ioredis error when Redis does
 * not answer (no offline queue, bounded commands: redis-connection.ts).
 */
import type { Digest } from '../registry/digest.ts';
import type { RedisConnection } from './redis-connection.ts';

// A live replica that announced the blob between the caller's look at the holders and now wins
// over the lock: the caller fetches from it instead of crossing the WAN a second time.
const acquireScript = `
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, string.len(ARGV[3])) ~= ARGV[3] then return current end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if id ~= ARGV[5] and redis.call('EXISTS', ARGV[4] .. id) == 1 then return 'announced' end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`;

const renewScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

const releaseScript = `
if ARGV[2] == '1' then redis.call('SADD', KEYS[2], ARGV[3]) end
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export type LockAttempt = { acquired: true } | { acquired: false; owner: string } | { acquired: false; announced: true };

export class RedisFillLocks {
  constructor(
    private readonly redis: RedisConnection,
    private readonly nodeId: string,
    private readonly ttlMs: number,
  ) {}

  /** Takes the lock, unless another replica holds it or a live replica announced the blob meanwhile. */
  async acquire(digest: Digest, token: string): Promise<LockAttempt> {
    const current = await this.redis.client.eval(
      acquireScript,
      2,
      this.key(digest),
      this.redis.key('blob', digest),
      this.value(token),
      String(this.ttlMs),
      `${this.nodeId} `,
      this.redis.key('node', ''),
      this.nodeId,
    );
    if (typeof current !== 'string') return { acquired: true };
    if (current === 'announced') return { acquired: false, announced: true };
    return { acquired: false, owner: ownerOf(current) };
  }

  /** Extends the lock while it is still ours; false when it is not (expired, or Redis lost it). */
  async renew(digest: Digest, token: string): Promise<boolean> {
    return (await this.redis.client.eval(renewScript, 1, this.key(digest), this.value(token), String(this.ttlMs))) === 1;
  }

  /** Lets the lock go if it is still ours; `announce`: this replica holds the blob now. */
  async release(digest: Digest, token: string, announce: boolean): Promise<void> {
    await this.redis.client.eval(releaseScript, 2, this.key(digest), this.redis.key('blob', digest), this.value(token), announce ? '1' : '0', this.nodeId);
  }

  /** The node id holding the lock now; undefined when nobody does. */
  async owner(digest: Digest): Promise<string | undefined> {
    const current = await this.redis.client.get(this.key(digest));
    return current === null ? undefined : ownerOf(current);
  }

  private key(digest: Digest): string {
    return this.redis.key('fill', digest);
  }

  private value(token: string): string {
    return `${this.nodeId} ${token}`;
  }
}

function ownerOf(value: string): string {
  const space = value.indexOf(' ');
  return space < 0 ? value : value.slice(0, space);
}
