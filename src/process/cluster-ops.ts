/**
 * Operations views that span the whole node, answered by the cluster
 * primary over IPC: /metrics for every process of the node, summed
 * /nginx_status counters, how many workers are up, and host-wide state that
 * every worker's /health must show whichever worker saw it (cache write
 * failures, primaries that are down).
 *
 *   worker  → primary   {t:'ops.metrics'|'ops.connections', id}             a worker's /metrics or /nginx_status
 *   primary → worker    {t:'ops.reply', id, value}
 *   primary → workers   {t:'ops.metrics.req'|'ops.connections.req', reqId}  each answers
 *   worker  → primary   {t:'ops.metrics.res', reqId, metrics} | {t:'ops.connections.res', reqId, counters}
 *   primary → workers   {t:'cluster.workers', up, configured}
 *   worker  → primary   {t:'cache.writeFailed', value: code}
 *   primary → workers   {t:'cache.writeFailed', value: {code, at}}
 *   worker  → primary   {t:'upstream.failed', host, code, cause} | {t:'upstream.recovered', host}
 *   primary → workers   {t:'upstream.state', outages}                       whenever it changes, and to new workers
 *   worker  → primary   {t:'upstream.breaker', event}                       a circuit breaker opened/closed or a 429 gate was set
 *   primary → workers   {t:'upstream.breaker', event}                       relayed to every other worker; the primary's own (prefetch listings) to all
 *   worker  → primary   {t:'ops.admin', id, request} | {t:'index.batch', batch}
 *   primary → worker    {t:'pins.refresh', references}
 *   primary → workers   {t:'cache.forget', reqId, scope}  each answers {t:'cache.forgotten', reqId} once purged content is out of its memory
 *   worker  → primary   {t:'cache.corrupt', value: digest}   a read found a cached blob corrupt and deleted it
 *   worker  → primary   {t:'ops.clusterStatus', id}             (answered with ops.reply)
 *   primary → workers   {t:'cluster.coordination', value}       (etcd/Redis/leader state, on change and to new workers)
 *   worker  → primary   {t:'ops.prefetch', id, request}         the admin API's prefetch jobs (list, run now), answered with ops.reply
 *   worker  → primary   {t:'ops.retention', id}                 the leader asked this node for a retention sweep (ops.reply {evicted, bytes})
 *   worker  → primary   {t:'ops.statusPage', id}                (the status page's document; answered with ops.reply)
 *   worker  → primary   {t:'pulls.batch', batch}                pulls this worker answered (at most one a second)
 */
import cluster, { type Worker } from 'node:cluster';
import { addCounters, emptyCounters, type ConnectionCounters } from '../observability/connection-stats.ts';
import { nodeMetrics, type PrimaryMetrics, type ProcessMetrics } from '../observability/metrics.ts';
import { UpstreamStatusBoard, type UpstreamOutage, type UpstreamStatus } from '../observability/upstream-status.ts';
import type { Clock, Logger } from '../cache/ports.ts';
import { parseIndexBatch, type IndexBatch } from '../cache/eviction-index.ts';
import { parseAdminRequest, type AdminRequest } from '../cache/admin-request.ts';
import type { PurgeScope } from '../cache/ports.ts';
import { errorDescriptors, RegistryError, type ErrorCode } from '../registry/errors.ts';
import { tryParseDigest, type Digest } from '../registry/digest.ts';
import { parseCoordinationState, type CoordinationState } from '../cluster/coordination-state.ts';
import { parseBreakerEvent, type BreakerChannel, type BreakerEvent } from '../upstream/circuit-breaker.ts';
import { parsePrefetchJobsRequest, type PrefetchJobsRequest } from '../prefetch/jobs-request.ts';
import { parsePullBatch, type PullBatch } from '../cluster/pull-activity.ts';

