import { describe, expect, it } from 'vitest';
import { PinRefresher } from '../../../src/process/pin-refresher.ts';

const silent = { debug() {}, info() {}, warn() {}, error() {} };

describe('PinRefresher', () => {
  it('never runs two refreshes at once; a request during a refresh runs once, after it, with the latest list', async () => {
    let active = 0;
    let maxActive = 0;
    const seen: string[] = [];
    const gates: (() => void)[] = [];
    const refresher = new PinRefresher(async (reference) => {
      active += 1;
      maxActive = Math.max(maxActive, active);
      seen.push(reference);
      await new Promise<void>((resolve) => gates.push(resolve));
      active -= 1;
    }, silent);
    const first = refresher.request(['a', 'b']);
    void refresher.request(['c']);
    void refresher.request(['d']); // supersedes ['c']
    const release = async (): Promise<void> => {
      while (gates.length === 0) await new Promise((resolve) => setImmediate(resolve));
      gates.shift()!();
    };
    for (let i = 0; i < 3; i++) await release();
    await first;
    expect(seen).toEqual(['a', 'b', 'd']);
    expect(maxActive).toBe(1);
    expect(refresher.busy).toBe(false);
  });

  it('keeps going after a reference fails', async () => {
    const seen: string[] = [];
    const refresher = new PinRefresher(async (reference) => {
      seen.push(reference);
      if (reference === 'bad') throw new Error('primary down');
    }, silent);
    await refresher.request(['bad', 'good']);
    expect(seen).toEqual(['bad', 'good']);
  });
});
