/**
 * The cluster primary: sweeps leftovers of an earlier run, forks the workers
 * and restarts any that dies, brokers host-wide fill coordination, and on
 * SIGTERM tells every worker to drain and waits for them (bounded).
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { Config } from '../config/types.ts';
import { FillBroker } from '../coordination/fill-broker.ts';
import { createLogger } from '../observability/logger.ts';
import { primaryMetrics } from '../observability/metrics.ts';
import { PrimaryOps } from './cluster-ops.ts';
import { systemClock } from '../cache/ports.ts';
import { DiskBlobStore } from '../storage/disk-blob-store.ts';
import { DiskMetadataStore } from '../storage/disk-metadata-store.ts';
import { CacheAdmin } from './cache-admin.ts';
import { IndexOwner } from './index-owner.ts';
import { cacheLayout } from '../storage/layout.ts';
import { DuplicateNodeIdError } from '../cluster/duplicate-node-id-error.ts';
import { ClusterNode } from './cluster-node.ts';

const restartDelayMs = 500;

export async function runPrimary(config: Config): Promise<void> {
  const logger = createLogger(config.log.level, { node: config.node.id, role: 'primary' });
  const layout = cacheLayout(config.cache.dir);
  const store = new DiskBlobStore(layout);
  await store.init();
  const swept = await store.sweep();
  if (swept > 0) logger.info({ swept }, 'removed leftover temp files');

  const broker = new FillBroker();
  const metrics = primaryMetrics();
  metrics.workersConfigured.set(config.workers);
  const owner = new IndexOwner({
    layout,
    store,
    clock: systemClock,
    logger: logger.child({ module: 'index' }),
    metrics,
    maxBytes: config.cache.maxBytes,
    highWatermark: config.cache.highWatermark,
    lowWatermark: config.cache.lowWatermark,
    retentionMs: config.cache.retentionMs,
  });
  await owner.load();
  owner.start();
  const upstreamKeys = [new URL(config.upstream.url).host, ...config.registries.map((r) => r.host)];
  const admin = new CacheAdmin(owner, layout, new DiskMetadataStore(layout), upstreamKeys, config.cache.pins);
  await admin.loadPins();
  const ops = new PrimaryOps(metrics, config.workers, {
    admin: (op, args) => admin.call(op, args),
    indexBatch: (batch) => owner.apply(batch),
    clusterStatus: () => clusterNode.status(),
  });
  const workerMetrics = new AggregatorRegistry();
  let clusterNode: ClusterNode;
  try {
    clusterNode = await ClusterNode.start({
      config,
      logger,
      metrics,
      clock: systemClock,
      local: {
        cacheBytes: () => owner.index.totalBytes,
        fillsInFlight: () => broker.inflight,
        workers: () => ({ up: Object.values(cluster.workers ?? {}).filter((w) => w?.isConnected()).length, configured: config.workers }),
        cacheWritable: () => ops.writable(60_000),
        workerMetrics: () => workerMetrics.clusterMetrics(),
      },
      onChange: (state) => ops.coordination(state),
    });
  } catch (err) {
    if (!(err instanceof DuplicateNodeIdError)) throw err;
    logger.fatal({ nodeId: err.nodeId, holder: err.holder }, 'duplicate node id');
    process.stderr.write(`outpost: cannot start: ${err.message}\n`);
    process.exit(1);
  }
  ops.coordination(clusterNode.coordination());
  metrics.cacheWritable.set(1);
  setInterval(() => metrics.cacheWritable.set(ops.writable(60_000) ? 1 : 0), 1_000).unref();
  // Pins resolve in a worker (it has the upstream and the manifest service); tags that move move their pins.
  let pinsRequested = false;
  const refreshPins = (): void => {
    pinsRequested = ops.refreshPins(admin.pinnedReferences()) || pinsRequested;
  };
  setInterval(refreshPins, Math.max(config.tags.ttlMs, 1_000)).unref();
  let stopping = false;

  const fork = (): Worker => {
    const worker = cluster.fork();
    const peer = { id: worker.id, send: (message: object) => worker.isConnected() && worker.send(message) };
    worker.on('message', (message: unknown) => {
      broker.handle(peer, message);
      ops.handle(worker, message);
      metrics.fillsCoordinated.set(broker.inflight);
    });
    worker.on('listening', () => {
      ops.workerOnline();
      if (!pinsRequested) refreshPins();
    });
    return worker;
  };

  cluster.on('exit', (worker, code, signal) => {
    broker.peerGone(worker.id);
    ops.workerExited(worker);
    if (stopping) return;
    metrics.workerRestarts.inc();
    logger.error({ workerId: worker.id, pid: worker.process.pid, code, signal }, 'worker died; restarting');
    setTimeout(() => {
      if (!stopping) fork();
    }, restartDelayMs).unref();
  });

  // A small young generation keeps worker RSS low under load (measured in bench/: peaks drop by ~30 MiB).
  cluster.setupPrimary({ execArgv: [...process.execArgv, '--max-semi-space-size=2'] });
  for (let i = 0; i < config.workers; i++) fork();
  logger.info({ workers: config.workers, port: config.server.port, upstream: config.upstream.url, cacheDir: config.cache.dir }, 'outpost started');

  let forced = false;
  const stop = (): void => {
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    if (stopping) {
      if (forced) return;
      forced = true;
      logger.warn({}, 'second signal: stopping now');
      for (const worker of workers) worker.process.kill('SIGKILL');
      process.exit(1);
    }
    stopping = true;
    logger.info({ workers: workers.length }, 'shutting down');
    void clusterNode.beginShutdown(); // leadership moves on now; membership (as draining) until the workers are gone
    // A signal, not an IPC message: a worker still starting up has no handler yet and simply ends.
    for (const worker of workers) worker.process.kill('SIGTERM');
    const bound = setTimeout(() => {
      logger.warn({}, 'workers did not stop in time; killing them');
      for (const worker of workers) worker.process.kill('SIGKILL');
      process.exit(1);
    }, config.drainSeconds * 1000 + config.shutdownTimeoutMs + 10_000);
    bound.unref();
    let alive = workers.length;
    if (alive === 0) void clusterNode.stop().finally(() => process.exit(0));
    for (const worker of workers) {
      worker.once('exit', () => {
        alive -= 1;
        if (alive === 0) {
          void Promise.all([owner.stop(), clusterNode.stop()]).finally(() => {
            logger.info({}, 'outpost stopped');
            process.exit(0);
          });
        }
      });
    }
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
