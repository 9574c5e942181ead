/**
 * The replica set's pull activity in Redis, for the status page: every
 * replica's cluster primary adds the pulls its workers answered, and any
 * replica reads them back merged.
 *
 *   <cluster>:status:recent-pulls      list of JSON pulls (newest first), trimmed to the last 100
 *   <cluster>:status:repos-by-pulls    sorted set repository → manifest pulls, trimmed to the top 1000
 *   <cluster>:status:repos-by-bytes    sorted set repository → blob bytes sent, trimmed to the top 1000
 *
 * Each key expires a week after the last write. What is read back is
 * untrusted text: a pull becomes a RecentPull only through the same parser
 * as an IPC batch, and is escaped where it is shown.
 *
 * Error contract: rejects with an ioredis error when Redis does not answer
 * (every command bounded by the connection's command timeout).
 */
import {
  parsePullBatch,
  recentPullsKept,
  reposKept,
  type PullBatch,
  type RecentPull,
  type SharedPullActivity,
  type SharedPulls,
} from '../cluster/pull-activity.ts';
import type { RedisConnection } from './redis-connection.ts';

const keepMs = 7 * 24 * 3600 * 1000;

export class RedisPullActivity implements SharedPullActivity {
  private readonly recentKey: string;
  private readonly pullsKey: string;
  private readonly bytesKey: string;

  constructor(
    private readonly redis: RedisConnection,
    private readonly nodeId: string,
  ) {
    this.recentKey = redis.key('status', 'recent-pulls');
    this.pullsKey = redis.key('status', 'repos-by-pulls');
    this.bytesKey = redis.key('status', 'repos-by-bytes');
  }

  /** Whether Redis answers right now. */
  up(): boolean {
    return this.redis.state().up;
  }

  async add(batch: PullBatch): Promise<void> {
    const m = this.redis.client.multi();
    if (batch.recent.length > 0) {
      m.lpush(this.recentKey, ...batch.recent.map((pull) => JSON.stringify({ ...pull, node: this.nodeId })));
      m.ltrim(this.recentKey, 0, recentPullsKept - 1);
      m.pexpire(this.recentKey, keepMs);
    }
    let repos = false;
    for (const [name, pulls, bytes] of batch.repositories) {
      if (pulls > 0) m.zincrby(this.pullsKey, pulls, name);
      if (bytes > 0) m.zincrby(this.bytesKey, bytes, name);
      repos ||= pulls > 0 || bytes > 0;
    }
    if (repos) {
      for (const key of [this.pullsKey, this.bytesKey]) {
        m.zremrangebyrank(key, 0, -(reposKept + 1));
        m.pexpire(key, keepMs);
      }
    }
    await m.exec();
  }

  async read(recentLimit: number, topLimit: number): Promise<SharedPulls> {
    const [recentRaw, pullsRaw, bytesRaw] = await Promise.all([
      this.redis.client.lrange(this.recentKey, 0, recentLimit - 1),
      this.redis.client.zrevrange(this.pullsKey, 0, topLimit - 1, 'WITHSCORES'),
      this.redis.client.zrevrange(this.bytesKey, 0, topLimit - 1, 'WITHSCORES'),
    ]);
    const byPullsNames = pairs(pullsRaw);
    const byBytesNames = pairs(bytesRaw);
    const [bytesOfTop, pullsOfTop] = await Promise.all([
      byPullsNames.length > 0 ? this.redis.client.zmscore(this.bytesKey, ...byPullsNames.map(([n]) => n)) : Promise.resolve([]),
      byBytesNames.length > 0 ? this.redis.client.zmscore(this.pullsKey, ...byBytesNames.map(([n]) => n)) : Promise.resolve([]),
    ]);
    return {
      recent: parseRecent(recentRaw),
      byPulls: byPullsNames.map(([repository, pulls], i) => ({ repository, pulls, bytes: Number(bytesOfTop[i] ?? 0) || 0 })),
      byBytes: byBytesNames.map(([repository, bytes], i) => ({ repository, pulls: Number(pullsOfTop[i] ?? 0) || 0, bytes })),
    };
  }
}

/** `[member, score, member, score, ...]` → pairs with finite non-negative scores. */
function pairs(raw: string[]): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const score = Number(raw[i + 1]);
    if (Number.isFinite(score) && score >= 0) out.push([raw[i]!.slice(0, 256), score]);
  }
  return out;
}

function parseRecent(raw: string[]): Array<RecentPull & { node: string }> {
  const out: Array<RecentPull & { node: string }> = [];
  for (const text of raw) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      continue;
    }
    const node = (value as { node?: unknown } | null)?.node;
    const pull = parsePullBatch({ recent: [value], repositories: [] })?.recent[0];
    if (pull !== undefined && typeof node === 'string') out.push({ ...pull, node: node.slice(0, 256) });
  }
  return out.sort((a, b) => b.at - a.at);
}
