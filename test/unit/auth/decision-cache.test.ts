import { describe, expect, it, vi } from 'vitest';
import { DecisionCache, type DecisionQuestion } from '../../../src/auth/decision-cache.ts';

type Decision = { decision: 'allow' } | { decision: 'deny'; status: 401 | 403 };

function manualClock(start = 5_000) {
  return {
    t: start,
    now() {
      return this.t;
    },
  };
}

const password = 'hunter2-very-secret';
const header = `Basic ${Buffer.from(`alice:${password}`).toString('base64')}`;
const question: DecisionQuestion = { credential: header, upstream: 'ghcr.io', repository: 'team-a/app' };
const allow: Decision = { decision: 'allow' };
const deny: Decision = { decision: 'deny', status: 401 };

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('DecisionCache', () => {
  it('reuses a decision until its time is up, then asks again', async () => {
    const clock = manualClock();
    const cache = new DecisionCache<Decision>({ ttlMs: 60_000 }, { clock });
    const check = vi.fn(async () => allow);
    expect(await cache.decide(question, check)).toEqual(allow);
    clock.t += 59_999;
    expect(await cache.decide(question, check)).toEqual(allow);
    expect(check).toHaveBeenCalledTimes(1);
    clock.t += 1;
    expect(cache.peek(question)).toBeUndefined();
    expect(await cache.decide(question, check)).toEqual(allow);
    expect(check).toHaveBeenCalledTimes(2);
  });

  it('caches refusals for the same time as grants', async () => {
    const clock = manualClock();
    const cache = new DecisionCache<Decision>({ ttlMs: 1000 }, { clock });
    const check = vi.fn(async () => deny);
    await cache.decide(question, check);
    expect(await cache.decide(question, check)).toEqual(deny);
    expect(check).toHaveBeenCalledTimes(1);
    clock.t += 1000;
    await cache.decide(question, check);
    expect(check).toHaveBeenCalledTimes(2);
  });

  it('keys decisions by an HMAC that contains neither the password nor the header', () => {
    const cache = new DecisionCache<Decision>({ ttlMs: 1000 }, { clock: manualClock() });
    const key = cache.keyOf(question);
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(key).not.toContain(password);
    expect(key).not.toContain(header.slice(6, 20));
    expect(cache.keyOf({ ...question })).toBe(key);
  });

  it('makes keys that mean nothing to another process', () => {
    const clock = manualClock();
    const one = new DecisionCache<Decision>({ ttlMs: 1000 }, { clock });
    const other = new DecisionCache<Decision>({ ttlMs: 1000 }, { clock });
    expect(one.keyOf(question)).not.toBe(other.keyOf(question));
  });

  it('keeps decisions apart by credential, upstream and repository', async () => {
    const cache = new DecisionCache<Decision>({ ttlMs: 1000 }, { clock: manualClock() });
    await cache.decide(question, async () => allow);
    expect(cache.peek({ ...question, credential: `Basic ${Buffer.from('alice:wrong').toString('base64')}` })).toBeUndefined();
    expect(cache.peek({ ...question, credential: undefined })).toBeUndefined();
    expect(cache.peek({ ...question, credential: '' })).toBeUndefined();
    expect(cache.peek({ ...question, upstream: 'docker.io' })).toBeUndefined();
    expect(cache.peek({ ...question, repository: 'team-a/other' })).toBeUndefined();
    expect(cache.peek({ ...question, upstream: 'GHCR.IO' })).toEqual(allow);
  });

  it('cannot be fooled by fields that run into each other', async () => {
    const cache = new DecisionCache<Decision>({ ttlMs: 1000 }, { clock: manualClock() });
    expect(cache.keyOf({ credential: 'a|b', upstream: 'c', repository: 'd' })).not.toBe(
      cache.keyOf({ credential: 'a', upstream: 'b|c', repository: 'd' }),
    );
    expect(cache.keyOf({ credential: undefined, upstream: 'c', repository: 'd' })).not.toBe(
      cache.keyOf({ credential: '-', upstream: 'c', repository: 'd' }),
    );
  });

  it('asks once for concurrent identical questions', async () => {
    const cache = new DecisionCache<Decision>({ ttlMs: 1000 }, { clock: manualClock() });
    const answer = deferred<Decision>();
    const check = vi.fn(() => answer.promise);
    const waiting = [1, 2, 3].map(() => cache.decide(question, check));
    answer.resolve(allow);
    expect(await Promise.all(waiting)).toEqual([allow, allow, allow]);
    expect(check).toHaveBeenCalledTimes(1);
  });

  it('caches nothing when the check fails, so the next request asks again', async () => {
    const cache = new DecisionCache<Decision>({ ttlMs: 1000 }, { clock: manualClock() });
    const answer = deferred<Decision>();
    const first = cache.decide(question, () => answer.promise);
    const second = cache.decide(question, () => answer.promise);
    answer.reject(new Error('primary unreachable'));
    await expect(first).rejects.toThrow('primary unreachable');
    await expect(second).rejects.toThrow('primary unreachable');
    expect(cache.size).toBe(0);
    expect(await cache.decide(question, async () => allow)).toEqual(allow);
  });

  it('recovers from a check that throws before returning a promise', async () => {
    const cache = new DecisionCache<Decision>({ ttlMs: 1000 }, { clock: manualClock() });
    await expect(
      cache.decide(question, () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await cache.decide(question, async () => allow)).toEqual(allow);
  });

  it('lets a caller stop waiting without failing the others, and still caches the answer', async () => {
    const cache = new DecisionCache<Decision>({ ttlMs: 1000 }, { clock: manualClock() });
    const answer = deferred<Decision>();
    const controller = new AbortController();
    const impatient = cache.decide(question, () => answer.promise, controller.signal);
    const patient = cache.decide(question, () => answer.promise);
    controller.abort(new Error('client went away'));
    await expect(impatient).rejects.toThrow('client went away');
    answer.resolve(allow);
    expect(await patient).toEqual(allow);
    expect(cache.peek(question)).toEqual(allow);
  });

  it('refuses to start for a caller whose signal already aborted', async () => {
    const cache = new DecisionCache<Decision>({ ttlMs: 1000 }, { clock: manualClock() });
    const check = vi.fn(async () => allow);
    await expect(cache.decide(question, check, AbortSignal.abort(new Error('gone')))).rejects.toThrow('gone');
    expect(check).not.toHaveBeenCalled();
  });

  it('holds at most maxEntries decisions, dropping the least recently used', async () => {
    const cache = new DecisionCache<Decision>({ ttlMs: 60_000, maxEntries: 2 }, { clock: manualClock() });
    const repo = (repository: string) => ({ ...question, repository });
    await cache.decide(repo('a'), async () => allow);
    await cache.decide(repo('b'), async () => allow);
    cache.peek(repo('a'));
    await cache.decide(repo('c'), async () => allow);
    expect(cache.size).toBe(2);
    expect(cache.peek(repo('a'))).toEqual(allow);
    expect(cache.peek(repo('b'))).toBeUndefined();
    expect(cache.peek(repo('c'))).toEqual(allow);
  });

  it('with a TTL of 0, asks every time but still merges concurrent questions', async () => {
    const cache = new DecisionCache<Decision>({ ttlMs: 0 }, { clock: manualClock() });
    const check = vi.fn(async () => allow);
    await cache.decide(question, check);
    await cache.decide(question, check);
    expect(check).toHaveBeenCalledTimes(2);
    const answer = deferred<Decision>();
    const slow = vi.fn(() => answer.promise);
    const both = Promise.all([cache.decide(question, slow), cache.decide(question, slow)]);
    answer.resolve(deny);
    expect(await both).toEqual([deny, deny]);
    expect(slow).toHaveBeenCalledTimes(1);
  });

  it('forgets everything on clear', async () => {
    const cache = new DecisionCache<Decision>({ ttlMs: 1000 }, { clock: manualClock() });
    await cache.decide(question, async () => allow);
    cache.clear();
    expect(cache.peek(question)).toBeUndefined();
  });

  it('refuses a negative or fractional TTL', () => {
    expect(() => new DecisionCache<Decision>({ ttlMs: -1 }, { clock: manualClock() })).toThrow(RangeError);
    expect(() => new DecisionCache<Decision>({ ttlMs: 1.5 }, { clock: manualClock() })).toThrow(RangeError);
  });
});
