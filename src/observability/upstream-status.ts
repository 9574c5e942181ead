/**
 * Which primaries are down, host-wide. Every upstream call reports its
 * outcome here (through the instrumented Upstream); `/health`'s `primary`
 * check reads it.
 *
 * In a cluster the board lives in the cluster primary: workers report
 * outages and recoveries over IPC and the primary broadcasts the whole
 * state back (src/process/cluster-ops.ts), so every worker answers /health
 * the same way, whichever worker saw the failure. A single process (tests,
 * in-process apps) uses a board of its own.
 *
 * The board also writes the operator's log line for an outage, rate limited:
 * at most one line per primary and cause per interval (30 s by default),
 * with the number of failures it stands for.
 */
import type { Clock, Logger } from '../cache/ports.ts';

export interface UpstreamOutage {
  /** The primary's host (never a URL: no path, no credentials). */
  host: string;
  /** The Upstream port's error code, e.g. UPSTREAM_UNREACHABLE. */
  code: string;
  /** What went wrong, e.g. "connection refused (ECONNREFUSED)". */
  cause: string;
  /** When this outage was first seen (ms since the epoch). */
  since: number;
}

/** Where outcomes of upstream calls go, and the host-wide view that comes back. */
export interface UpstreamStatus {
  /** A call to `host` failed with an outage (unreachable, timeout, 5xx, 429, malformed answer). */
  failed(host: string, code: string, cause: string): void;
  /** `host` answered (a 2xx, or a 404/401/403: it is up). */
  succeeded(host: string): void;
  /** Primaries that are down right now. */
  outages(): UpstreamOutage[];
}

export interface UpstreamStatusBoardOptions {
  logger: Logger;
  clock: Clock;
  /** At most one log line per primary and cause per this many ms. Default 30 s. */
  logIntervalMs?: number;
}

/** The board itself: state plus rate-limited logging. `failed`/`succeeded` return whether the state changed. */
export class UpstreamStatusBoard implements UpstreamStatus {
  private readonly down = new Map<string, UpstreamOutage>();
  private readonly logged = new Map<string, { at: number; suppressed: number }>();
  private readonly logIntervalMs: number;

  constructor(private readonly options: UpstreamStatusBoardOptions) {
    this.logIntervalMs = options.logIntervalMs ?? 30_000;
  }

  failed(host: string, code: string, cause: string): boolean {
    const now = this.options.clock.now();
    const previous = this.down.get(host);
    const changed = previous?.code !== code || previous.cause !== cause;
    if (changed) this.down.set(host, { host, code, cause, since: previous?.since ?? now });
    this.log(host, code, cause, now);
    return changed;
  }

  succeeded(host: string): boolean {
    const previous = this.down.get(host);
    if (previous === undefined) return false;
    this.down.delete(host);
    const downMs = this.options.clock.now() - previous.since;
    this.options.logger.info({ upstream: host, downMs, lastCause: previous.cause }, 'primary reachable again');
    for (const key of this.logged.keys()) if (key.startsWith(`${host}\n`)) this.logged.delete(key);
    return true;
  }

  outages(): UpstreamOutage[] {
    return [...this.down.values()];
  }

  private log(host: string, code: string, cause: string, now: number): void {
    const key = `${host}\n${cause}`;
    const last = this.logged.get(key);
    if (last !== undefined && now - last.at < this.logIntervalMs) {
      last.suppressed += 1;
      return;
    }
    const suppressed = last?.suppressed ?? 0;
    this.logged.set(key, { at: now, suppressed: 0 });
    this.options.logger.warn(
      // `suppressed`: failures with this cause since the last line, not logged one by one.
      { upstream: host, code, cause, ...(suppressed > 0 ? { suppressed } : {}) },
      'primary unavailable; only cached content can be served',
    );
  }
}
