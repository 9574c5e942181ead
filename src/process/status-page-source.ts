/**
 * Where the status page's document comes from: the node's pull activity
 * (fed by the workers' pull batches), the hour of hit-ratio history sampled
 * from the node's counters, the replica set as cluster_status sees it, and
 * the cache figures of the node's metrics.
 *
 * The cluster primary holds one and samples on a timer; a process serving on
 * its own (tests running the app in-process) holds one too and samples when
 * the page asks.
 */
import type { Clock, Logger } from '../cache/ports.ts';
import type { ClusterStatus } from '../cluster/cluster-status.ts';
import { HitHistory, sampleEveryMs } from '../cluster/hit-history.ts';
import { PullActivity, type PullBatch } from '../cluster/pull-activity.ts';
import { pullStatsFromMetrics } from '../cluster/pull-stats.ts';
import { buildStatusPageData, type StatusPageData } from '../cluster/status-page-data.ts';

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
}

export class StatusPageSource {
  private readonly activity = new PullActivity();
  private readonly history = new HitHistory();
  private timer: NodeJS.Timeout | undefined;

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
  }

  async data(): Promise<StatusPageData> {
    const [status, metricsText] = await Promise.all([this.options.status(), this.options.metrics()]);
    const now = this.options.clock.now();
    if (this.timer === undefined) this.history.sample(now, pullStatsFromMetrics(metricsText));
    return buildStatusPageData({
      now,
      nodeId: this.options.nodeId,
      status,
      metricsText,
      maxBytes: this.options.maxBytes,
      history: this.history,
      activity: this.activity,
      showUsers: this.options.showUsers,
    });
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
