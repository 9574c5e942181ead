/**
 * Operations views that span the whole node, answered by the cluster
 * primary over IPC: aggregated /metrics, summed /nginx_status counters, and
 * how many workers are up.
 *
 *   worker  → primary   {t:'ops.metrics'|'ops.connections', id}
 *   primary → worker    {t:'ops.reply', id, value}
 *   primary → workers   {t:'ops.connections.req', reqId}  (each answers {t:'ops.connections.res', reqId, counters})
 *   primary → workers   {t:'cluster.workers', up, configured}
 *   worker  → primary   {t:'ops.clusterStatus', id}             (answered with ops.reply)
 *   primary → workers   {t:'cluster.coordination', value}       (etcd/Redis/leader state, on change and to new workers)
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { addCounters, emptyCounters, type ConnectionCounters } from '../observability/connection-stats.ts';
import type { PrimaryMetrics } from '../observability/metrics.ts';
import { parseIndexBatch, type IndexBatch } from '../cache/eviction-index.ts';
import { parseCoordinationState, type CoordinationState } from '../cluster/coordination-state.ts';

type Message = {
  t?: unknown;
  id?: unknown;
  reqId?: unknown;
  counters?: unknown;
  value?: unknown;
  error?: unknown;
  up?: unknown;
  configured?: unknown;
  op?: unknown;
  args?: unknown;
  batch?: unknown;
  references?: unknown;
};

/** What the primary does with admin calls and index batches (the index owner). */
export interface PrimaryHandlers {
  admin(op: string, args: Record<string, unknown>): Promise<unknown>;
  indexBatch(batch: IndexBatch): void;
  /** `/api/v0/meta/cluster_status` (the replica set as this node sees it). */
  clusterStatus?(): Promise<unknown>;
}

const collectTimeoutMs = 2_000;

/** Primary side. */
export class PrimaryOps {
  private readonly aggregator = new AggregatorRegistry();
  private nextReq = 1;
  private readonly collecting = new Map<number, { pending: Set<number>; sum: ConnectionCounters; done: () => void }>();
  /** Counters of workers that exited, so totals stay monotonic. */
  private retired = emptyCounters();
  private readonly lastSeen = new Map<number, ConnectionCounters>();
  private lastWriteFailure: { code: string; at: number } | undefined;
  private coordinationState: CoordinationState | undefined;

  /** Whether the cache took writes lately (for the outpost_cache_writable gauge). */
  writable(windowMs: number): boolean {
    return !this.lastWriteFailure || Date.now() - this.lastWriteFailure.at > windowMs;
  }

  constructor(
    private readonly metrics: PrimaryMetrics,
    private readonly configured: number,
    private readonly handlers: PrimaryHandlers,
  ) {}

  /** Asks one worker to (re)resolve pinned references; it answers with admin 'pin' calls. */
  refreshPins(references: string[]): boolean {
    const worker = this.workers()[0];
    if (!worker || references.length === 0) return false;
    worker.send({ t: 'pins.refresh', references });
    return true;
  }

  handle(worker: Worker, message: unknown): void {
    const msg = message as Message;
    if (msg?.t === 'index.batch') {
      this.handlers.indexBatch(parseIndexBatch(msg.batch));
    } else if (msg?.t === 'cache.writeFailed' && typeof msg.value === 'string') {
      // Host-wide: every worker's /health must show it, whichever worker hit it.
      const failure = { code: msg.value, at: Date.now() };
      this.lastWriteFailure = failure;
      this.metrics.cacheWritable.set(0);
      for (const w of this.workers()) w.send({ t: 'cache.writeFailed', value: failure });
    } else if (msg?.t === 'ops.admin' && typeof msg.id === 'number' && typeof msg.op === 'string') {
      const id = msg.id;
      this.handlers.admin(msg.op, (msg.args ?? {}) as Record<string, unknown>).then(
        (value) => worker.isConnected() && worker.send({ t: 'ops.reply', id, value }),
        (err: unknown) => worker.isConnected() && worker.send({ t: 'ops.reply', id, error: String((err as Error)?.message ?? err) }),
      );
    } else if (msg?.t === 'ops.metrics' && typeof msg.id === 'number') {
      const id = msg.id;
      void this.clusterMetrics().then(
        (value) => worker.isConnected() && worker.send({ t: 'ops.reply', id, value }),
        () => worker.isConnected() && worker.send({ t: 'ops.reply', id, value: '' }),
      );
    } else if (msg?.t === 'ops.clusterStatus' && typeof msg.id === 'number' && this.handlers.clusterStatus) {
      const id = msg.id;
      this.handlers.clusterStatus().then(
        (value) => worker.isConnected() && worker.send({ t: 'ops.reply', id, value }),
        (err: unknown) => worker.isConnected() && worker.send({ t: 'ops.reply', id, error: String((err as Error)?.message ?? err) }),
      );
    } else if (msg?.t === 'ops.connections' && typeof msg.id === 'number') {
      const id = msg.id;
      void this.connections().then((value) => worker.isConnected() && worker.send({ t: 'ops.reply', id, value }));
    } else if (msg?.t === 'ops.connections.res' && typeof msg.reqId === 'number') {
      const round = this.collecting.get(msg.reqId);
      const counters = msg.counters as ConnectionCounters;
      this.lastSeen.set(worker.id, counters);
      if (!round || !round.pending.delete(worker.id)) return;
      round.sum = addCounters(round.sum, counters);
      if (round.pending.size === 0) round.done();
    }
  }

