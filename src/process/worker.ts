/** A cluster worker: serves the registry API on the shared port, coordinating fills through the primary. */
import type { Config } from '../config/types.ts';
import { IpcFillCoordinator } from '../coordination/ipc-fill-coordinator.ts';
import { IpcSharedState } from '../coordination/ipc-shared-state.ts';
import { BatchingIndexReporter } from '../coordination/ipc-index-reporter.ts';
import { emptyCounters, type ConnectionCounters } from '../observability/connection-stats.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import { workerMetrics } from '../observability/metrics.ts';
import { WorkerOps } from './cluster-ops.ts';
import { createOutpostApp } from './node-app.ts';
import type { StatusPageData } from '../cluster/status-page-data.ts';
import { PinRefresher } from './pin-refresher.ts';
import { onShutdownSignal } from './shutdown.ts';
import { handleTlsReloads, ignoreSighup } from './tls-reload.ts';
import { warmSecretFrom } from './warm-secret.ts';
import { describeCannotListen, isCannotListen, reportToPrimary } from './supervision.ts';

/**
 * A rejected promise nobody awaited is a bug to log, not a reason to drop
 * every connection of this worker. An uncaught exception leaves the process
 * in an unknown state: it is logged, reported to the primary (which logs it
 * as the cause and restarts the worker) and the worker exits.
 */
function guardProcess(logger: Logger): void {
  process.on('unhandledRejection', (reason) => {
    logger.error({ err: reason }, 'unhandled promise rejection (worker keeps serving)');
  });
  let dying = false;
  process.on('uncaughtException', (err) => {
    if (dying) return;
    dying = true;
    logger.fatal({ err }, 'uncaught exception; worker exits');
    void reportToPrimary({ t: 'worker.fatal', message: String(err?.stack ?? err).slice(0, 2_000) }).finally(() => process.exit(1));
  });
}

export async function runWorker(config: Config): Promise<void> {
  ignoreSighup();
  const logger = createLogger(config.log.level, { node: config.node.id, role: 'worker' });
  guardProcess(logger);
  try {
    await startWorker(config, logger);
  } catch (err) {
    // The primary logs this as the cause when it restarts the worker.
    await reportToPrimary({ t: 'worker.fatal', message: String((err as Error)?.stack ?? err).slice(0, 2_000) });
    throw err;
  }
}

async function startWorker(config: Config, logger: Logger): Promise<void> {
  let draining = false;
  const coordinator = new IpcFillCoordinator({
    send: (message) => process.send?.(message),
    onMessage: (listener) => process.on('message', listener),
  });
  // The replica set's shared state lives in Redis, reached through the cluster primary's one bounded connection.
  const shared =
    config.redis.url === undefined
      ? undefined
      : new IpcSharedState({ send: (message) => process.send?.(message), onMessage: (listener) => process.on('message', listener) });
  const metrics = workerMetrics();
  let snapshot = (): ConnectionCounters => emptyCounters();
  // Answers the primary's requests for this worker's counters and metrics (merged into the node's /metrics there).
  const ops = new WorkerOps({ connections: () => snapshot(), metrics: () => metrics.registry.getMetricsAsJSON() });
  const index = new BatchingIndexReporter((batch) => ops.sendIndexBatch(batch));
  const app = await createOutpostApp(config, {
    coordinator,
    index,
    admin: (request) => ops.admin(request),
    onCorruptBlob: (digest) => ops.reportCorrupt(digest),
    logger,
    metrics,
    draining: () => draining,
    localWarmSecret: warmSecretFrom(process.env),
    siblings: config.workers > 1,
    ...(shared === undefined ? {} : { shared: { directory: shared, tags: shared } }),
    cluster: {
      metrics: () => ops.metrics(),
      connections: () => ops.connections(),
      workers: () => ops.workers(),
      writeFailures: { report: (code) => ops.reportWriteFailure(code), last: () => ops.lastWriteFailure() },
      upstreams: ops,
      breakers: ops,
      status: () => ops.clusterStatus(),
      coordination: () => ops.coordination(),
      prefetch: (request) => ops.prefetch(request),
      retentionSweep: () => ops.retentionSweep(),
      statusPage: () => ops.statusPage() as Promise<StatusPageData>,
      pulls: (batch) => ops.sendPulls(batch),
    },
  });
  snapshot = () => app.connectionStats.snapshot();
  ops.onForget = (scope) => app.forget(scope);
  const pins = new PinRefresher(async (reference) => {
    const digests = await app.resolvePin(reference);
    await ops.admin({ op: 'pin', reference, digests, persist: false });
  }, logger);
  ops.onPinsRefresh = (references) => void pins.request(references);
  try {
    await app.listen();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!isCannotListen(code)) throw err;
    const message = describeCannotListen(config.server.host, config.server.port, code);
    logger.fatal({ code, err: (err as Error).message }, message);
    await reportToPrimary({ t: 'worker.cannotListen', code, message });
    process.exit(1);
  }
  handleTlsReloads({
    server: app.server,
    files: config.server,
    logger: logger.child({ module: 'tls' }),
    onMessage: (listener) => process.on('message', listener),
    send: (message) => process.send?.(message),
  });
  // Anything the server reports after listening (accept failures...) is logged, never fatal.
  app.server.on('error', (err) => logger.error({ err }, 'server error'));
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
