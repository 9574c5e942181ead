import { describe, expect, it } from 'vitest';
import { UpstreamError } from '../../../src/cache/ports.ts';
import { backoffDelay, retryDecisionFor, withRetry } from '../../../src/upstream/retry.ts';

const never = new AbortController().signal;
const socketError = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' });

function failing(errors: unknown[]): { attempts: () => number; attempt: () => Promise<string> } {
  let n = 0;
  return {
    attempts: () => n,
    attempt: async () => {
      const err = errors[n++];
      if (err !== undefined) throw err;
      return 'ok';
    },
  };
}

function options(sleeps: number[] = [], retries = 3) {
  return { retries, random: () => 1 - Number.EPSILON, sleep: async (ms: number) => void sleeps.push(ms), baseDelayMs: 100, maxDelayMs: 1000 };
}

describe('withRetry', () => {
  it('retries a 503 and then succeeds, backing off exponentially', async () => {
    const sleeps: number[] = [];
    const err = new UpstreamError('UPSTREAM_SERVER_ERROR', '503', { status: 503 });
    const f = failing([err, err, err]);
    expect(await withRetry('GET', f.attempt, options(sleeps), never)).toBe('ok');
    expect(f.attempts()).toBe(4);
    expect(sleeps).toEqual([99, 199, 399]);
  });

  it('caps the backoff and applies full jitter', () => {
    expect(backoffDelay(10, 100, 1000, () => 0.5)).toBe(500);
    expect(backoffDelay(0, 100, 1000, () => 0)).toBe(0);
  });

  it('gives up after the configured retries with the last error', async () => {
    const err = new UpstreamError('UPSTREAM_UNREACHABLE', 'reset', { cause: socketError });
    const f = failing([err, err, err, err]);
    await expect(withRetry('HEAD', f.attempt, options([], 2), never)).rejects.toBe(err);
    expect(f.attempts()).toBe(3);
  });

  it('does not retry a 404, a 500, a TLS failure or a non-idempotent method', async () => {
    const cases: [string, unknown][] = [
      ['GET', new UpstreamError('UPSTREAM_NOT_FOUND', '404', { status: 404 })],
      ['GET', new UpstreamError('UPSTREAM_SERVER_ERROR', '500', { status: 500 })],
      ['GET', new UpstreamError('UPSTREAM_UNREACHABLE', 'tls', { cause: Object.assign(new Error(), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }) })],
      ['POST', new UpstreamError('UPSTREAM_SERVER_ERROR', '503', { status: 503 })],
    ];
    for (const [method, err] of cases) {
      const f = failing([err]);
      await expect(withRetry(method, f.attempt, options(), never)).rejects.toBe(err);
      expect(f.attempts()).toBe(1);
    }
  });

  it('waits for Retry-After on 429 up to the cap, and gives up beyond it', async () => {
    const sleeps: number[] = [];
    const soon = new UpstreamError('UPSTREAM_RATE_LIMITED', '429', { status: 429, retryAfter: 2 });
    expect(await withRetry('GET', failing([soon]).attempt, { ...options(sleeps), maxRetryAfterMs: 5000 }, never)).toBe('ok');
    expect(sleeps).toEqual([2000]);

    const late = new UpstreamError('UPSTREAM_RATE_LIMITED', '429', { status: 429, retryAfter: 60 });
    const f = failing([late]);
    await expect(withRetry('GET', f.attempt, { ...options(), maxRetryAfterMs: 5000 }, never)).rejects.toBe(late);
    expect(f.attempts()).toBe(1);
  });

  it('stops when the caller aborts during the backoff', async () => {
    const ac = new AbortController();
    const err = new UpstreamError('UPSTREAM_SERVER_ERROR', '503', { status: 503 });
    const f = failing([err, err]);
    const run = withRetry('GET', f.attempt, { retries: 3, baseDelayMs: 60_000, random: () => 0.99 }, ac.signal);
    run.catch(() => {});
    await new Promise((resolve) => setImmediate(resolve)); // the first attempt failed; a ~1 min backoff is running
    ac.abort();
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(f.attempts()).toBe(1);
  });

  it('classifies timeouts before headers as retryable', () => {
    const headers = Object.assign(new Error(), { code: 'UND_ERR_HEADERS_TIMEOUT' });
    expect(retryDecisionFor(new UpstreamError('UPSTREAM_TIMEOUT', 't', { cause: headers })).retry).toBe(true);
    expect(retryDecisionFor(new UpstreamError('UPSTREAM_TIMEOUT', 'deadline')).retry).toBe(false);
    expect(retryDecisionFor(new Error('plain')).retry).toBe(false);
  });
});
