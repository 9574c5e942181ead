/**
 * The replica set's shared state on a real redis-server, as workers reach it:
 * IpcSharedState (one per worker) → SharedStateBroker (the node's cluster
 * primary) → Redis. Two "nodes" share one Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock, type FillLockResult } from '../../../src/cache/ports.ts';
import { IpcSharedState } from '../../../src/coordination/ipc-shared-state.ts';
import { RedisBlobLocations } from '../../../src/coordination/redis-blob-locations.ts';
import { RedisConnection } from '../../../src/coordination/redis-connection.ts';
import { RedisFillLocks } from '../../../src/coordination/redis-fill-lock.ts';
import { RedisTagCache } from '../../../src/coordination/redis-tag-cache.ts';
import { SharedStateBroker } from '../../../src/coordination/shared-state-broker.ts';
import { digestOf } from '../../../src/registry/digest.ts';
import { startRedis, type RedisServer } from '../../support/redis.ts';
import { waitFor } from '../../support/wait.ts';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
let redis: RedisServer;

interface TestNode {
  connection: RedisConnection;
  locations: RedisBlobLocations;
  broker: SharedStateBroker;
  /** A worker of this node (worker id 1). */
  worker: IpcSharedState;
  /** Simulates the worker's exit. */
  exitWorker(): void;
}

function node(id: string, lockTtlMs = 600): TestNode {
  const connection = new RedisConnection({
    url: redis.url,
    clusterName: 'shared-unit',
    connectTimeoutMs: 1_000,
    commandTimeoutMs: 300,
    pingIntervalMs: 200,
    logger: quiet,
    clock: systemClock,
  });
  connection.start();
  const locations = new RedisBlobLocations(connection, id);
  const broker = new SharedStateBroker({
    redisUp: () => connection.state().up,
    locations,
    locks: new RedisFillLocks(connection, id, lockTtlMs),
    tags: new RedisTagCache(connection),
    lockTtlMs,
    tagTtlMs: 60_000,
    logger: quiet,
  });
  const listeners: ((message: unknown) => void)[] = [];
  const peer = { id: 1, send: (message: object) => setImmediate(() => listeners.forEach((l) => l(structuredClone(message)))) };
  const worker = new IpcSharedState(
    { send: (message) => setImmediate(() => broker.handle(peer, structuredClone(message))), onMessage: (listener) => listeners.push(listener) },
    800,
  );
  return { connection, locations, broker, worker, exitWorker: () => broker.peerGone(1) };
}

let n1: TestNode;
let n2: TestNode;

beforeAll(async () => {
  redis = await startRedis();
  n1 = node('n1');
  n2 = node('n2');
  await waitFor(() => n1.connection.state().up && n2.connection.state().up, { what: 'both nodes connected to Redis', timeoutMs: 5_000 });
  await n1.locations.advertise('http://n1.example:5000', 60_000);
  await n2.locations.advertise('http://n2.example:5000', 60_000);
}, 30_000);
afterAll(async () => {
  for (const n of [n1, n2]) {
    n?.broker.stop();
    await n?.connection.stop();
  }
  await redis?.dispose();
});

describe('the shared state through the cluster primary', () => {
  it('lists the other replicas that announced a digest, with their address, and forgets false hints', async () => {
    const digest = digestOf(Buffer.from('located'));
    await n1.locations.announce([digest]);
    expect(await n2.worker.holders(digest)).toEqual([{ id: 'n1', url: 'http://n1.example:5000' }]);
    expect(await n1.worker.holders(digest)).toEqual([]); // never itself
    n2.worker.notHeld(digest, 'n1');
    await waitFor(async () => (await n2.worker.holders(digest)).length === 0, { what: 'the false hint dropped', timeoutMs: 2_000 });
    await n1.locations.announce([digest]);
    await n1.locations.withdraw([digest]);
    expect(await n2.worker.holders(digest)).toEqual([]);
  });

  it('gives the fill lock to one replica, names it to the other, and announces the blob as it releases', async () => {
    const digest = digestOf(Buffer.from('locked'));
    const first = await n1.worker.lock(digest);
    expect(first.kind).toBe('acquired');
    expect(await n2.worker.lock(digest)).toEqual({ kind: 'held', owner: { id: 'n1', url: 'http://n1.example:5000' } });
    expect(await n2.worker.lockOwner(digest)).toBe('n1');
    // Renewed while the fill runs: still held well past its 600 ms TTL.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await n2.worker.lockOwner(digest)).toBe('n1');
    (first as Extract<FillLockResult, { kind: 'acquired' }>).lock.release(true);
    await waitFor(async () => (await n2.worker.lockOwner(digest)) === undefined, { what: 'the lock released', timeoutMs: 2_000 });
    expect(await n2.worker.holders(digest)).toEqual([{ id: 'n1', url: 'http://n1.example:5000' }]);
    // A live holder now: nobody takes the lock to fetch it from the primary again.
    expect(await n2.worker.lock(digest)).toEqual({ kind: 'announced' });
  });

  it('releases the locks of a worker that exits, and lets a dead node’s lock expire', async () => {
    const digest = digestOf(Buffer.from('worker exits'));
    expect((await n1.worker.lock(digest)).kind).toBe('acquired');
    n1.exitWorker();
    await waitFor(async () => (await n2.worker.lockOwner(digest)) === undefined, { what: 'the lock of the exited worker released', timeoutMs: 2_000 });
    const other = digestOf(Buffer.from('node dies'));
    expect((await n1.worker.lock(other)).kind).toBe('acquired');
    n1.broker.stop(); // no more renewals, as when the node dies
    const started = Date.now();
    await waitFor(async () => (await n2.worker.lock(other)).kind === 'acquired', { what: 'the dead node’s lock to expire', timeoutMs: 3_000, intervalMs: 50 });
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('shares tag answers, and answers at once that nothing is known while Redis is down', async () => {
    const record = { digest: digestOf(Buffer.from('manifest')), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 8, fetchedAt: Date.now() };
    n1.worker.put('registry.example', 'team/app', 'v1', record);
    await waitFor(async () => (await n2.worker.get('registry.example', 'team/app', 'v1')) !== undefined, { what: 'the shared tag answer', timeoutMs: 2_000 });
    expect(await n2.worker.get('registry.example', 'team/app', 'v1')).toEqual(record);
    await redis.stop();
    try {
      await waitFor(() => !n2.connection.state().up, { what: 'Redis down', timeoutMs: 5_000 });
      const started = Date.now();
      expect(await n2.worker.get('registry.example', 'team/app', 'v1')).toBeUndefined();
      await expect(n2.worker.holders(record.digest)).rejects.toThrow('Redis unreachable');
      expect(await n2.worker.lock(record.digest)).toEqual({ kind: 'unavailable' });
      expect(Date.now() - started).toBeLessThan(100);
    } finally {
      await redis.start();
    }
  });
});