/** Worker → primary. */
export type OpsWorkerMessage =
  | { t: 'ops.metrics'; id: number }
  | { t: 'ops.connections'; id: number }
  | { t: 'ops.clusterStatus'; id: number }
  | { t: 'ops.retention'; id: number }
  | { t: 'ops.statusPage'; id: number }
  | { t: 'pulls.batch'; batch: PullBatch }
  | { t: 'ops.admin'; id: number; request: unknown }
  | { t: 'ops.prefetch'; id: number; request: unknown }
  | { t: 'ops.metrics.res'; reqId: number; metrics: ProcessMetrics }
  | { t: 'ops.connections.res'; reqId: number; counters: ConnectionCounters }
  | { t: 'cache.writeFailed'; value: string }
  | { t: 'upstream.failed'; host: string; code: string; cause: string }
  | { t: 'upstream.recovered'; host: string }
  | { t: 'upstream.breaker'; event: BreakerEvent }
  | { t: 'index.batch'; batch: IndexBatch }
  | { t: 'cache.corrupt'; value: Digest }
  | { t: 'cache.forgotten'; reqId: number };

/** Primary → worker. */
export type OpsPrimaryMessage =
  | { t: 'ops.reply'; id: number; value?: unknown; error?: { code: string; message: string } }
  | { t: 'ops.metrics.req'; reqId: number }
  | { t: 'ops.connections.req'; reqId: number }
  | { t: 'cluster.workers'; up: number; configured: number }
  | { t: 'cache.writeFailed'; value: { code: string; at: number } }
  | { t: 'upstream.state'; outages: UpstreamOutage[] }
  | { t: 'upstream.breaker'; event: BreakerEvent }
  | { t: 'pins.refresh'; references: string[] }
  | { t: 'cache.forget'; reqId: number; scope: PurgeScope }
  | { t: 'cluster.coordination'; value: CoordinationState };

/** Loosely typed view of any message, for checking fields before trusting them. */
type Incoming = { t?: unknown } & Record<string, unknown>;

const isString = (value: unknown): value is string => typeof value === 'string';
const isNumber = (value: unknown): value is number => typeof value === 'number';

function parseWorkerMessage(message: unknown): OpsWorkerMessage | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const m = message as Incoming;
  switch (m.t) {
    case 'ops.metrics':
    case 'ops.connections':
    case 'ops.clusterStatus':
    case 'ops.retention':
    case 'ops.statusPage':
      return isNumber(m.id) ? { t: m.t, id: m.id } : undefined;
    case 'pulls.batch': {
      const batch = parsePullBatch(m.batch);
      return batch ? { t: m.t, batch } : undefined;
    }
    case 'ops.admin':
    case 'ops.prefetch':
      return isNumber(m.id) ? { t: m.t, id: m.id, request: m.request } : undefined;
    case 'ops.metrics.res':
      return isNumber(m.reqId) && Array.isArray(m.metrics) ? { t: m.t, reqId: m.reqId, metrics: m.metrics as ProcessMetrics } : undefined;
    case 'ops.connections.res':
      return isNumber(m.reqId) && typeof m.counters === 'object' && m.counters !== null
        ? { t: m.t, reqId: m.reqId, counters: m.counters as ConnectionCounters }
        : undefined;
    case 'cache.writeFailed':
      return isString(m.value) ? { t: m.t, value: m.value } : undefined;
    case 'upstream.failed':
      return isString(m.host) && isString(m.code) && isString(m.cause) ? { t: m.t, host: m.host, code: m.code, cause: m.cause } : undefined;
    case 'upstream.recovered':
      return isString(m.host) ? { t: m.t, host: m.host } : undefined;
    case 'upstream.breaker': {
      const event = parseBreakerEvent(m.event);
      return event ? { t: m.t, event } : undefined;
    }
    case 'index.batch':
      return { t: m.t, batch: parseIndexBatch(m.batch) };
    case 'cache.corrupt': {
      const digest = tryParseDigest(m.value);
      return digest ? { t: m.t, value: digest } : undefined;
    }
    case 'cache.forgotten':
      return isNumber(m.reqId) ? { t: m.t, reqId: m.reqId } : undefined;
    default:
      return undefined;
  }
}

/** What the primary does with admin calls and index batches (the index owner). */
export interface PrimaryHandlers {
  admin(request: AdminRequest): Promise<unknown>;
  indexBatch(batch: IndexBatch): void;
  /** A worker deleted a cached blob that did not match its digest. */
  corrupt?(digest: Digest): void;
  /** `/api/v0/meta/cluster_status` (the replica set as this node sees it). */
  clusterStatus?(): Promise<unknown>;
  /** The prefetch jobs (admin API): list, run now. */
  prefetch?(request: PrefetchJobsRequest): Promise<unknown>;
  /** A retention sweep of this node now (asked by the leader over the peer API). */
  retentionSweep?(): Promise<{ evicted: number; bytes: number }>;
  /** The status page's document (`/api/v0/meta/status_page`). */
  statusPage?(): Promise<unknown>;
  /** Pulls a worker answered (the status page's recent pulls and top repositories). */
  pulls?(batch: PullBatch): void;
}

