/**
 * Retry policy for idempotent upstream requests (GET, HEAD).
 *
 * An attempt is "send the request and get a 2xx answer's headers" (plus, for
 * small bodies the client buffers itself, reading them). It resolves before
 * any body byte reaches the caller, so a retry can never repeat bytes the
 * caller already has: once `withRetry` resolved, it is out of the picture.
 *
 * Retried: connection refused/reset, a socket closed before the headers,
 * connect/headers/body-idle timeouts, 502/503/504 and 429. Waits use
 * exponential backoff with full jitter (`random() * min(max, base * 2^n)`),
 * or the primary's Retry-After when it sent one, unless that is longer than
 * `maxRetryAfterMs`: then the error is returned at once, since waiting that
 * long would outlast any client.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { isUpstreamError } from '../cache/ports.ts';
import { errorCode } from './upstream-errors.ts';

export interface RetryOptions {
  /** Extra attempts after the first. */
  retries: number;
  /** Default 100ms. */
  baseDelayMs?: number;
  /** Default 5s. */
  maxDelayMs?: number;
  /** Longest Retry-After honoured; a longer one ends retrying. Default 10s. */
  maxRetryAfterMs?: number;
  /** Uniform in [0, 1). Default Math.random. */
  random?: () => number;
  /** Waits `ms`, rejecting when `signal` aborts. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
}

export type RetryDecision = { retry: false } | { retry: true; retryAfterMs: number | undefined };

const IDEMPOTENT = new Set(['GET', 'HEAD']);
const RETRYABLE_STATUS = new Set([502, 503, 504]);
const RETRYABLE_CAUSES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'EAI_AGAIN',
  'UND_ERR_SOCKET', // "other side closed" before the headers
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method.toUpperCase());
}

/** Whether an error thrown by an attempt (an UpstreamError) is worth another. */
export function retryDecisionFor(err: unknown): RetryDecision {
  if (!isUpstreamError(err)) return { retry: false };
  const retryAfterMs = err.retryAfter === undefined ? undefined : err.retryAfter * 1000;
  switch (err.code) {
    case 'UPSTREAM_RATE_LIMITED':
      return { retry: true, retryAfterMs };
    case 'UPSTREAM_SERVER_ERROR':
      return err.status !== undefined && RETRYABLE_STATUS.has(err.status) ? { retry: true, retryAfterMs } : { retry: false };
    case 'UPSTREAM_TIMEOUT':
    case 'UPSTREAM_UNREACHABLE': {
      const code = errorCode(err.cause);
      return code !== undefined && RETRYABLE_CAUSES.has(code) ? { retry: true, retryAfterMs: undefined } : { retry: false };
    }
    default:
      return { retry: false };
  }
}

/** Full-jitter exponential backoff for the `attempt`-th retry (0-based). */
export function backoffDelay(attempt: number, baseDelayMs: number, maxDelayMs: number, random: () => number): number {
  const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** attempt);
  return Math.floor(random() * ceiling);
}

/**
 * Runs `attempt` until it resolves, `decide` says the error is final, the
 * retries are spent, or `signal` aborts (then the last error, or the sleep's
 * abort error, is thrown; callers map it with the signal in hand).
 * Non-idempotent methods get exactly one attempt.
 */
export async function withRetry<T>(
  method: string,
  attempt: (attemptNumber: number) => Promise<T>,
  options: RetryOptions,
  signal: AbortSignal,
  decide: (err: unknown) => RetryDecision = retryDecisionFor,
): Promise<T> {
  const retries = isIdempotent(method) ? Math.max(0, options.retries) : 0;
  const base = options.baseDelayMs ?? 100;
  const max = options.maxDelayMs ?? 5_000;
  const maxRetryAfter = options.maxRetryAfterMs ?? 10_000;
  const random = options.random ?? Math.random;
  const sleep = options.sleep ?? defaultSleep;

  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (n >= retries || signal.aborted) throw err;
      const decision = decide(err);
      if (!decision.retry) throw err;
      if (decision.retryAfterMs !== undefined && decision.retryAfterMs > maxRetryAfter) throw err;
      const delayMs = decision.retryAfterMs ?? backoffDelay(n, base, max, random);
      options.onRetry?.({ attempt: n + 1, delayMs, error: err });
      await sleep(delayMs, signal);
    }
  }
}

async function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  await delay(ms, undefined, { signal });
}
