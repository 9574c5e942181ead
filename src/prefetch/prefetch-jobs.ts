/**
 * The prefetch jobs of a node: run by the cluster primary on every node, but
 * only the leader starts runs (standalone: the node itself).
 *
 * - The scheduler fires each job on its cron instant (and `runOnStart` jobs
 *   when this process first leads); a run begins only through the run store,
 *   which refuses a second run of a job while one is in progress and a
 *   second run for the same instant (key `schedule:<instant>`).
 * - A `runOnStart` run is due only when the job has not run since the
 *   replica set started (its oldest live member's start): a new leader after
 *   a failover does not run it again, a restarted cluster does.
 * - Every `pollMs`, the leader takes the runs admins asked any replica for
 *   (run store requests) and resumes any run recorded as in progress that
 *   no local task is running (a run a dead or deposed leader left): the
 *   images with an outcome are skipped, the others are warmed.
 * - Losing leadership aborts the local runs at once; their records stay
 *   "running" for the next leader.
 */
import { randomBytes } from 'node:crypto';
import type { Clock, Logger } from '../cache/ports.ts';
import type { PrefetchJobConfig } from '../config/types.ts';
import { RegistryError } from '../registry/errors.ts';
import { CronSchedule } from './cron-schedule.ts';
import type { JobImageSource, PrefetchJobStatus, ReplicaTarget, ReplicaWarmClient, RunCounts } from './ports.ts';
import { RunExecutor } from './run-executor.ts';
import { maxImagesPerRun, type ImageOutcome, type RunHeader, type RunState, type RunStore, type StoredRun } from './run-store.ts';
import { Scheduler, type RunReason, type Timers } from './scheduler.ts';
import { realSleep, TokenBucket, type Sleep } from './token-bucket.ts';

export interface PrefetchObserver {
  runFinished(job: string, result: Exclude<RunState, 'running'>, seconds: number): void;
  imageDone(job: string, result: 'warmed' | 'skipped' | 'failed', bytes: number): void;
}

export interface ClusterIssueLike {
  critical: boolean;
  description: string;
}

export interface PrefetchJobsOptions {
  jobs: readonly PrefetchJobConfig[];
  store: RunStore;
  source: JobImageSource;
  client: ReplicaWarmClient;
  /** The live replicas to warm on (standalone: this node, on loopback). */
  replicas: (signal: AbortSignal) => Promise<ReplicaTarget[]>;
  isLeader: () => boolean;
  /** When the replica set started (its oldest live member); standalone: this process. */
  clusterStartedAt: () => Promise<number>;
  /**
   * Awaited before a `runOnStart` run begins: lets replicas started together
   * join and serve first, so the run warms them all (bounded by the caller).
   */
  startGate?: (signal: AbortSignal) => Promise<void>;
  clock: Clock;
  timers: Timers;
  sleep?: Sleep;
  logger: Logger;
  observer: PrefetchObserver;
  /** Leader's check for requests and orphaned runs. Default 1 s. */
  pollMs?: number;
  /** Bound of one image's warm on one replica. Default 30 min. */
  warmTimeoutMs?: number;
  maxImages?: number;
  newRunId?: () => string;
}

/** How long cluster_status reuses the issues read from the run store. */
const issuesTtlMs = 5_000;

/** Errors listed per run in the status (first ones). */
const maxErrorsShown = 10;

export class PrefetchJobs {
  private readonly scheduler: Scheduler;
  private readonly byName: Map<string, PrefetchJobConfig>;
  private readonly schedules = new Map<string, CronSchedule>();
  private readonly active = new Map<string, AbortController>();
  private pollTimer: unknown;
  private polling = false;
  private started = false;
  private stopped = false;
  private readonly pollMs: number;
  private lastIssues: { at: number; value: ClusterIssueLike[] } | undefined;

  constructor(private readonly options: PrefetchJobsOptions) {
    this.byName = new Map(options.jobs.map((job) => [job.name, job]));
    for (const job of options.jobs) this.schedules.set(job.name, new CronSchedule(job.schedule, job.timezone));
    this.pollMs = options.pollMs ?? 1_000;
    this.scheduler = new Scheduler({
      jobs: options.jobs.map((job) => ({ name: job.name, schedule: this.schedules.get(job.name)!, runOnStart: job.runOnStart })),
      clock: options.clock,
      timers: options.timers,
      isLeader: options.isLeader,
      run: (job, dueAt, reason, runId) => this.run(job, dueAt, reason, runId),
      logger: options.logger,
    });
  }

