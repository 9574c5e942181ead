import { describe, expect, it } from 'vitest';
import { TokenCache, type TokenGrant } from '../../../src/upstream/token-cache.ts';
import { FakeClock } from './helpers.ts';

const key = { realm: 'https://auth/token', service: 'reg', scope: 'repository:a:pull' };
const never = new AbortController().signal;

function counter(expiresInSeconds?: number): { calls: () => number; fetch: () => Promise<TokenGrant> } {
  let n = 0;
  return {
    calls: () => n,
    fetch: async () => {
      n++;
      return { token: `t${n}`, expiresInSeconds };
    },
  };
}

describe('TokenCache', () => {
  it('reuses a token within its lifetime and fetches a new one after it', async () => {
    const clock = new FakeClock();
    const cache = new TokenCache({ clock, safetyMarginMs: 10_000 });
    const f = counter(300);
    expect(await cache.obtain(key, f.fetch, never)).toBe('t1');
    clock.advance(289_000);
    expect(await cache.obtain(key, f.fetch, never)).toBe('t1');
    clock.advance(1_000); // inside the safety margin
    expect(await cache.obtain(key, f.fetch, never)).toBe('t2');
    expect(f.calls()).toBe(2);
  });

  it('defaults to 60 seconds when expires_in is missing', async () => {
    const clock = new FakeClock();
    const cache = new TokenCache({ clock, safetyMarginMs: 0 });
    const f = counter(undefined);
    await cache.obtain(key, f.fetch, never);
    clock.advance(59_999);
    expect(cache.get(key)).toBe('t1');
    clock.advance(1);
    expect(cache.get(key)).toBeUndefined();
  });

  it('keeps tokens apart per realm, service and scope', async () => {
    const cache = new TokenCache({ clock: new FakeClock() });
    const f = counter(300);
    await cache.obtain(key, f.fetch, never);
    await cache.obtain({ ...key, scope: 'repository:b:pull' }, f.fetch, never);
    await cache.obtain({ ...key, service: undefined }, f.fetch, never);
    await cache.obtain({ ...key, realm: 'https://other/token' }, f.fetch, never);
    expect(f.calls()).toBe(4);
  });

  it('shares one fetch between concurrent requests for the same key', async () => {
    const cache = new TokenCache({ clock: new FakeClock() });
    let release: (g: TokenGrant) => void = () => {};
    let calls = 0;
    const fetch = (): Promise<TokenGrant> => {
      calls++;
      return new Promise((resolve) => (release = resolve));
    };
    const all = Promise.all([1, 2, 3].map(() => cache.obtain(key, fetch, never)));
    release({ token: 'shared', expiresInSeconds: 300 });
    expect(await all).toEqual(['shared', 'shared', 'shared']);
    expect(calls).toBe(1);
  });

  it('does not cache a failed fetch', async () => {
    const cache = new TokenCache({ clock: new FakeClock() });
    await expect(cache.obtain(key, () => Promise.reject(new Error('boom')), never)).rejects.toThrow('boom');
    expect(await cache.obtain(key, counter(300).fetch, never)).toBe('t1');
  });

  it('lets one waiter give up without failing the others', async () => {
    const cache = new TokenCache({ clock: new FakeClock() });
    let release: (g: TokenGrant) => void = () => {};
    const fetch = (): Promise<TokenGrant> => new Promise((resolve) => (release = resolve));
    const quitter = new AbortController();
    const a = cache.obtain(key, fetch, quitter.signal);
    const b = cache.obtain(key, fetch, never);
    quitter.abort(new Error('gone'));
    await expect(a).rejects.toThrow('gone');
    release({ token: 'x', expiresInSeconds: 300 });
    expect(await b).toBe('x');
  });

  it('forgets a rejected token but not a newer one', async () => {
    const cache = new TokenCache({ clock: new FakeClock() });
    const f = counter(300);
    await cache.obtain(key, f.fetch, never);
    cache.invalidate(key, 'stale');
    expect(cache.get(key)).toBe('t1');
    cache.invalidate(key, 't1');
    expect(cache.get(key)).toBeUndefined();
  });

  it('stays bounded', async () => {
    const cache = new TokenCache({ clock: new FakeClock(), maxEntries: 2 });
    const f = counter(300);
    for (const scope of ['a', 'b', 'c']) await cache.obtain({ ...key, scope }, f.fetch, never);
    expect(cache.get({ ...key, scope: 'a' })).toBeUndefined();
    expect(cache.get({ ...key, scope: 'c' })).toBe('t3');
  });
});
