/**
 * A node's holdings in the location index (real redis-server, no etcd): once
 * its address had expired — and the sweep may have removed its entries since —
 * the node announces its whole cache again when it publishes the address; and
 * its sweep removes the entries of a replica that left, logged and counted.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/cache/ports.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { primaryMetrics } from '../../../src/observability/metrics.ts';
import { ClusterNode } from '../../../src/process/cluster-node.ts';
import { digestOf, parseDigest } from '../../../src/registry/digest.ts';
import { startRedis, type RedisServer } from '../../support/redis.ts';
import { waitFor } from '../../support/wait.ts';

let redis: RedisServer;
let dir: string;

beforeAll(async () => {
  redis = await startRedis();
  dir = await mkdtemp(path.join(tmpdir(), 'outpost-cluster-node-'));
}, 30_000);
afterAll(async () => {
  await redis?.dispose();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('ClusterNode and the location index', () => {
  it('announces its cache again when its address had expired, and sweeps the entries of a replica that left', async () => {
    const held = [parseDigest(digestOf(Buffer.from('held one'))), parseDigest(digestOf(Buffer.from('held two')))];
    const config = loadConfig({
      env: {
        OUTPOST_CACHE_DIR: dir,
        OUTPOST_REDIS_URL: redis.url,
        OUTPOST_PEER_SECRET: 'a-peer-secret-of-enough-length',
        OUTPOST_ADVERTISE_URL: 'http://n1.example:5000',
        OUTPOST_NODE_ID: 'n1',
        OUTPOST_CLUSTER_NAME: 'reannounce-unit',
      },
    });
    const infos: string[] = [];
    const logger = { debug() {}, warn() {}, error() {}, info: (_obj: object, msg: string) => void infos.push(msg), child: () => logger, fatal() {}, trace() {} };
    const metrics = primaryMetrics();
    const node = await ClusterNode.start({
      config,
      logger: logger as never,
      metrics,
      clock: systemClock,
      local: { cacheBytes: () => 0, fillsInFlight: () => 0, workers: () => ({ up: 1, configured: 1 }), cacheWritable: () => true, workerMetrics: async () => '', cachedDigests: () => held },
      onChange: () => {},
    });
    try {
      const { Redis } = await import('ioredis');
      const client = new Redis(redis.url);
      try {
        const key = (...parts: string[]) => ['reannounce-unit', ...parts].join(':');
        const holders = async () => Promise.all(held.map(async (d) => (await client.smembers(key('blob', d))).sort()));
        await waitFor(async () => (await holders()).every((ids) => ids.includes('n1')), { what: 'the first announcement', timeoutMs: 10_000 });
        // As if this process had stalled past its address's TTL and a sweep had run meanwhile.
        await client.del(key('node', 'n1'));
        for (const d of held) await client.srem(key('blob', d), 'n1');
        await waitFor(async () => (await holders()).every((ids) => ids.includes('n1')), { what: 'the cache announced again', timeoutMs: 10_000 });
        expect(await client.get(key('node', 'n1'))).toBe('http://n1.example:5000');
        expect(infos).toContain("this node's address in Redis had expired; announcing its cache again");

        // A replica that left for good: its entries go at the next sweep, this node's stay.
        await client.sadd(key('blob', held[0]!), 'gone-replica');
        await client.sadd(key('blob', held[1]!), 'gone-replica');
        await node.sweepLocations();
        expect(await holders()).toEqual([['n1'], ['n1']]);
        expect(await metrics.registry.getSingleMetricAsString('outpost_location_entries_swept_total')).toMatch(/^outpost_location_entries_swept_total 2$/m);
        expect(infos).toContain('removed the location entries of replicas whose address expired');
      } finally {
        client.disconnect();
      }
    } finally {
      await node.stop();
    }
  });
});