export interface PrimaryOpsOptions {
  /** Where host-wide upstream outages are logged (rate limited). */
  logger: Logger;
  clock?: Clock;
}

const collectTimeoutMs = 2_000;

/** One round of asking every worker for something and combining the answers. */
interface Round<T> {
  pending: Set<number>;
  add(workerId: number, answer: T): void;
  done(): void;
}

const silentLogger: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** Primary side. */
export class PrimaryOps {
  private nextReq = 1;
  private readonly connectionRounds = new Map<number, Round<ConnectionCounters>>();
  private readonly metricsRounds = new Map<number, Round<ProcessMetrics>>();
  /** Counters of workers that exited, so totals stay monotonic. */
  private retired = emptyCounters();
  private readonly lastSeen = new Map<number, ConnectionCounters>();
  private lastWriteFailure: { code: string; at: number } | undefined;
  private readonly upstreams: UpstreamStatusBoard;
  private readonly forgetting = new Map<number, { pending: Set<number>; done: () => void }>();
  private coordinationState: CoordinationState | undefined;
  private readonly breakerListeners: Array<(event: BreakerEvent) => void> = [];

  /** Whether the cache took writes lately (for the outpost_cache_writable gauge). */
  writable(windowMs: number): boolean {
    return !this.lastWriteFailure || Date.now() - this.lastWriteFailure.at > windowMs;
  }

  constructor(
    private readonly metrics: PrimaryMetrics,
    private readonly configured: number,
    private readonly handlers: PrimaryHandlers,
    options: PrimaryOpsOptions = { logger: silentLogger },
  ) {
    this.upstreams = new UpstreamStatusBoard({ logger: options.logger, clock: options.clock ?? { now: () => Date.now() } });
  }

  /** Asks one worker to (re)resolve pinned references; it answers with admin 'pin' calls. */
  refreshPins(references: string[], to?: Worker): boolean {
    // `to`: a worker known to listen (its handler is set); the first one connected may still be starting and drop it.
    const worker = to?.isConnected() ? to : this.workers()[0];
    if (!worker || references.length === 0) return false;
    send(worker, { t: 'pins.refresh', references });
    return true;
  }

