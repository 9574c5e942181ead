/**
 * Keeps `workers` cluster workers running: forks one per slot, restarts a
 * slot's worker when it dies (after its {@link RestartBackoff} delay, logging
 * the cause and counting it), and gives up only when a worker reports that it
 * cannot listen while no other worker serves: then the node cannot serve at
 * all, and `onCannotListen` decides what happens (the primary exits).
 *
 * A pending restart is a referenced timer, so the primary process stays
 * alive between a worker's death and its replacement even when no worker is
 * left.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { defaultRestartBackoff, RestartBackoff, type RestartBackoffOptions } from './restart-backoff.ts';
import { isWorkerReport } from './supervision.ts';

export interface WorkerSupervisorOptions {
  workers: number;
  logger: Logger;
  /** Added to each worker's environment (the node-local warm secret). */
  env?: Record<string, string>;
  backoff?: RestartBackoffOptions;
  /** Wires a new worker (IPC handlers, 'listening'); called right after each fork. */
  onFork(worker: Worker): void;
  /** Called when any worker exited, before a restart is planned. */
  onExit(worker: Worker): void;
  /** Called for each restart planned (the restart metric). */
  onRestart(): void;
  /** No worker can listen (port taken, no permission): `message` is the one line to show. */
  onCannotListen(message: string): void;
}

interface WorkerInfo {
  slot: number;
  forkedAt: number;
  /** What the worker reported before it died, if anything. */
  cause?: string;
  listening: boolean;
}

export class WorkerSupervisor {
  private readonly info = new Map<number, WorkerInfo>();
  private readonly backoffs = new Map<number, RestartBackoff>();
  private readonly pendingRestarts = new Set<NodeJS.Timeout>();
  private stopped = false;

  constructor(private readonly options: WorkerSupervisorOptions) {}

  start(): void {
    cluster.on('exit', (worker, code, signal) => this.exited(worker, code, signal));
    for (let slot = 0; slot < this.options.workers; slot++) this.fork(slot);
  }

  /** Stops restarting workers (shutdown); returns the workers still running. */
  stop(): Worker[] {
    this.stopped = true;
    for (const timer of this.pendingRestarts) clearTimeout(timer);
    this.pendingRestarts.clear();
    return this.live();
  }

  live(): Worker[] {
    return Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
  }

  private fork(slot: number): void {
    let worker: Worker;
    try {
      worker = cluster.fork(this.options.env);
    } catch (err) {
      const { delayMs } = this.backoffOf(slot).onExit(0);
      this.options.logger.error({ err, slot, restartInMs: delayMs }, 'could not start a worker; retrying');
      this.restartLater(slot, delayMs);
      return;
    }
    const info: WorkerInfo = { slot, forkedAt: performance.now(), listening: false };
    this.info.set(worker.id, info);
    // A message sent as the worker dies (its channel closing under us) is an 'error' on the Worker: without a
    // listener it is an uncaught exception that takes the primary, and so the whole node, down with it.
    worker.on('error', (err: Error) => {
      this.options.logger.warn({ workerId: worker.id, pid: worker.process.pid, err: err.message }, 'could not reach a worker over IPC (it is exiting)');
    });
    worker.on('message', (message: unknown) => {
      if (!isWorkerReport(message)) return;
      info.cause = message.message;
      if (message.t === 'worker.cannotListen') this.cannotListen(worker, message.message);
    });
    worker.on('listening', () => {
      info.listening = true;
    });
    this.options.onFork(worker);
  }

  private cannotListen(worker: Worker, message: string): void {
    const othersServe = [...this.info].some(([id, info]) => id !== worker.id && info.listening);
    // While another worker serves, this one is restarted like any other that died.
    if (othersServe || this.stopped) return;
    this.stop();
    this.options.onCannotListen(message);
  }

  private exited(worker: Worker, code: number | null, signal: string | null): void {
    this.options.onExit(worker);
    const info = this.info.get(worker.id);
    this.info.delete(worker.id);
    if (this.stopped || !info) return;
    const uptimeMs = Math.round(performance.now() - info.forkedAt);
    const { delayMs, streak } = this.backoffOf(info.slot).onExit(uptimeMs);
    this.options.onRestart();
    this.options.logger.error(
      {
        workerId: worker.id,
        pid: worker.process.pid,
        code,
        signal,
        cause: info.cause ?? (signal ? `killed by ${signal}` : `exited with code ${code}`),
        uptimeMs,
        restartInMs: delayMs,
        diedYoungInARow: streak,
      },
      'worker died; restarting',
    );
    this.restartLater(info.slot, delayMs);
  }

  private restartLater(slot: number, delayMs: number): void {
    // Referenced on purpose: with every worker dead this timer is what keeps the primary alive.
    const timer = setTimeout(() => {
      this.pendingRestarts.delete(timer);
      if (!this.stopped) this.fork(slot);
    }, delayMs);
    this.pendingRestarts.add(timer);
  }

  private backoffOf(slot: number): RestartBackoff {
    let backoff = this.backoffs.get(slot);
    if (!backoff) {
      backoff = new RestartBackoff(this.options.backoff ?? defaultRestartBackoff);
      this.backoffs.set(slot, backoff);
    }
    return backoff;
  }
}