  workerOnline(): void {
    this.broadcastWorkers();
    if (this.coordinationState) this.coordination(this.coordinationState);
  }

  /** Tells every worker the node's etcd/Redis/leader state (for `/health`). */
  coordination(state: CoordinationState): void {
    this.coordinationState = state;
    for (const worker of this.workers()) worker.send({ t: 'cluster.coordination', value: state });
  }

  workerExited(worker: Worker): void {
    const last = this.lastSeen.get(worker.id);
    if (last) {
      // Connections of a dead worker are gone; what it accepted and served stays counted.
      this.retired = addCounters(this.retired, { ...last, reading: 0, writing: 0, waiting: 0 });
      this.lastSeen.delete(worker.id);
    }
    for (const round of this.collecting.values()) {
      if (round.pending.delete(worker.id) && round.pending.size === 0) round.done();
    }
    this.broadcastWorkers();
  }

  private workers(): Worker[] {
    return Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
  }

  private broadcastWorkers(): void {
    const up = this.workers().length;
    this.metrics.workersUp.set(up);
    this.metrics.workersConfigured.set(this.configured);
    for (const worker of this.workers()) worker.send({ t: 'cluster.workers', up, configured: this.configured });
  }

  private async clusterMetrics(): Promise<string> {
    const [workers, own] = await Promise.all([this.aggregator.clusterMetrics(), this.metrics.registry.metrics()]);
    return `${workers.trimEnd()}\n${own}`;
  }

  private connections(): Promise<ConnectionCounters> {
    const reqId = this.nextReq++;
    const workers = this.workers();
    return new Promise((resolve) => {
      const round = {
        pending: new Set(workers.map((w) => w.id)),
        sum: { ...this.retired },
        done: () => {
          clearTimeout(timer);
          this.collecting.delete(reqId);
          resolve(round.sum);
        },
      };
      const timer = setTimeout(round.done, collectTimeoutMs);
      this.collecting.set(reqId, round);
      if (workers.length === 0) round.done();
      for (const worker of workers) worker.send({ t: 'ops.connections.req', reqId });
    });
  }
}

/** Worker side. */
export class WorkerOps {
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: { value?: unknown; error?: unknown }) => void>();
  private workerState = { up: 1, configured: 1 };
  private writeFailure: { code: string; at: number } | undefined;
  private coordinationState: CoordinationState = {};
  /** Set by the worker once its services exist. */
  onPinsRefresh: ((references: string[]) => void) | undefined;

  constructor(snapshot: () => ConnectionCounters) {
    process.on('message', (message: Message) => {
      if (message?.t === 'ops.reply' && typeof message.id === 'number') {
        const resolve = this.waiting.get(message.id);
        this.waiting.delete(message.id);
        resolve?.(message);
      } else if (message?.t === 'cache.writeFailed' && typeof message.value === 'object' && message.value !== null) {
        this.writeFailure = message.value as { code: string; at: number };
      } else if (message?.t === 'pins.refresh' && Array.isArray(message.references)) {
        this.onPinsRefresh?.(message.references as string[]);
      } else if (message?.t === 'ops.connections.req') {
        process.send?.({ t: 'ops.connections.res', reqId: message.reqId, counters: snapshot() });
      } else if (message?.t === 'cluster.coordination') {
        this.coordinationState = parseCoordinationState(message.value) ?? this.coordinationState;
      } else if (message?.t === 'cluster.workers' && typeof message.up === 'number' && typeof message.configured === 'number') {
        this.workerState = { up: message.up, configured: message.configured };
      }
    });
  }

  workers(): { up: number; configured: number } {
    return this.workerState;
  }

  metrics(): Promise<string> {
    return this.ask('ops.metrics') as Promise<string>;
  }

  connections(): Promise<ConnectionCounters> {
    return this.ask('ops.connections') as Promise<ConnectionCounters>;
  }

  clusterStatus(): Promise<unknown> {
    return this.ask('ops.clusterStatus');
  }

  /** The node's etcd/Redis/leader state, as the primary last said. */
  coordination(): CoordinationState {
    return this.coordinationState;
  }

  /** Tells every worker (through the primary) that a cache write failed. */
  reportWriteFailure(code: string): void {
    this.writeFailure = { code, at: Date.now() };
    process.send?.({ t: 'cache.writeFailed', value: code });
  }

  lastWriteFailure(): { code: string; at: number } | undefined {
    return this.writeFailure;
  }

  admin(op: string, args: Record<string, unknown>): Promise<unknown> {
    return this.ask('ops.admin', { op, args }, 60_000);
  }

  sendIndexBatch(batch: IndexBatch): void {
    process.send?.({ t: 'index.batch', batch });
  }

  private ask(t: string, payload: Record<string, unknown> = {}, timeoutMs = collectTimeoutMs + 1_000): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`the cluster primary did not answer ${t}`));
      }, timeoutMs);
      this.waiting.set(id, (reply) => {
        clearTimeout(timer);
        if (reply.error !== undefined) reject(new Error(String(reply.error)));
        else resolve(reply.value);
      });
      process.send?.({ t, id, ...payload });
    });
  }
}
