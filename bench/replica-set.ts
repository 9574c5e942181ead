/**
 * A replica set of Outpost nodes for the bench: a real etcd and a real
 * redis-server on free loopback ports (test/support), and N nodes that share
 * them, each with its own empty cache dir, its own node id and advertise URL,
 * and 1 worker (N × (cluster primary + worker) processes on a 2-core machine).
 *
 * Every set gets a cluster name of its own, so a fresh set starts with no
 * etcd members and no Redis keys left by the previous one: "cold" means the
 * whole set is cold, not only its disks.
 */
import { randomBytes } from 'node:crypto';
import type { ClusterStatus } from '../src/cluster/cluster-status.ts';
import { startEtcd, type EtcdServer } from '../test/support/etcd.ts';
import { startOutpost, type OutpostNode } from '../test/support/outpost.ts';
import { freePort } from '../test/support/ports.ts';
import { startRedis, type RedisServer } from '../test/support/redis.ts';
import { makeTempDir, removeTempDir } from '../test/support/temp.ts';
import { waitFor } from '../test/support/wait.ts';
import { outpostBenchEnv } from './targets.ts';

export interface Coordination {
  etcd: EtcdServer;
  redis: RedisServer;
}

export interface BenchReplicaSet {
  clusterName: string;
  /** In node-id order: a, b, c, ... */
  nodes: OutpostNode[];
  ids: string[];
  /** Stops every node (SIGTERM by pid, SIGKILL after a bound) and removes its cache dir. */
  dispose(): Promise<void>;
}

const adminToken = `bench-admin-${randomBytes(8).toString('hex')}`;
const peerSecret = randomBytes(32).toString('hex');

/** Starts etcd and redis-server; `add` registers each one's disposal as soon as it exists. */
export async function startCoordination(add: (dispose: () => Promise<void>) => void): Promise<Coordination> {
  const etcd = await startEtcd();
  add(() => etcd.dispose());
  const redis = await startRedis();
  add(() => redis.dispose());
  return { etcd, redis };
}

async function clusterStatus(node: OutpostNode): Promise<ClusterStatus> {
  const res = await fetch(`${node.url}/api/v0/meta/cluster_status`, {
    headers: { authorization: `Bearer ${adminToken}` },
    signal: AbortSignal.timeout(5_000),
  });
  if (res.status !== 200) throw new Error(`${node.host} cluster_status answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as ClusterStatus;
}

/**
 * Starts `size` replicas of a new cluster behind `upstreamUrl` and waits until
 * every node lists all of them as OK, names the same leader and reports no
 * issue (etcd and Redis reachable): the set is formed before anything is pulled.
 */
export async function startReplicaSet(options: {
  upstreamUrl: string;
  coordination: Coordination;
  clusterName: string;
  size: number;
  add: (dispose: () => Promise<void>) => void;
}): Promise<BenchReplicaSet> {
  const { coordination, clusterName } = options;
  const ids = Array.from({ length: options.size }, (_, i) => String.fromCharCode(97 + i));
  const nodes: Array<OutpostNode | undefined> = ids.map(() => undefined);
  const cacheDirs: string[] = [];
  // A node that fails to start is no OutpostNode to dispose; the run's final sweep kills it by
  // pid, and its cache dir (made here, not by startOutpost) is removed here either way.
  const dispose = async (): Promise<void> => {
    await Promise.all(nodes.map((node) => node?.stop()));
    await Promise.all(cacheDirs.map((dir) => removeTempDir(dir)));
  };
  options.add(dispose);
  const started = await Promise.allSettled(
    ids.map(async (id, i) => {
      const port = await freePort();
      const cacheDir = await makeTempDir(`bench-${clusterName}-${id}`);
      cacheDirs.push(cacheDir);
      nodes[i] = await startOutpost({
        upstreamUrl: options.upstreamUrl,
        workers: 1,
        port,
        cacheDir,
        env: {
          ...outpostBenchEnv,
          OUTPOST_NODE_ID: id,
          OUTPOST_ADVERTISE_URL: `http://127.0.0.1:${port}`,
          OUTPOST_CLUSTER_NAME: clusterName,
          OUTPOST_ETCD_ENDPOINTS: coordination.etcd.url,
          OUTPOST_REDIS_URL: coordination.redis.url,
          OUTPOST_PEER_SECRET: peerSecret,
          OUTPOST_ADMIN_TOKEN: adminToken,
        },
      });
    }),
  );
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) {
    await dispose();
    throw failed.reason;
  }
  const ready = nodes as OutpostNode[];
  let last = '';
  try {
    await waitFor(
      async () => {
        const statuses = await Promise.all(ready.map(clusterStatus));
        last = JSON.stringify(statuses.map((s) => ({ leader: s.leader, health: s.replica_health, issues: s.current_issues })));
        const leader = statuses[0]!.leader;
        return (
          leader !== null &&
          statuses.every(
            (s) =>
              s.leader === leader &&
              s.current_issues.length === 0 &&
              ids.every((id) => s.replica_health[id] === 'OK') &&
              Object.keys(s.replicas).sort().join() === ids.join(),
          )
        );
      },
      { what: `replica set ${clusterName} to agree on ${ids.length} OK replicas and a leader`, timeoutMs: 30_000, intervalMs: 200 },
    );
  } catch (err) {
    await dispose();
    throw new Error(`${(err as Error).message}; last seen: ${last}`, { cause: err });
  }
  return { clusterName, nodes: ready, ids, dispose };
}
