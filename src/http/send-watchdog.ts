/**
 * Cuts responses whose client has stopped taking bytes.
 *
 * A client that never reads a big blob fills the kernel's socket buffer and
 * then causes no activity at all: no error, no close, only a descriptor and
 * the response's buffers held forever. The watchdog samples every watched
 * response's socket: while bytes wait to be sent (in the response, the
 * socket's stream buffer or libuv's write queue) and neither the bytes
 * written nor the bytes waiting change for `timeoutMs`, the socket is
 * destroyed. A response with nothing waiting (a fill waiting on the primary)
 * is never the client's fault and is never cut here; upstream timeouts bound it.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface SendWatchdogOptions {
  /** How long a response may have bytes waiting with no progress before its connection is cut. */
  timeoutMs: number;
  /** Milliseconds, monotonic; injectable for tests. */
  now?: () => number;
  /** Called with the response just before its socket is destroyed. */
  onStall?: (res: ServerResponse, stalledMs: number) => void;
}

/** What the watchdog reads of a socket: public counters and libuv's write queue. */
type WatchedSocket = Pick<Socket, 'bytesWritten' | 'writableLength' | 'destroyed' | 'destroy'> & {
  _handle?: { writeQueueSize?: number } | null;
};

interface Watched {
  socket: WatchedSocket;
  written: number;
  waiting: number;
  since: number;
}

/** Sampling period for a timeout: a quarter of it, between 50 ms and 1 s. */
export function checkIntervalFor(timeoutMs: number): number {
  return Math.min(1_000, Math.max(50, Math.floor(timeoutMs / 4)));
}

export class SendWatchdog {
  private readonly watched = new Map<ServerResponse, Watched>();
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: SendWatchdogOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  /** Watches a response until it finishes or closes. */
  watch(res: ServerResponse): void {
    const socket = res.socket as WatchedSocket | null;
    if (!socket) return;
    this.watched.set(res, { socket, written: socket.bytesWritten, waiting: waitingBytes(res, socket), since: this.now() });
    const forget = (): void => {
      this.watched.delete(res);
    };
    res.once('finish', forget);
    res.once('close', forget);
    if (!this.timer) {
      this.timer = setInterval(() => this.check(), checkIntervalFor(this.options.timeoutMs));
      this.timer.unref();
    }
  }

  /** One sampling round; the interval calls it, tests call it directly. */
  check(): void {
    const now = this.now();
    for (const [res, entry] of this.watched) {
      const { socket } = entry;
      if (socket.destroyed) {
        this.watched.delete(res);
        continue;
      }
      const written = socket.bytesWritten;
      const waiting = waitingBytes(res, socket);
      if (waiting === 0 || written !== entry.written || waiting !== entry.waiting) {
        entry.written = written;
        entry.waiting = waiting;
        entry.since = now;
        continue;
      }
      const stalledMs = now - entry.since;
      if (stalledMs >= this.options.timeoutMs) {
        this.watched.delete(res);
        this.options.onStall?.(res, stalledMs);
        socket.destroy();
      }
    }
  }

  get size(): number {
    return this.watched.size;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.watched.clear();
  }
}

function waitingBytes(res: ServerResponse, socket: WatchedSocket): number {
  // res.writableLength includes the socket's stream buffer; libuv's queue holds what the kernel refused.
  return res.writableLength + (socket._handle?.writeQueueSize ?? 0);
}
