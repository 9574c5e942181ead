/**
 * Replica sets for integration tests: Outpost nodes on free 127.0.0.1 ports
 * that join through a real etcd and share a real Redis, each advertising
 * its own address.
 */
import { startOutpost, type OutpostNode } from './outpost.ts';
import { freePort } from './ports.ts';

export interface ReplicaSetOptions {
  etcdUrl: string;
  redisUrl: string;
  cluster?: string;
  secret: string;
  adminToken: string;
  /** The etcd lease TTL (default 2s: a dead replica is gone within it). */
  leaseTtl?: string;
}

/** The environment of replica `id` listening on `port`. */
export function replicaEnv(id: string, port: number, options: ReplicaSetOptions): Record<string, string> {
  return {
    OUTPOST_NODE_ID: id,
    OUTPOST_ADVERTISE_URL: `http://127.0.0.1:${port}`,
    OUTPOST_ETCD_ENDPOINTS: options.etcdUrl,
    OUTPOST_REDIS_URL: options.redisUrl,
    OUTPOST_PEER_SECRET: options.secret,
    ...(options.cluster === undefined ? {} : { OUTPOST_CLUSTER_NAME: options.cluster }),
    OUTPOST_ETCD_LEASE_TTL: options.leaseTtl ?? '2s',
    OUTPOST_ADMIN_TOKEN: options.adminToken,
  };
}

/** Starts one replica per id, all at once; `add` registers each one's disposal as soon as it runs. */
export async function startReplicas(
  ids: readonly string[],
  options: ReplicaSetOptions & { upstreamUrl: string; workers?: number; env?: Record<string, string> },
  add: (dispose: () => Promise<void>) => void,
): Promise<Map<string, OutpostNode>> {
  const nodes = await Promise.all(
    ids.map(async (id) => {
      const port = await freePort();
      const node = await startOutpost({ upstreamUrl: options.upstreamUrl, workers: options.workers ?? 2, port, env: { ...options.env, ...replicaEnv(id, port, options) } });
      add(() => node.dispose());
      return [id, node] as const;
    }),
  );
  return new Map(nodes);
}
