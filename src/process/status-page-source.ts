/**
 * Where the status page's document comes from: the node's pull activity
 * (fed by the workers' pull batches), the hour of hit-ratio history sampled
 * from the node's counters, the replica set as cluster_status sees it, and
 * the cache figures of the node's metrics.
 *
 * The cluster primary holds one and samples on a timer; a process serving on
 * its own (tests running the app in-process) holds one too and samples when
 * the page asks.
 *
 * With Redis (`shared`) the recent pulls and top repositories are the whole
 * replica set's: each batch is added there too, and read back merged. While
 * Redis does not answer, the page shows this node's own and says so.
 */
import type { PrefetchJobStatus } from '../prefetch/ports.ts';
import type { Clock, Logger } from '../cache/ports.ts';
import type { ClusterStatus } from '../cluster/cluster-status.ts';
import { HitHistory, sampleEveryMs } from '../cluster/hit-history.ts';
import { PullActivity, type PullBatch, type SharedPullActivity } from '../cluster/pull-activity.ts';
import { pullStatsFromMetrics } from '../cluster/pull-stats.ts';
import { buildStatusPageData, type PullsView, type StatusPageData } from '../cluster/status-page-data.ts';

/** Every open page asks every 3 s: one gathering (an IPC round to every worker, etcd, Redis) serves all asking within this. */
const reuseMs = 1_000;
/** Recent pulls and repositories per list on the page. */
const recentShown = 20;
const topShown = 10;

export interface StatusPageSourceOptions {
  nodeId: string;
  /** The configured disk budget. */
  maxBytes: number;
  /** Access control is on: pulls name their user. */
  showUsers: boolean;
  clock: Clock;
  logger: Logger;
  status: () => Promise<ClusterStatus>;
  /** The node's metrics (Prometheus text of every process). */
  metrics: () => Promise<string>;
  /** The prefetch jobs this node's primary runs (the admin API's list). */
  jobs?: () => Promise<PrefetchJobStatus[]>;
  /** The replica set's shared pull activity (Redis), when configured. */
  shared?: () => SharedPullActivity | undefined;
}

export class StatusPageSource {
  private readonly activity = new PullActivity();
  private readonly history = new HitHistory();
  private timer: NodeJS.Timeout | undefined;
  private last: { at: number; data: Promise<StatusPageData> } | undefined;

  constructor(private readonly options: StatusPageSourceOptions) {}

  /** Samples the counters every {@link sampleEveryMs} (timer unref'd). */
  start(): void {
    this.timer ??= setInterval(() => void this.sample(), sampleEveryMs);
    this.timer.unref();
    void this.sample();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A worker's pull batch (already parsed). */
  pulls(batch: PullBatch): void {
    this.activity.add(batch);
    const shared = this.options.shared?.();
    if (shared === undefined || !shared.up()) return;
    shared.add(batch).catch((err: unknown) => this.options.logger.debug({ err: String(err) }, 'could not add pulls to the replica set\'s activity in Redis'));
  }

  /** The document; gathered at most once per {@link reuseMs} however many pages ask (a failed gathering is not reused). */
  data(): Promise<StatusPageData> {
    const now = this.options.clock.now();
    if (this.last !== undefined && now - this.last.at < reuseMs) return this.last.data;
    const data = this.gather();
    const entry = { at: now, data };
    this.last = entry;
    data.catch(() => {
      if (this.last === entry) this.last = undefined;
    });
    return data;
  }

  private async gather(): Promise<StatusPageData> {
    const [status, metricsText, pulls, jobs] = await Promise.all([
      this.options.status(),
      this.options.metrics(),
      this.pullsView(),
      this.options.jobs?.().catch((err: unknown) => (err instanceof Error ? err.message : String(err)).slice(0, 300)),
    ]);
    const now = this.options.clock.now();
    if (this.timer === undefined) this.history.sample(now, pullStatsFromMetrics(metricsText));
    return buildStatusPageData({
      now,
      nodeId: this.options.nodeId,
      status,
      metricsText,
      maxBytes: this.options.maxBytes,
      history: this.history,
      pulls,
      showUsers: this.options.showUsers,
      ...(jobs === undefined ? {} : { jobs }),
    });
  }

  /** The replica set's pulls from Redis; this node's own when Redis is not configured or does not answer. */
  private async pullsView(): Promise<PullsView> {
    const shared = this.options.shared?.();
    if (shared !== undefined && shared.up()) {
      try {
        return { scope: 'cluster', ...(await shared.read(recentShown, topShown)) };
      } catch (err) {
        this.options.logger.debug({ err: String(err) }, 'could not read the replica set\'s pulls from Redis; showing this node\'s');
      }
    }
    return { scope: 'node', recent: this.activity.recent(recentShown), byPulls: this.activity.top('pulls', topShown), byBytes: this.activity.top('bytes', topShown) };
  }

  private async sample(): Promise<void> {
    try {
      const text = await this.options.metrics();
      this.history.sample(this.options.clock.now(), pullStatsFromMetrics(text));
    } catch (err) {
      this.options.logger.debug({ err: String(err) }, 'could not sample the pull counters for the status page');
    }
  }
}