  start(): void {
    if (this.options.jobs.length === 0 || this.started) return;
    this.started = true;
    this.scheduler.start();
    this.schedulePoll(0);
  }

  /** Gaining leadership fires `runOnStart` jobs (first time) and looks for runs to resume now; losing it aborts local runs. */
  leadershipChanged(leading: boolean): void {
    // Before start() nothing runs (the workers runs go through may not listen yet); start() looks at leadership itself.
    if (this.options.jobs.length === 0 || this.stopped || !this.started) return;
    if (!leading) {
      for (const [job, controller] of this.active) {
        this.options.logger.warn({ job }, 'no longer the leader: prefetch run stopped here; the next leader resumes it');
        controller.abort(new Error('leadership lost'));
      }
      return;
    }
    this.scheduler.leadershipChanged(true);
    this.schedulePoll(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pollTimer !== undefined) this.options.timers.clearTimeout(this.pollTimer);
    for (const controller of this.active.values()) controller.abort(new Error('stopping'));
    await this.scheduler.stop();
  }

  /** `GET /api/v0/prefetch/jobs`: every job, with its next instant and its last run from the run store. */
  async list(): Promise<PrefetchJobStatus[]> {
    return Promise.all(this.options.jobs.map(async (job) => this.status(job, await this.options.store.read(job.name))));
  }

  /**
   * `POST /api/v0/prefetch/jobs/<name>/run`: a run now, on the leader (here
   * when this node leads, else through the run store). Throws JOB_UNKNOWN,
   * RUN_IN_PROGRESS.
   */
  async requestRun(name: string): Promise<{ runId: string }> {
    if (!this.byName.has(name)) throw new RegistryError('JOB_UNKNOWN', `no prefetch job "${name.slice(0, 100)}" is configured`);
    const current = await this.options.store.header(name);
    if (current?.state === 'running' || this.scheduler.isRunning(name)) {
      throw new RegistryError('RUN_IN_PROGRESS', `run ${current?.runId ?? ''} of prefetch job ${name} is in progress`.replace('run  ', 'a run '), {
        detail: { runId: current?.runId },
      });
    }
    let runId = this.options.newRunId?.() ?? newRunId(this.options.clock.now());
    if (this.options.isLeader()) {
      if (!this.scheduler.fire(name, this.options.clock.now(), 'manual', runId)) throw new RegistryError('RUN_IN_PROGRESS', `a run of prefetch job ${name} is in progress`);
    } else {
      // A run asked for already and not started yet: that one (same run id).
      runId = (await this.options.store.requestRun({ job: name, runId, at: this.options.clock.now() })).runId;
    }
    this.options.logger.info({ job: name, runId }, 'prefetch run requested');
    return { runId };
  }

  /**
   * cluster_status `current_issues`: jobs whose last run failed or left
   * images cold. Read from the run store at most every {@link issuesTtlMs}
   * (status pages poll cluster_status; a run record may hold 10,000 outcomes).
   */
  async issues(): Promise<ClusterIssueLike[]> {
    const now = this.options.clock.now();
    if (this.lastIssues !== undefined && now - this.lastIssues.at < issuesTtlMs) return this.lastIssues.value;
    const value = await this.readIssues();
    this.lastIssues = { at: now, value };
    return value;
  }

  private async readIssues(): Promise<ClusterIssueLike[]> {
    const issues: ClusterIssueLike[] = [];
    for (const status of await this.list()) {
      const last = status.lastRun;
      if (last === undefined || (last.result !== 'failed' && last.result !== 'partial')) continue;
      const what =
        last.result === 'failed'
          ? `failed${last.errors[0] === undefined ? '' : `: ${last.errors[0]}`}`
          : `left ${last.counts.failed} of ${last.counts.images} images cold${last.errors[0] === undefined ? '' : ` (first: ${last.errors[0]})`}`;
      issues.push({ critical: false, description: `prefetch job ${status.name}: last run ${last.runId} ${what}`.slice(0, 600) });
    }
    return issues;
  }

  // ---------------------------------------------------------------------------

  private status(job: PrefetchJobConfig, run: StoredRun | undefined): PrefetchJobStatus {
    const next = this.scheduler.nextRunAt(job.name) ?? this.schedules.get(job.name)?.nextAfter(this.options.clock.now());
    return {
      name: job.name,
      schedule: job.schedule,
      timezone: job.timezone,
      upstream: job.upstream,
      nextRunAt: next === undefined ? undefined : new Date(next).toISOString(),
      lastRun:
        run === undefined
          ? undefined
          : {
              runId: run.header.runId,
              startedAt: new Date(run.header.startedAt).toISOString(),
              finishedAt: run.header.finishedAt === undefined ? undefined : new Date(run.header.finishedAt).toISOString(),
              result: run.header.state,
              counts: countsOf(run),
              errors: errorsOf(run),
            },
    };
  }