  handle(worker: Worker, message: unknown): void {
    const msg = parseWorkerMessage(message);
    if (msg === undefined) return;
    switch (msg.t) {
      case 'index.batch':
        this.handlers.indexBatch(msg.batch);
        return;
      case 'cache.corrupt':
        this.handlers.corrupt?.(msg.value);
        return;
      case 'cache.forgotten': {
        const round = this.forgetting.get(msg.reqId);
        if (round?.pending.delete(worker.id) && round.pending.size === 0) round.done();
        return;
      }
      case 'cache.writeFailed': {
        // Host-wide: every worker's /health must show it, whichever worker hit it.
        const failure = { code: msg.value, at: Date.now() };
        this.lastWriteFailure = failure;
        this.metrics.cacheWritable.set(0);
        this.broadcast({ t: 'cache.writeFailed', value: failure });
        return;
      }
      case 'upstream.failed':
        this.upstreamStatus.failed(msg.host, msg.code, msg.cause);
        return;
      case 'upstream.recovered':
        this.upstreamStatus.succeeded(msg.host);
        return;
      case 'upstream.breaker':
        for (const other of this.workers()) if (other.id !== worker.id) send(other, { t: 'upstream.breaker', event: msg.event });
        for (const listener of this.breakerListeners) listener(msg.event);
        return;
      case 'ops.admin': {
        const id = msg.id;
        // Parsed here, where it is run: digests and names through the registry parsers.
        Promise.resolve()
          .then(() => this.handlers.admin(parseAdminRequest(msg.request)))
          .then(
            (value) => send(worker, { t: 'ops.reply', id, value }),
            (err: unknown) => send(worker, { t: 'ops.reply', id, error: replyError(err) }),
          );
        return;
      }
      case 'ops.retention': {
        const id = msg.id;
        const sweep = this.handlers.retentionSweep;
        Promise.resolve()
          .then(() => {
            if (sweep === undefined) throw new RegistryError('UNSUPPORTED', 'no retention sweep in this process');
            return sweep();
          })
          .then(
            (value) => send(worker, { t: 'ops.reply', id, value }),
            (err: unknown) => send(worker, { t: 'ops.reply', id, error: replyError(err) }),
          );
        return;
      }
      case 'ops.prefetch': {
        const id = msg.id;
        const prefetch = this.handlers.prefetch;
        Promise.resolve()
          .then(() => {
            const request = parsePrefetchJobsRequest(msg.request);
            if (prefetch === undefined) throw new RegistryError('UNSUPPORTED', 'no prefetch jobs in this process');
            return prefetch(request);
          })
          .then(
            (value) => send(worker, { t: 'ops.reply', id, value }),
            (err: unknown) => send(worker, { t: 'ops.reply', id, error: replyError(err) }),
          );
        return;
      }
      case 'ops.metrics': {
        const id = msg.id;
        void this.clusterMetrics().then(
          (value) => send(worker, { t: 'ops.reply', id, value }),
          () => send(worker, { t: 'ops.reply', id, value: '' }),
        );
        return;
      }
      case 'ops.clusterStatus': {
        const id = msg.id;
        if (!this.handlers.clusterStatus) {
          send(worker, { t: 'ops.reply', id, error: { code: 'UNKNOWN', message: 'no cluster status in this process' } });
          return;
        }
        this.handlers.clusterStatus().then(
          (value) => send(worker, { t: 'ops.reply', id, value }),
          (err: unknown) => send(worker, { t: 'ops.reply', id, error: replyError(err) }),
        );
        return;
      }
      case 'pulls.batch':
        this.handlers.pulls?.(msg.batch);
        return;
      case 'ops.statusPage': {
        const id = msg.id;
        if (!this.handlers.statusPage) {
          send(worker, { t: 'ops.reply', id, error: { code: 'UNKNOWN', message: 'no status page in this process' } });
          return;
        }
        this.handlers.statusPage().then(
          (value) => send(worker, { t: 'ops.reply', id, value }),
          (err: unknown) => send(worker, { t: 'ops.reply', id, error: replyError(err) }),
        );
        return;
      }
      case 'ops.connections': {
        const id = msg.id;
        void this.connections().then((value) => send(worker, { t: 'ops.reply', id, value }));
        return;
      }
      case 'ops.connections.res':
        this.lastSeen.set(worker.id, msg.counters);
        this.answer(this.connectionRounds, msg.reqId, worker.id, msg.counters);
        return;
      case 'ops.metrics.res':
        this.answer(this.metricsRounds, msg.reqId, worker.id, msg.metrics);
        return;
    }
  }

