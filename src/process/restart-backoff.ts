/**
 * When to restart a worker that died: at once-ish the first time, then
 * doubling while replacements keep dying young, so a worker that crashes at
 * start (or on every request) does not spin a CPU forking. A worker that
 * stayed up for `stableMs` earns a fresh start: its next death waits
 * `initialMs` again. One backoff per worker slot, so killing every worker at
 * once restarts each of them promptly.
 */
export interface RestartBackoffOptions {
  /** Delay before the first restart. */
  initialMs: number;
  /** Longest delay, however often the slot's workers died. */
  maxMs: number;
  /** A worker up at least this long resets its slot's delay. */
  stableMs: number;
}

export const defaultRestartBackoff: RestartBackoffOptions = { initialMs: 100, maxMs: 10_000, stableMs: 30_000 };

export class RestartBackoff {
  private nextDelayMs: number;
  /** Consecutive restarts of workers that died young. */
  private streak = 0;

  constructor(private readonly options: RestartBackoffOptions = defaultRestartBackoff) {
    this.nextDelayMs = options.initialMs;
  }

  /** The delay before restarting a worker that died after `uptimeMs`, and how many died young in a row. */
  onExit(uptimeMs: number): { delayMs: number; streak: number } {
    if (uptimeMs >= this.options.stableMs) {
      this.nextDelayMs = this.options.initialMs;
      this.streak = 0;
    }
    const delayMs = this.nextDelayMs;
    this.streak += 1;
    this.nextDelayMs = Math.min(this.nextDelayMs * 2, this.options.maxMs);
    return { delayMs, streak: this.streak };
  }
}
