/** The bounded Redis connection against a real redis-server that goes away and comes back. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/cache/ports.ts';
import { RedisConnection, type RedisState } from '../../../src/coordination/redis-connection.ts';
import { publishPullStats } from '../../../src/coordination/redis-pull-stats.ts';
import { startRedis, type RedisServer } from '../../support/redis.ts';
import { waitFor } from '../../support/wait.ts';

let redis: RedisServer;
let connection: RedisConnection;
const changes: RedisState[] = [];
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

beforeAll(async () => {
  redis = await startRedis();
  connection = new RedisConnection({
    url: redis.url,
    clusterName: 'unit-cluster',
    connectTimeoutMs: 1_000,
    commandTimeoutMs: 300,
    pingIntervalMs: 200,
    logger: quiet,
    clock: systemClock,
    onChange: (state) => changes.push(state),
  });
  connection.start();
}, 30_000);
afterAll(async () => {
  await connection?.stop();
  await redis?.dispose();
});

describe('the Redis connection', () => {
  it('comes up, prefixes keys with the cluster name and publishes pull statistics', async () => {
    await waitFor(() => connection.state().up, { what: 'Redis up', timeoutMs: 5_000 });
    expect(connection.key('pulls', 'n1')).toBe('unit-cluster:pulls:n1');
    await publishPullStats(connection, 'n1', { blobHits: 9, blobLookups: 10, servedFromCache: 100, servedFromFill: 1, fetchedUpstream: 1 }, Date.now(), 60_000);
    expect(await redis.command('HGET unit-cluster:pulls:n1 blob_hits')).toBe('$1\r\n9\r\n');
    const ttl = Number(/:(\d+)/.exec(await redis.command('PTTL unit-cluster:pulls:n1'))?.[1]);
    expect(ttl).toBeGreaterThan(50_000);
  });

  it('fails commands at once while Redis is down, never queueing them, and recovers by itself', async () => {
    await redis.stop();
    try {
      await waitFor(() => !connection.state().up, { what: 'Redis down', timeoutMs: 5_000 });
      const started = Date.now();
      await expect(connection.client.get(connection.key('anything'))).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(300);
    } finally {
      await redis.start();
    }
    await waitFor(() => connection.state().up, { what: 'Redis up again', timeoutMs: 5_000 });
    expect(await connection.client.ping()).toBe('PONG');
    expect(changes.map((c) => c.up)).toEqual([true, false, true]);
  });

  it('notices a Redis that stops answering without closing the connection', async () => {
    process.kill(redis.pid!, 'SIGSTOP');
    try {
      await waitFor(() => !connection.state().up, { what: 'a hung Redis noticed', timeoutMs: 3_000 });
      expect(connection.state().error).toContain('PING failed');
    } finally {
      process.kill(redis.pid!, 'SIGCONT');
    }
    await waitFor(() => connection.state().up, { what: 'Redis answering again', timeoutMs: 3_000 });
  });
});