  /** Tells every worker to drop purged content from memory; resolves when all acknowledged (bounded). */
  forgetEverywhere(scope: PurgeScope): Promise<void> {
    const reqId = this.nextReq++;
    const workers = this.workers();
    if (workers.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const pending = new Set(workers.map((w) => w.id));
      const done = (): void => {
        clearTimeout(timer);
        this.forgetting.delete(reqId);
        resolve();
      };
      const timer = setTimeout(done, collectTimeoutMs);
      this.forgetting.set(reqId, { pending, done });
      for (const worker of workers) send(worker, { t: 'cache.forget', reqId, scope });
    });
  }

  workerOnline(): void {
    this.broadcastWorkers();
    this.broadcastUpstreams();
    if (this.coordinationState) this.coordination(this.coordinationState);
  }

  /** Tells every worker the node's etcd/Redis/leader state (for `/health`). */
  coordination(state: CoordinationState): void {
    this.coordinationState = state;
    this.broadcast({ t: 'cluster.coordination', value: state });
  }

  workerExited(worker: Worker): void {
    const last = this.lastSeen.get(worker.id);
    if (last) {
      // Connections of a dead worker are gone; what it accepted and served stays counted.
      this.retired = addCounters(this.retired, { ...last, reading: 0, writing: 0, waiting: 0 });
      this.lastSeen.delete(worker.id);
    }
    for (const rounds of [this.connectionRounds, this.metricsRounds, this.forgetting] as Map<number, Pick<Round<unknown>, 'pending' | 'done'>>[]) {
      for (const round of rounds.values()) {
        if (round.pending.delete(worker.id) && round.pending.size === 0) round.done();
      }
    }
    this.broadcastWorkers();
  }

  private workers(): Worker[] {
    return Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
  }

  /**
   * The breaker decisions of the primary's own breakers (its prefetch
   * listings): published to every worker; the workers' come in relayed.
   */
  readonly breakers: BreakerChannel = {
    publish: (event) => this.broadcast({ t: 'upstream.breaker', event }),
    subscribe: (listener) => void this.breakerListeners.push(listener),
  };

  /** Outcomes of upstream calls (the workers' reports, the primary's own), on the host-wide board every worker's /health shows. */
  readonly upstreamStatus: UpstreamStatus = {
    failed: (host, code, cause) => {
      if (this.upstreams.failed(host, code, cause)) this.broadcastUpstreams();
    },
    succeeded: (host) => {
      if (this.upstreams.succeeded(host)) this.broadcastUpstreams();
    },
    outages: () => this.upstreams.outages(),
  };

  private broadcast(message: OpsPrimaryMessage): void {
    for (const worker of this.workers()) send(worker, message);
  }

  private broadcastWorkers(): void {
    const up = this.workers().length;
    this.metrics.workersUp.set(up);
    this.metrics.workersConfigured.set(this.configured);
    this.broadcast({ t: 'cluster.workers', up, configured: this.configured });
  }

  private broadcastUpstreams(): void {
    this.broadcast({ t: 'upstream.state', outages: this.upstreams.outages() });
  }

  private answer<T>(rounds: Map<number, Round<T>>, reqId: number, workerId: number, value: T): void {
    const round = rounds.get(reqId);
    if (!round || !round.pending.delete(workerId)) return;
    round.add(workerId, value);
    if (round.pending.size === 0) round.done();
  }

  /** Asks every worker, combines what arrives within the collect timeout (a dead or stuck worker does not block). */
  private collect<T, R>(
    rounds: Map<number, Round<T>>,
    request: (reqId: number) => OpsPrimaryMessage,
    initial: R,
    combine: (sum: R, value: T) => R,
  ): Promise<R> {
    const reqId = this.nextReq++;
    const workers = this.workers();
    return new Promise((resolve) => {
      let sum = initial;
      const round: Round<T> = {
        pending: new Set(workers.map((w) => w.id)),
        add: (_workerId, value) => {
          sum = combine(sum, value);
        },
        done: () => {
          clearTimeout(timer);
          rounds.delete(reqId);
          resolve(sum);
        },
      };
      const timer = setTimeout(round.done, collectTimeoutMs);
      rounds.set(reqId, round);
      if (workers.length === 0) round.done();
      for (const worker of workers) send(worker, request(reqId));
    });
  }

  /** /metrics text of the whole node (for the cluster status figures too). */
  nodeMetricsText(): Promise<string> {
    return this.clusterMetrics();
  }

  /** Every process of the node (the workers and this primary) merged into one registry. */
  private async clusterMetrics(): Promise<string> {
    const [workers, own] = await Promise.all([
      this.collect<ProcessMetrics, ProcessMetrics[]>(this.metricsRounds, (reqId) => ({ t: 'ops.metrics.req', reqId }), [], (all, m) => [...all, m]),
      this.metrics.registry.getMetricsAsJSON(),
    ]);
    return nodeMetrics([own, ...workers]).metrics();
  }

  private connections(): Promise<ConnectionCounters> {
    return this.collect(this.connectionRounds, (reqId) => ({ t: 'ops.connections.req', reqId }), { ...this.retired }, addCounters);
  }
}

function send(worker: Worker, message: OpsPrimaryMessage): void {
  if (worker.isConnected()) worker.send(message);
}

/** What a worker answers for when the primary asks. */
export interface WorkerOpsSources {
  connections(): ConnectionCounters;
  metrics(): Promise<ProcessMetrics>;
}

/**
 * Worker side. Also the worker's {@link UpstreamStatus}: outages and
 * recoveries go to the primary, and the primary's host-wide state comes back.
 */
