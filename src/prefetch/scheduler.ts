/**
 * Fires each job on its cron schedule, on the leader only (a standalone node
 * is always its own leader).
 *
 * - One timer per job, armed for the job's next instant. The next instant is
 *   computed from the instant just due (never from "now + period"), so
 *   delays in firing do not accumulate; a timer that fires early (long
 *   delays are armed in steps of at most an hour) is armed again for the rest.
 * - A job whose run is still going when its next instant comes is not
 *   started a second time: that instant is skipped (and logged).
 * - `runOnStart` jobs fire once when this process first leads.
 * - Timers keep running on every node (so each knows the next instant), but
 *   only the leader starts runs; `isLeader()` is asked at the moment a run is due.
 *
 * Clock and timers are injected: unit tests drive it with fakes.
 */
import type { Clock, Logger } from '../cache/ports.ts';
import type { CronSchedule } from './cron-schedule.ts';

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface ScheduledJob {
  name: string;
  schedule: CronSchedule;
  runOnStart: boolean;
}

/** Why a run starts: its cron instant, the leader's start, an admin's request, or a new leader finishing it. */
export type RunReason = 'schedule' | 'start' | 'manual' | 'resume';

export interface SchedulerOptions {
  jobs: readonly ScheduledJob[];
  clock: Clock;
  timers: Timers;
  isLeader: () => boolean;
  /** Runs `job` for the instant `dueAt` (`runId`: chosen by whoever asked for a manual run); resolves when the run ends. A rejection is logged. */
  run: (job: string, dueAt: number, reason: RunReason, runId: string | undefined) => Promise<void>;
  logger: Logger;
}

/** Timers are armed at most this far ahead; a longer wait is done in steps. */
const maxTimerMs = 3_600_000;

export class Scheduler {
  private readonly timers = new Map<string, unknown>();
  private readonly next = new Map<string, number>();
  private readonly running = new Map<string, Promise<void>>();
  private started = false;
  private stopped = false;
  private ledOnce = false;

  constructor(private readonly options: SchedulerOptions) {}

  /** Arms every job's timer; fires `runOnStart` jobs if this node leads already. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const now = this.options.clock.now();
    for (const job of this.options.jobs) this.arm(job, job.schedule.nextAfter(now));
    if (this.options.isLeader()) this.leadershipChanged(true);
  }

  /** Tell it when this node gains or loses leadership: the first gain fires the `runOnStart` jobs. */
  leadershipChanged(leading: boolean): void {
    if (!leading || !this.started || this.stopped || this.ledOnce) return;
    this.ledOnce = true;
    const now = this.options.clock.now();
    for (const job of this.options.jobs) if (job.runOnStart) this.fire(job.name, now, 'start');
  }

  /**
   * Starts a run of `job` for `dueAt` unless one of it is in progress here.
   * Returns false (nothing started) when one is, or the job is unknown.
   */
  fire(job: string, dueAt: number, reason: RunReason, runId?: string): boolean {
    if (this.stopped || !this.options.jobs.some((j) => j.name === job) || this.running.has(job)) return false;
    const run = this.options
      .run(job, dueAt, reason, runId)
      .catch((err: unknown) => this.options.logger.error({ job, err: String(err) }, 'prefetch run failed'))
      .finally(() => this.running.delete(job));
    this.running.set(job, run);
    return true;
  }

  isRunning(job: string): boolean {
    return this.running.has(job);
  }

  /** The job's next cron instant (ms), as armed. */
  nextRunAt(job: string): number | undefined {
    return this.next.get(job);
  }

  /** Clears every timer and waits for the runs in progress (the caller aborts them first). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const handle of this.timers.values()) this.options.timers.clearTimeout(handle);
    this.timers.clear();
    await Promise.all(this.running.values());
  }

  private arm(job: ScheduledJob, dueAt: number | undefined): void {
    this.timers.delete(job.name);
    if (dueAt === undefined || this.stopped) {
      this.next.delete(job.name);
      return;
    }
    this.next.set(job.name, dueAt);
    const wait = Math.min(Math.max(dueAt - this.options.clock.now(), 0), maxTimerMs);
    this.timers.set(job.name, this.options.timers.setTimeout(() => this.due(job, dueAt), wait));
  }

  private due(job: ScheduledJob, dueAt: number): void {
    const now = this.options.clock.now();
    if (now < dueAt) return this.arm(job, dueAt); // an hour step, or a timer that fired early
    if (this.options.isLeader()) {
      if (!this.fire(job.name, dueAt, 'schedule')) {
        this.options.logger.warn({ job: job.name, dueAt: new Date(dueAt).toISOString() }, 'prefetch run still in progress when the next was due; that one is skipped');
      }
    }
    // From the instant just due, or from now when firing was late by more than a period (missed instants are not caught up).
    this.arm(job, job.schedule.nextAfter(Math.max(dueAt, now)));
  }
}
