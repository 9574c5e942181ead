/**
 * Streaming NDJSON answers (`application/x-ndjson`): the warm endpoints send
 * progress lines as a warm goes and a result at the end. Progress is
 * throttled ({@link ProgressThrottle}: at most one line per interval, the
 * latest state wins) and repeated while nothing changes, so a reader's idle
 * timeout only fires on a node that really went silent.
 */
import type { ServerResponse } from 'node:http';
import { apiVersionHeader } from './send.ts';

/** Sends the 200 head; the returned function writes one line (JSON, then `\n`). */
export function startNdjson(res: ServerResponse): (value: unknown) => void {
  res.writeHead(200, {
    ...apiVersionHeader,
    'content-type': 'application/x-ndjson',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  return (value) => {
    if (!res.destroyed && !res.writableEnded) res.write(`${JSON.stringify(value)}\n`);
  };
}

/** Aborts when the client goes away before the response is finished. */
export function abortSignalOf(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}

export interface ProgressThrottleOptions {
  /** Shortest time between two lines (250 ms: at most 4 a second). */
  intervalMs: number;
  /** Longest time without a line: the latest state is repeated. */
  heartbeatMs: number;
  /** Milliseconds, monotonic. */
  now?: () => number;
}

export class ProgressThrottle<T> {
  private latest: T | undefined;
  private dirty = false;
  private stopped = false;
  private lastSent = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly now: () => number;

  constructor(
    private readonly send: (value: T) => void,
    private readonly options: ProgressThrottleOptions,
  ) {
    this.now = options.now ?? (() => performance.now());
    this.heartbeat = setInterval(() => {
      if (this.latest !== undefined && this.now() - this.lastSent >= options.heartbeatMs) this.emit();
    }, Math.max(10, Math.floor(options.heartbeatMs / 2)));
    this.heartbeat.unref();
  }

  update(value: T): void {
    if (this.stopped) return;
    this.latest = value;
    this.dirty = true;
    const wait = this.lastSent + this.options.intervalMs - this.now();
    if (wait <= 0) this.emit();
    else this.timer ??= setTimeout(() => this.emit(), wait);
  }

  /** Stops every timer; nothing is sent after it. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.heartbeat);
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.latest = undefined;
  }

  private emit(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.latest === undefined) return;
    this.lastSent = this.now();
    this.dirty = false;
    this.send(this.latest);
  }

  /** Whether the latest state was not sent yet. */
  get pending(): boolean {
    return this.dirty;
  }
}