export class WorkerOps implements UpstreamStatus, BreakerChannel {
  private readonly breakerListeners: Array<(event: BreakerEvent) => void> = [];
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: { value?: unknown; error?: unknown }) => void>();
  private workerState = { up: 1, configured: 1 };
  private writeFailure: { code: string; at: number } | undefined;
  /** The primary's host-wide view of primaries that are down (plus what this worker saw since). */
  private upstreamOutages = new Map<string, UpstreamOutage>();
  /** When this worker last told the primary about a failure, per host: at most one message a second. */
  private readonly lastFailureSent = new Map<string, number>();
  /** Set by the worker once its services exist: drops purged content from memory. */
  onForget: ((scope: PurgeScope) => void) | undefined;
  private coordinationState: CoordinationState = {};
  /** Set by the worker once its services exist. */
  onPinsRefresh: ((references: string[]) => void) | undefined;

  constructor(private readonly sources: WorkerOpsSources) {
    process.on('message', (raw: unknown) => {
      const message = raw as Incoming;
      if (message?.t === 'ops.reply' && isNumber(message.id)) {
        const resolve = this.waiting.get(message.id);
        this.waiting.delete(message.id);
        resolve?.(message as { value?: unknown; error?: unknown });
      } else if (message?.t === 'cache.writeFailed' && typeof message.value === 'object' && message.value !== null) {
        this.writeFailure = message.value as { code: string; at: number };
      } else if (message?.t === 'upstream.breaker') {
        const event = parseBreakerEvent(message.event);
        if (event) for (const listener of this.breakerListeners) listener(event);
      } else if (message?.t === 'upstream.state' && Array.isArray(message.outages)) {
        this.upstreamOutages = new Map((message.outages as UpstreamOutage[]).map((o) => [o.host, o]));
      } else if (message?.t === 'cache.forget' && isNumber(message.reqId)) {
        const scope = parsePurgeScope(message.scope);
        if (scope) this.onForget?.(scope);
        this.send({ t: 'cache.forgotten', reqId: message.reqId });
      } else if (message?.t === 'cluster.coordination') {
        this.coordinationState = parseCoordinationState(message.value) ?? this.coordinationState;
      } else if (message?.t === 'pins.refresh' && Array.isArray(message.references)) {
        this.onPinsRefresh?.(message.references as string[]);
      } else if (message?.t === 'ops.connections.req' && isNumber(message.reqId)) {
        this.send({ t: 'ops.connections.res', reqId: message.reqId, counters: this.sources.connections() });
      } else if (message?.t === 'ops.metrics.req' && isNumber(message.reqId)) {
        const reqId = message.reqId;
        void this.sources.metrics().then(
          (metrics) => this.send({ t: 'ops.metrics.res', reqId, metrics }),
          () => this.send({ t: 'ops.metrics.res', reqId, metrics: [] }),
        );
      } else if (message?.t === 'cluster.workers' && isNumber(message.up) && isNumber(message.configured)) {
        this.workerState = { up: message.up, configured: message.configured };
      }
    });
  }

  workers(): { up: number; configured: number } {
    return this.workerState;
  }

  metrics(): Promise<string> {
    return this.ask({ t: 'ops.metrics', id: this.nextId++ }) as Promise<string>;
  }

  connections(): Promise<ConnectionCounters> {
    return this.ask({ t: 'ops.connections', id: this.nextId++ }) as Promise<ConnectionCounters>;
  }

  /** Tells every worker (through the primary) that a cache write failed. */
  reportWriteFailure(code: string): void {
    this.writeFailure = { code, at: Date.now() };
    this.send({ t: 'cache.writeFailed', value: code });
  }

  lastWriteFailure(): { code: string; at: number } | undefined {
    return this.writeFailure;
  }

  failed(host: string, code: string, cause: string): void {
    const now = Date.now();
    const known = this.upstreamOutages.get(host);
    // This worker's /health shows it at once; the primary's broadcast follows.
    if (known?.code !== code || known.cause !== cause) this.upstreamOutages.set(host, { host, code, cause, since: known?.since ?? now });
    // Every failure is the primary's to log (rate limited), but a failing storm costs at most one message a second.
    const changed = known?.code !== code || known.cause !== cause;
    if (!changed && now - (this.lastFailureSent.get(host) ?? 0) < 1_000) return;
    this.lastFailureSent.set(host, now);
    this.send({ t: 'upstream.failed', host, code, cause });
  }

  succeeded(host: string): void {
    if (!this.upstreamOutages.has(host)) return;
    this.upstreamOutages.delete(host);
    this.lastFailureSent.delete(host);
    this.send({ t: 'upstream.recovered', host });
  }

  outages(): UpstreamOutage[] {
    return [...this.upstreamOutages.values()];
  }

  /** Sends this worker's breaker decision to the other workers (through the primary). */
  publish(event: BreakerEvent): void {
    this.send({ t: 'upstream.breaker', event });
  }

  subscribe(listener: (event: BreakerEvent) => void): void {
    this.breakerListeners.push(listener);
  }

  clusterStatus(): Promise<unknown> {
    return this.ask({ t: 'ops.clusterStatus', id: this.nextId++ });
  }

  statusPage(): Promise<unknown> {
    return this.ask({ t: 'ops.statusPage', id: this.nextId++ });
  }

  /** Hands the primary the pulls this worker answered lately. */
  sendPulls(batch: PullBatch): void {
    this.send({ t: 'pulls.batch', batch });
  }

  /** The node's etcd/Redis/leader state, as the primary last said. */
  coordination(): CoordinationState {
    return this.coordinationState;
  }

  admin(request: AdminRequest): Promise<unknown> {
    return this.ask({ t: 'ops.admin', id: this.nextId++, request }, 60_000);
  }

  /** A retention sweep of this node, run by the cluster primary (bounded like the leader's call: 10 min). */
  retentionSweep(): Promise<{ evicted: number; bytes: number }> {
    return this.ask({ t: 'ops.retention', id: this.nextId++ }, 10 * 60_000) as Promise<{ evicted: number; bytes: number }>;
  }

  /** The node's prefetch jobs, as the cluster primary runs them (reads etcd: bounded by the etcd call timeouts). */
  prefetch(request: PrefetchJobsRequest): Promise<unknown> {
    return this.ask({ t: 'ops.prefetch', id: this.nextId++, request }, 15_000);
  }

  /** Tells the primary (index owner, corrupt-files metric) that a read deleted a corrupt blob. */
  reportCorrupt(digest: Digest): void {
    this.send({ t: 'cache.corrupt', value: digest });
  }

  sendIndexBatch(batch: IndexBatch): void {
    this.send({ t: 'index.batch', batch });
  }

  private send(message: OpsWorkerMessage): void {
    process.send?.(message);
  }

  private ask(message: Extract<OpsWorkerMessage, { id: number }>, timeoutMs = collectTimeoutMs + 1_000): Promise<unknown> {
    const id = message.id;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`the cluster primary did not answer ${message.t}`));
      }, timeoutMs);
      this.waiting.set(id, (reply) => {
        clearTimeout(timer);
        if (reply.error !== undefined) reject(fromReplyError(reply.error));
        else resolve(reply.value);
      });
      this.send(message);
    });
  }
}

