/**
 * Retention sweeps on a schedule (`cache.retentionSchedule`, 5-field cron,
 * UTC), started by the leader only (standalone: the node) and carried out
 * on every live replica: this node's sweep is called directly, the others'
 * through their `POST /api/v0/peer/retention`. Each replica applies its own
 * `cache.retention`, `cache.retentionRules` and pins to its own disk. A
 * replica that fails is logged and left for the next instant; the sweeps
 * are independent and idempotent, so none is recorded in etcd.
 */
import type { Clock, Logger } from '../cache/ports.ts';
import type { CronSchedule } from './cron-schedule.ts';
import type { ReplicaTarget } from './ports.ts';
import { Scheduler, type Timers } from './scheduler.ts';

export interface SweepResult {
  evicted: number;
  bytes: number;
}

export interface RetentionSweepsOptions {
  schedule: CronSchedule;
  clock: Clock;
  timers: Timers;
  isLeader: () => boolean;
  logger: Logger;
  /** Live replicas, this one included. */
  replicas: (signal: AbortSignal) => Promise<ReplicaTarget[]>;
  selfId: string;
  /** This node's sweep. */
  local: () => Promise<SweepResult>;
  /** Another replica's sweep (peer endpoint); rejects when it cannot be done. */
  remote: (replica: ReplicaTarget, signal: AbortSignal) => Promise<SweepResult>;
  /** Bound of one replica's sweep. Default 10 min. */
  timeoutMs?: number;
}

export type SweepOutcome = Record<string, SweepResult | { error: string }>;

export class RetentionSweeps {
  private readonly scheduler: Scheduler;
  private readonly stopping = new AbortController();

  constructor(private readonly options: RetentionSweepsOptions) {
    this.scheduler = new Scheduler({
      jobs: [{ name: 'retention', schedule: options.schedule, runOnStart: false }],
      clock: options.clock,
      timers: options.timers,
      isLeader: options.isLeader,
      run: async () => void (await this.sweepAll()),
      logger: options.logger,
    });
  }

  start(): void {
    this.scheduler.start();
  }

  nextSweepAt(): number | undefined {
    return this.scheduler.nextRunAt('retention');
  }

  async stop(): Promise<void> {
    this.stopping.abort(new Error('stopping'));
    await this.scheduler.stop();
  }

  /** One sweep on every live replica, in parallel; never rejects. */
  async sweepAll(): Promise<SweepOutcome> {
    const { logger, selfId } = this.options;
    const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.options.timeoutMs ?? 10 * 60_000)]);
    const started = this.options.clock.now();
    let replicas: ReplicaTarget[];
    try {
      replicas = await this.options.replicas(signal);
    } catch (err) {
      logger.warn({ err: String((err as Error)?.message ?? err) }, 'retention sweep: could not list the replicas; skipped');
      return {};
    }
    if (!replicas.some((r) => r.id === selfId)) replicas = [{ id: selfId, url: '' }, ...replicas];
    const outcome: SweepOutcome = {};
    await Promise.all(
      replicas.map(async (replica) => {
        try {
          outcome[replica.id] = replica.id === selfId ? await this.options.local() : await this.options.remote(replica, signal);
        } catch (err) {
          const error = String((err as Error)?.message ?? err).split('\n')[0]!.slice(0, 300);
          outcome[replica.id] = { error };
          logger.warn({ replica: replica.id, err: error }, 'retention sweep failed on a replica; the next scheduled sweep tries again');
        }
      }),
    );
    const ok = Object.values(outcome).filter((o): o is SweepResult => !('error' in o));
    logger.info(
      {
        replicas: Object.keys(outcome).length,
        failed: Object.keys(outcome).length - ok.length,
        evicted: ok.reduce((n, o) => n + o.evicted, 0),
        bytes: ok.reduce((n, o) => n + o.bytes, 0),
        ms: this.options.clock.now() - started,
      },
      'retention sweep done',
    );
    return outcome;
  }
}
