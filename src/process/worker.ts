/** A cluster worker: serves the registry API on the shared port, coordinating fills through the primary. */
import type { Config } from '../config/types.ts';
import { IpcFillCoordinator } from '../coordination/ipc-fill-coordinator.ts';
import { BatchingIndexReporter } from '../coordination/ipc-index-reporter.ts';
import { AggregatorRegistry } from 'prom-client';
import { emptyCounters, type ConnectionCounters } from '../observability/connection-stats.ts';
import { createLogger } from '../observability/logger.ts';
import { workerMetrics } from '../observability/metrics.ts';
import { WorkerOps } from './cluster-ops.ts';
import { createOutpostApp } from './node-app.ts';
import { onShutdownSignal } from './shutdown.ts';

export async function runWorker(config: Config): Promise<void> {
  const logger = createLogger(config.log.level, { node: config.node.id, role: 'worker' });
  let draining = false;
  const coordinator = new IpcFillCoordinator({
    send: (message) => process.send?.(message),
    onMessage: (listener) => process.on('message', listener),
  });
  const metrics = workerMetrics();
  // Answers the primary's requests for this worker's metrics (prom-client cluster mode).
  AggregatorRegistry.setRegistries([metrics.registry]);
  new AggregatorRegistry();
  let snapshot = (): ConnectionCounters => emptyCounters();
  const ops = new WorkerOps(() => snapshot());
  const index = new BatchingIndexReporter((batch) => ops.sendIndexBatch(batch));
  const app = await createOutpostApp(config, {
    coordinator,
    index,
    admin: (op, args) => ops.admin(op, args),
    logger,
    metrics,
    draining: () => draining,
    cluster: {
      metrics: () => ops.metrics(),
      connections: () => ops.connections(),
      workers: () => ops.workers(),
      writeFailures: { report: (code) => ops.reportWriteFailure(code), last: () => ops.lastWriteFailure() },
      status: () => ops.clusterStatus(),
      coordination: () => ops.coordination(),
    },
  });
  snapshot = () => app.connectionStats.snapshot();
  ops.onPinsRefresh = (references) => {
    void (async () => {
      for (const reference of references) {
        try {
          const digests = await app.resolvePin(reference);
          await ops.admin('pin', { reference, digests });
        } catch (err) {
          logger.warn({ reference, err: String((err as Error)?.message ?? err) }, 'could not resolve a pinned image');
        }
      }
    })();
  };
  await app.listen();
  logger.info({ port: config.server.port }, 'worker listening');

  onShutdownSignal(async () => {
    draining = true;
    metrics.draining.set(1);
    logger.info({ drainSeconds: config.drainSeconds }, 'draining: /health fails, still serving');
    await new Promise((resolve) => setTimeout(resolve, config.drainSeconds * 1000));
    // Whatever happens below, the worker is gone within the bound.
    setTimeout(() => {
      logger.warn({}, 'shutdown bound reached; exiting');
      process.exit(0);
    }, config.shutdownTimeoutMs + 5_000).unref();
    logger.info({ timeoutMs: config.shutdownTimeoutMs }, 'closing: no new connections, finishing in-flight transfers');
    await app.close({ graceMs: config.shutdownTimeoutMs });
    index.flush();
    logger.info({}, 'worker stopped');
    process.exit(0);
  });
}