/** A purge scope as it arrives over IPC; undefined when malformed. */
function parsePurgeScope(value: unknown): PurgeScope | undefined {
  const raw = value as { kind?: unknown; digests?: unknown; repositories?: unknown } | null;
  if (raw?.kind === 'all') return { kind: 'all' };
  if (raw?.kind !== 'some' || !Array.isArray(raw.digests) || !Array.isArray(raw.repositories)) return undefined;
  const digests = raw.digests.map(tryParseDigest).filter((d): d is Digest => d !== undefined);
  const repositories = (raw.repositories as unknown[]).filter(
    (r): r is { upstream: string; name: string } =>
      typeof (r as { upstream?: unknown })?.upstream === 'string' && typeof (r as { name?: unknown })?.name === 'string',
  );
  return { kind: 'some', digests, repositories };
}

/** An error as it crosses IPC: its OCI code survives, so the worker answers the client with the right status. */
function replyError(err: unknown): { code: string; message: string } {
  if (err instanceof RegistryError) return { code: err.code, message: err.message };
  return { code: 'UNKNOWN', message: String((err as Error)?.message ?? err) };
}

/** The worker's side of {@link replyError}. */
function fromReplyError(error: unknown): Error {
  const e = (typeof error === 'object' && error !== null ? error : { message: String(error) }) as { code?: unknown; message?: unknown };
  const message = String(e.message ?? 'the cluster primary failed');
  if (typeof e.code === 'string' && e.code !== 'UNKNOWN' && Object.hasOwn(errorDescriptors, e.code)) return new RegistryError(e.code as ErrorCode, message);
  return new Error(message);
}