  private schedulePoll(delayMs: number): void {
    if (this.stopped) return;
    if (this.pollTimer !== undefined) this.options.timers.clearTimeout(this.pollTimer);
    this.pollTimer = this.options.timers.setTimeout(() => void this.poll(), delayMs);
  }

  /** Leader: takes requested runs, resumes runs left in progress. */
  private async poll(): Promise<void> {
    this.pollTimer = undefined;
    if (this.polling || this.stopped) return;
    this.polling = true;
    try {
      if (!this.options.isLeader()) return;
      for (const request of await this.options.store.pendingRequests()) {
        if (!this.byName.has(request.job)) {
          await this.options.store.takeRequest(request);
          continue;
        }
        if (this.scheduler.fire(request.job, request.at, 'manual', request.runId)) await this.options.store.takeRequest(request);
      }
      for (const job of this.options.jobs) {
        if (this.scheduler.isRunning(job.name)) continue;
        const header = await this.options.store.header(job.name);
        if (header?.state === 'running') this.scheduler.fire(job.name, header.startedAt, 'resume');
      }
    } catch (err) {
      this.options.logger.warn({ err: String((err as Error)?.message ?? err) }, 'could not read prefetch requests and runs; trying again');
    } finally {
      this.polling = false;
      this.schedulePoll(this.pollMs);
    }
  }

  /** The scheduler's callback: begins (or resumes) a run and carries it out. */
  private async run(name: string, dueAt: number, reason: RunReason, runId: string | undefined): Promise<void> {
    const job = this.byName.get(name);
    if (job === undefined) return;
    const { store, logger, clock } = this.options;
    const controller = new AbortController();
    this.active.set(name, controller);
    try {
      if (reason === 'start') {
        await this.options.startGate?.(controller.signal);
        if (controller.signal.aborted) return;
      }
      const current = await store.header(name);
      let header: RunHeader;
      let resumed: StoredRun | undefined;
      if (current?.state === 'running') {
        // Left by a leader that died or was deposed: this one finishes it, whatever fired.
        resumed = await store.read(name);
        if (resumed === undefined) return;
        header = resumed.header;
        logger.info({ job: name, runId: header.runId, done: resumed.outcomes.size, images: resumed.images?.length ?? null }, 'resuming a prefetch run another leader left in progress');
      } else {
        if (reason === 'resume') return;
        let dueKey: string;
        if (reason === 'start') {
          const since = await this.options.clusterStartedAt();
          if (current !== undefined && current.startedAt >= since) {
            logger.info({ job: name, lastRun: current.runId }, 'runOnStart: the job already ran since the replica set started; not run again');
            return;
          }
          dueKey = `start:${since}`;
        } else {
          dueKey = reason === 'manual' ? `manual:${runId}` : `schedule:${new Date(dueAt).toISOString()}`;
        }
        header = {
          job: name,
          runId: runId ?? newRunId(clock.now()),
          dueKey,
          reason,
          startedAt: clock.now(),
          finishedAt: undefined,
          state: 'running',
          error: undefined,
        };
        const begun = await store.begin(header);
        if (!begun.ok) {
          logger.info({ job: name, reason, dueKey, refused: begun.reason, current: begun.current?.runId }, 'prefetch run not started');
          return;
        }
      }
      await this.carryOut(job, header, resumed, controller.signal);
    } finally {
      this.active.delete(name);
    }
  }

