/** Progress lines of a warm stream: at most one per interval, the latest state wins, repeated while quiet. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ProgressThrottle } from '../../../src/http/ndjson-response.ts';

describe('progress throttle', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('sends the first state at once, then the latest once per interval', () => {
    const sent: number[] = [];
    const throttle = new ProgressThrottle<number>((n) => sent.push(n), { intervalMs: 250, heartbeatMs: 10_000, now: () => Date.now() });
    for (let i = 1; i <= 100; i++) throttle.update(i);
    expect(sent).toEqual([1]);
    vi.advanceTimersByTime(249);
    expect(sent).toEqual([1]);
    vi.advanceTimersByTime(1);
    expect(sent).toEqual([1, 100]);
    // Over a second of updates every 10 ms: about four lines, never more than one per 250 ms.
    for (let t = 0; t < 1_000; t += 10) {
      throttle.update(1_000 + t);
      vi.advanceTimersByTime(10);
    }
    expect(sent.length - 2).toBeGreaterThanOrEqual(3);
    expect(sent.length - 2).toBeLessThanOrEqual(5);
    throttle.stop();
  });

  it('repeats the latest state while nothing changes, and stops when told', () => {
    const sent: number[] = [];
    const throttle = new ProgressThrottle<number>((n) => sent.push(n), { intervalMs: 250, heartbeatMs: 1_000, now: () => Date.now() });
    throttle.update(7);
    vi.advanceTimersByTime(2_600);
    expect(sent).toEqual([7, 7, 7]);
    throttle.stop();
    vi.advanceTimersByTime(5_000);
    expect(sent).toEqual([7, 7, 7]);
    throttle.update(8);
    vi.advanceTimersByTime(5_000);
    expect(sent).toEqual([7, 7, 7]);
  });
});
