/**
 * Wires the prefetch jobs into the cluster primary: the run store (etcd,
 * fenced by the replica set's leadership; memory standalone), the replicas
 * a run spreads over (the live members etcd lists, at their advertise URLs;
 * standalone this node on loopback), and the leader's view.
 */
import type { Logger } from 'pino';
import type { Clock } from '../cache/ports.ts';
import type { Config } from '../config/types.ts';
import type { EtcdReplicaSet } from '../coordination/etcd-replica-set.ts';
import { prefetchMetricsObserver, type PrimaryMetrics } from '../observability/metrics.ts';
import type { JobImageSource, ReplicaTarget, ReplicaWarmClient } from '../prefetch/ports.ts';
import { PrefetchJobs } from '../prefetch/prefetch-jobs.ts';
import { MemoryRunStore, type RunStore } from '../prefetch/run-store.ts';
import { realTimers } from '../prefetch/scheduler.ts';

export interface PrefetchNodeDeps {
  config: Config;
  logger: Logger;
  clock: Clock;
  metrics: PrimaryMetrics;
  /** Undefined standalone. */
  replicaSet: EtcdReplicaSet | undefined;
  /** This process's start (ms): standalone, the replica set's start. */
  startedAt: number;
  source: JobImageSource;
  client: ReplicaWarmClient;
}

/** How long a view of the members may take before the last one read is used. */
const viewTimeoutMs = 1_500;
/** A runOnStart run waits at least this long for replicas started together to join, at most `startWaitMaxMs` for them to serve. */
const startWaitMinMs = 3_000;
const startWaitMaxMs = 60_000;

/** Base URL of this node from its own host: the loopback when it listens on every address. */
export function loopbackUrl(config: Config): string {
  const scheme = config.server.tlsCert && config.server.tlsKey ? 'https' : 'http';
  const host = config.server.host;
  const address = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
  return `${scheme}://${address}:${config.server.port}`;
}

/** The members etcd lists with a verified record and serving (workers up, not draining): this node on loopback, the others at their advertise URLs. */
export function servingReplicas(config: Config, replicaSet: EtcdReplicaSet): () => Promise<{ live: ReplicaTarget[]; all: number; started: number[] }> {
  const self: ReplicaTarget = { id: config.node.id, url: loopbackUrl(config) };
  return async () => {
    const view = await replicaSet.view(viewTimeoutMs);
    const live: ReplicaTarget[] = [];
    const started: number[] = [];
    let all = 0;
    for (const member of view?.members ?? []) {
      if (!member.record.verified) continue;
      const record = member.record.value;
      started.push(Date.parse(record.started_at));
      if (record.health.draining) continue;
      all += 1;
      if (record.health.status === 'failing' || record.advertise_url === '') continue;
      // This node is reached on loopback: the same node, one hop less, whatever its advertise URL resolves to from here.
      live.push(member.id === config.node.id ? self : { id: member.id, url: record.advertise_url });
    }
    return { live: live.sort((a, b) => a.id.localeCompare(b.id)), all, started };
  };
}

export async function createPrefetchJobs(deps: PrefetchNodeDeps): Promise<PrefetchJobs> {
  const { config, replicaSet, clock, logger } = deps;
  const log = logger.child({ module: 'prefetch' });
  let store: RunStore;
  if (replicaSet !== undefined) {
    const [{ createEtcdClient }, { EtcdRunStore }] = await Promise.all([import('../coordination/etcd-client.ts'), import('../coordination/etcd-run-store.ts')]);
    store = new EtcdRunStore({
      client: createEtcdClient({ endpoints: config.etcd.endpoints, callTimeoutMs: Math.min(Math.max(config.etcd.leaseTtlMs / 2, 500), 3_000) }),
      clusterName: config.cluster.name,
      ifLeader: (operations, ...conditions) => replicaSet.ifLeader(operations, ...conditions),
    });
  } else {
    store = new MemoryRunStore(() => true);
  }
  const self: ReplicaTarget = { id: config.node.id, url: loopbackUrl(config) };
  const serving = replicaSet === undefined ? async () => ({ live: [self], all: 1, started: [] as number[] }) : servingReplicas(config, replicaSet);

  return new PrefetchJobs({
    jobs: config.prefetch,
    store,
    source: deps.source,
    client: deps.client,
    replicas: async () => (await serving()).live,
    isLeader: () => (replicaSet === undefined ? true : replicaSet.state().leader),
    clusterStartedAt: async () => {
      if (replicaSet === undefined) return deps.startedAt;
      const { started } = await serving();
      return Math.min(deps.startedAt, ...started.filter((t) => Number.isFinite(t)));
    },
    startGate: async (signal) => {
      const began = clock.now();
      const pause = (ms: number): Promise<void> =>
        new Promise((resolve) => {
          const timer = setTimeout(resolve, ms);
          signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
        });
      if (replicaSet === undefined) return;
      await pause(startWaitMinMs);
      while (!signal.aborted && clock.now() - began < startWaitMaxMs) {
        const { live, all } = await serving().catch(() => ({ live: [], all: 1 }));
        if (live.length > 0 && live.length >= all) return;
        await pause(500);
      }
      if (!signal.aborted) log.warn({}, 'runOnStart: some replicas are not serving yet; running on those that are');
    },
    clock,
    timers: realTimers,
    logger: log,
    observer: prefetchMetricsObserver(deps.metrics),
  });
}
