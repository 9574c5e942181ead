/**
 * A token bucket: `ratePerSecond` tokens a second, at most `burst` saved up.
 * `take(n)` waits until n tokens are there. A cost known only afterwards is
 * charged with `charge(n)`, which may leave the bucket in debt: the next
 * `take` then waits for the debt to be paid, so the average stays capped.
 * Clock and sleep are injected (fake in tests).
 */
import type { Clock } from '../cache/ports.ts';

export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

export const realSleep: Sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });

export class TokenBucket {
  private tokens: number;
  private last: number;
  /** Waiters go one at a time, in order. */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly clock: Clock,
    private readonly sleep: Sleep = realSleep,
  ) {
    if (!(ratePerSecond > 0) || !(burst >= 1)) throw new RangeError('a token bucket needs a positive rate and a burst of at least 1');
    this.tokens = burst;
    this.last = clock.now();
  }

  /** Waits until `n` tokens are available and takes them. */
  take(n: number, signal: AbortSignal): Promise<void> {
    const turn = this.queue.then(() => this.wait(n, signal));
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  /** Takes `n` tokens now, into debt if need be. */
  charge(n: number): void {
    this.refill();
    this.tokens -= n;
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.ratePerSecond);
    this.last = now;
  }

  private async wait(n: number, signal: AbortSignal): Promise<void> {
    const need = Math.min(n, this.burst);
    for (;;) {
      signal.throwIfAborted();
      this.refill();
      if (this.tokens >= need) {
        this.tokens -= n;
        return;
      }
      await this.sleep(Math.ceil(((need - this.tokens) / this.ratePerSecond) * 1000), signal);
    }
  }
}
