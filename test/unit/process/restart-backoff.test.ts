import { describe, expect, it } from 'vitest';
import { RestartBackoff } from '../../../src/process/restart-backoff.ts';

const options = { initialMs: 100, maxMs: 1_000, stableMs: 30_000 };

describe('RestartBackoff', () => {
  it('restarts the first death after the initial delay', () => {
    expect(new RestartBackoff(options).onExit(5).delayMs).toBe(100);
  });

  it('doubles the delay while workers keep dying young, up to the cap', () => {
    const backoff = new RestartBackoff(options);
    const delays = Array.from({ length: 7 }, () => backoff.onExit(50).delayMs);
    expect(delays).toEqual([100, 200, 400, 800, 1_000, 1_000, 1_000]);
  });

  it('counts how many died young in a row', () => {
    const backoff = new RestartBackoff(options);
    backoff.onExit(10);
    backoff.onExit(10);
    expect(backoff.onExit(10).streak).toBe(3);
  });

  it('starts over after a worker stayed up for the stable period', () => {
    const backoff = new RestartBackoff(options);
    for (let i = 0; i < 5; i++) backoff.onExit(10);
    expect(backoff.onExit(30_000)).toEqual({ delayMs: 100, streak: 1 });
    expect(backoff.onExit(10).delayMs).toBe(200);
  });
});