  private async carryOut(job: PrefetchJobConfig, header: RunHeader, resumed: StoredRun | undefined, signal: AbortSignal): Promise<void> {
    const { store, logger, clock, observer } = this.options;
    const { job: name, runId } = header;
    const log = logger;
    const bucket = new TokenBucket(job.requestsPerSecond, Math.max(1, job.requestsPerSecond), clock, this.options.sleep ?? realSleep);
    if (resumed === undefined) log.info({ job: name, runId, reason: header.reason }, 'prefetch run started');
    let images = resumed?.images;
    let runError: string | undefined;
    if (images === undefined) {
      try {
        // Every request the listing sends (catalog and tag-list pages, manifests and configs) takes a token.
        images = await this.options.source.expand(job, signal, () => bucket.take(1, signal));
      } catch (err) {
        if (signal.aborted) return this.interrupted(name, runId);
        const error = `could not list the job's images: ${String((err as Error)?.message ?? err).split('\n')[0]!.slice(0, 300)}`;
        await this.finish(job, header, 'failed', error, undefined);
        return;
      }
      const max = this.options.maxImages ?? maxImagesPerRun;
      if (images.length > max) {
        runError = `the patterns select ${images.length} images, more than the ${max} a run may warm; only the first ${max} are`;
        log.error({ job: name, runId, selected: images.length, max }, 'prefetch run selects too many images');
        images = images.slice(0, max);
      }
      if (!(await store.setImages(name, runId, images).catch(() => false))) return this.interrupted(name, runId);
    }
    const outcomes = new Map<number, ImageOutcome>(resumed?.outcomes ?? []);
    const pending = images.map((ref, index) => ({ index, ref })).filter((image) => !outcomes.has(image.index));
    const executor = new RunExecutor({
      client: this.options.client,
      replicas: this.options.replicas,
      replicasMode: job.replicas,
      concurrency: job.concurrency,
      bucket,
      platforms: job.platforms,
      warmTimeoutMs: this.options.warmTimeoutMs ?? 30 * 60_000,
      logger: log,
    });
    await executor.execute(
      pending,
      async (outcome) => {
        if (!(await store.recordOutcome(name, runId, outcome))) return false;
        outcomes.set(outcome.index, outcome);
        observer.imageDone(name, outcome.ok ? (outcome.skipped ? 'skipped' : 'warmed') : 'failed', outcome.ok ? outcome.bytes : 0);
        if (!outcome.ok) log.warn({ job: name, runId, image: outcome.image, replicas: outcome.replicas, err: outcome.error }, 'prefetch image failed');
        return true;
      },
      signal,
    );
    if (signal.aborted || outcomes.size < images.length) return this.interrupted(name, runId);
    const failed = [...outcomes.values()].filter((o) => !o.ok).length;
    const state: Exclude<RunState, 'running'> = failed === 0 ? (runError === undefined ? 'succeeded' : 'partial') : failed === images.length ? 'failed' : 'partial';
    await this.finish(job, header, state, runError, { images, outcomes });
  }

  private async finish(
    job: PrefetchJobConfig,
    header: RunHeader,
    state: Exclude<RunState, 'running'>,
    error: string | undefined,
    run: Pick<StoredRun, 'images' | 'outcomes'> | undefined,
  ): Promise<void> {
    const { store, clock, observer, logger } = this.options;
    const finishedAt = clock.now();
    if (!(await store.finish(job.name, header.runId, { state, finishedAt, error }).catch(() => false))) return this.interrupted(job.name, header.runId);
    const seconds = Math.max(0, (finishedAt - header.startedAt) / 1000);
    observer.runFinished(job.name, state, seconds);
    const counts = countsOf({ images: run?.images, outcomes: run?.outcomes ?? new Map() });
    const line = { job: job.name, runId: header.runId, result: state, seconds: Math.round(seconds * 10) / 10, ...counts, ...(error ? { err: error } : {}) };
    if (state === 'succeeded') logger.info(line, 'prefetch run finished');
    else logger.warn(line, 'prefetch run finished with failures');
  }

  private interrupted(job: string, runId: string): void {
    this.options.logger.warn({ job, runId }, 'prefetch run interrupted (leadership lost or stopping); it stays in progress for the leader to resume');
  }
}

export function countsOf(run: Pick<StoredRun, 'images' | 'outcomes'>): RunCounts {
  const counts: RunCounts = { images: run.images?.length ?? 0, warmed: 0, skipped: 0, failed: 0, blobs: 0, bytes: 0 };
  for (const outcome of run.outcomes.values()) {
    if (!outcome.ok) counts.failed += 1;
    else if (outcome.skipped) counts.skipped += 1;
    else {
      counts.warmed += 1;
      counts.blobs += outcome.blobs;
      counts.bytes += outcome.bytes;
    }
  }
  return counts;
}

function errorsOf(run: StoredRun): string[] {
  const errors = run.header.error === undefined ? [] : [run.header.error];
  for (const outcome of [...run.outcomes.values()].sort((a, b) => a.index - b.index)) {
    if (errors.length >= maxErrorsShown) break;
    if (!outcome.ok) errors.push(`${outcome.image}: ${outcome.error ?? 'failed'}`);
  }
  return errors;
}

/** Sortable and unique enough: `20261130T031500Z-3f9a1c`. */
export function newRunId(now: number): string {
  return `${new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '')}-${randomBytes(3).toString('hex')}`;
}
