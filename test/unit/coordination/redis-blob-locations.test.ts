/**
 * The location index on a real redis-server: the sweep that removes the
 * entries of replicas whose address expired, and an address that says
 * whether it had expired. A replica that leaves for good (a replaced pod
 * gets a new name) must not stay in the set of everything it held.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/cache/ports.ts';
import { RedisBlobLocations } from '../../../src/coordination/redis-blob-locations.ts';
import { RedisConnection } from '../../../src/coordination/redis-connection.ts';
import { digestOf, parseDigest, type Digest } from '../../../src/registry/digest.ts';
import { startRedis, type RedisServer } from '../../support/redis.ts';
import { waitFor } from '../../support/wait.ts';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
let redis: RedisServer;
const connections: RedisConnection[] = [];

function connect(clusterName: string): RedisConnection {
  const connection = new RedisConnection({ url: redis.url, clusterName, connectTimeoutMs: 1_000, commandTimeoutMs: 1_000, pingIntervalMs: 200, logger: quiet, clock: systemClock });
  connection.start();
  connections.push(connection);
  return connection;
}

const digest = (text: string): Digest => parseDigest(digestOf(Buffer.from(text)));

beforeAll(async () => {
  redis = await startRedis();
}, 30_000);
afterAll(async () => {
  for (const connection of connections) await connection.stop();
  await redis?.dispose();
});

describe('RedisBlobLocations', () => {
  it('sweeps the entries of replicas whose address expired, and only those', async () => {
    const connection = connect('sweep-unit');
    const other = connect('sweep-other'); // another replica set on the same Redis
    await waitFor(() => connection.state().up && other.state().up, { what: 'Redis connected', timeoutMs: 5_000 });
    const [live, expiring, never] = ['live', 'expiring', 'never'].map((id) => new RedisBlobLocations(connection, id));
    const elsewhere = new RedisBlobLocations(other, 'never');
    const [d1, d2, d3] = [digest('one'), digest('two'), digest('three')];
    await live!.advertise('http://live.example:5000', 60_000);
    await expiring!.advertise('http://expiring.example:5000', 200);
    await live!.announce([d1, d2]);
    await expiring!.announce([d1, d3]);
    await never!.announce([d3]);
    await elsewhere.announce([d1]);
    await waitFor(async () => (await live!.address('expiring')) === undefined, { what: 'the address of "expiring" to expire', timeoutMs: 5_000 });

    // (SCAN may visit a key twice while Redis rehashes: `sets` counts visits.)
    expect(await live!.sweep()).toEqual({ sets: expect.toSatisfy((n: number) => n >= 3), removed: 3 });
    const members = async (c: RedisConnection, d: Digest) => (await c.client.smembers(c.key('blob', d))).sort();
    expect(await members(connection, d1)).toEqual(['live']);
    expect(await members(connection, d2)).toEqual(['live']);
    expect(await members(connection, d3)).toEqual([]);
    expect(await connection.client.exists(connection.key('blob', d3))).toBe(0);
    // Another replica set's sets are not this sweep's business.
    expect(await members(other, d1)).toEqual(['never']);
    expect(await live!.sweep()).toEqual({ sets: expect.toSatisfy((n: number) => n >= 2), removed: 0 });
  });

  it('says whether its address was there when it publishes it', async () => {
    const connection = connect('advertise-unit');
    await waitFor(() => connection.state().up, { what: 'Redis connected', timeoutMs: 5_000 });
    const node = new RedisBlobLocations(connection, 'n1');
    expect(await node.advertise('http://n1.example:5000', 300)).toBe(false);
    expect(await node.advertise('http://n1.example:5000', 300)).toBe(true);
    await waitFor(async () => (await node.address('n1')) === undefined, { what: 'the address to expire', timeoutMs: 5_000 });
    expect(await node.advertise('http://n1.example:5000', 300)).toBe(false);
    expect(await node.address('n1')).toBe('http://n1.example:5000');
  });

  it('sweeps many sets, a batch per round trip', async () => {
    const connection = connect('sweep-many');
    await waitFor(() => connection.state().up, { what: 'Redis connected', timeoutMs: 5_000 });
    const gone = new RedisBlobLocations(connection, 'gone');
    const digests = Array.from({ length: 1_500 }, (_, i) => digest(`blob-${i}`));
    await gone.announce(digests);
    expect(await gone.sweep()).toEqual({ sets: expect.toSatisfy((n: number) => n >= 1_500), removed: 1_500 });
    expect(await connection.client.keys(connection.key('blob', '*'))).toEqual([]);
  });
});
