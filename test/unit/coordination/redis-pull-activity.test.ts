/** The replica set's pull activity on a real redis-server: two replicas add, either reads both, bounded, and what is read back is parsed. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/cache/ports.ts';
import { recentPullsKept, reposKept } from '../../../src/cluster/pull-activity.ts';
import { RedisConnection } from '../../../src/coordination/redis-connection.ts';
import { RedisPullActivity } from '../../../src/coordination/redis-pull-activity.ts';
import { startRedis, type RedisServer } from '../../support/redis.ts';
import { waitFor } from '../../support/wait.ts';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
let redis: RedisServer;
const connections: RedisConnection[] = [];

async function replica(id: string, cluster: string): Promise<RedisPullActivity> {
  const connection = new RedisConnection({
    url: redis.url,
    clusterName: cluster,
    connectTimeoutMs: 1_000,
    commandTimeoutMs: 500,
    pingIntervalMs: 200,
    logger: quiet,
    clock: systemClock,
  });
  connection.start();
  connections.push(connection);
  await waitFor(() => connection.state().up, { what: 'Redis to answer' });
  return new RedisPullActivity(connection, id);
}

beforeAll(async () => {
  redis = await startRedis();
}, 30_000);
afterAll(async () => {
  await Promise.all(connections.map((c) => c.stop()));
  await redis.dispose();
});

describe('RedisPullActivity', () => {
  it('merges the recent pulls and repositories of every replica, newest first, naming the replica', async () => {
    const [n1, n2] = await Promise.all([replica('n1', 'merge'), replica('n2', 'merge')]);
    expect(n1.up()).toBe(true);
    await n1.add({ recent: [{ at: 1_000, repository: 'team/app', reference: 'v1', client: '10.0.0.1', result: 'miss', user: 'alice' }], repositories: [['team/app', 1, 5_000]] });
    await n2.add({ recent: [{ at: 2_000, repository: 'team/app', reference: 'v1', client: '10.0.0.2', result: 'hit' }], repositories: [['team/app', 1, 0], ['team/big', 0, 90_000]] });
    for (const reader of [n1, n2]) {
      const shared = await reader.read(30, 10);
      expect(shared.recent).toEqual([
        { at: 2_000, repository: 'team/app', reference: 'v1', client: '10.0.0.2', result: 'hit', node: 'n2' },
        { at: 1_000, repository: 'team/app', reference: 'v1', client: '10.0.0.1', result: 'miss', user: 'alice', node: 'n1' },
      ]);
      expect(shared.byPulls).toEqual([{ repository: 'team/app', pulls: 2, bytes: 5_000 }]);
      expect(shared.byBytes).toEqual([
        { repository: 'team/big', pulls: 0, bytes: 90_000 },
        { repository: 'team/app', pulls: 2, bytes: 5_000 },
      ]);
    }
  });

  it('keeps the last hundred pulls and the top thousand repositories, with an expiry', async () => {
    const n1 = await replica('n1', 'bounds');
    const recent = Array.from({ length: 150 }, (_, i) => ({ at: i, repository: 'a', reference: `v${i}`, client: 'c', result: 'hit' as const }));
    await n1.add({ recent, repositories: Array.from({ length: reposKept + 20 }, (_, i): [string, number, number] => [`r${i}`, i + 1, i + 1]) });
    const integer = async (line: string): Promise<number> => Number((await redis.command(line)).trim().slice(1));
    expect(await integer('LLEN bounds:status:recent-pulls')).toBe(recentPullsKept);
    expect(await integer('ZCARD bounds:status:repos-by-pulls')).toBe(reposKept);
    expect(await integer('PTTL bounds:status:repos-by-bytes')).toBeGreaterThan(6 * 24 * 3600 * 1000);
    const shared = await n1.read(30, 10);
    expect(shared.recent).toHaveLength(30);
    expect(shared.recent[0]!.reference).toBe('v149');
    expect(shared.byPulls[0]).toEqual({ repository: `r${reposKept + 19}`, pulls: reposKept + 20, bytes: reposKept + 20 });
  });

  it('skips what it cannot parse back (another writer, a corrupted entry)', async () => {
    const n1 = await replica('n1', 'garbage');
    await redis.command('LPUSH garbage:status:recent-pulls not-json');
    await redis.command(`LPUSH garbage:status:recent-pulls {"at":"x","repository":"a"}`);
    await n1.add({ recent: [{ at: 5, repository: 'ok/repo', reference: 'v1', client: 'c', result: 'hit' }], repositories: [] });
    expect((await n1.read(30, 10)).recent.map((p) => p.repository)).toEqual(['ok/repo']);
  });
});
