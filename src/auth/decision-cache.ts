/**
 * Decisions of `auth.mode: upstream`, reused for `auth.cacheDecisions`: once
 * the primary said whether a credential may pull a repository, the same
 * question is not asked again until the decision expires.
 *
 * - The key is an HMAC-SHA256, under a random key made per process, of the
 *   credential, the upstream and the repository. The credential itself is
 *   never stored, and keys are useless outside this process.
 * - Bounded: at most `maxEntries` decisions, least recently used go first.
 * - Concurrent checks of the same key share one call of `check`; a caller
 *   whose signal aborts stops waiting without failing the others.
 * - Only answers are cached. A `check` that rejects (the primary could not
 *   be asked) caches nothing: its waiters get the rejection, and the next
 *   request asks again. `check` must therefore reject, not answer "deny",
 *   when the primary's answer is not a decision (timeouts, 5xx, 429).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Clock } from '../cache/ports.ts';

export interface DecisionCacheConfig {
  /** How long a decision is reused (`auth.cacheDecisions`); 0 asks every time (concurrent asks are still merged). */
  ttlMs: number;
  /** Decisions kept at most. Default 10 000. */
  maxEntries?: number;
}

export interface DecisionCacheDeps {
  clock: Clock;
}

export interface DecisionQuestion {
  /**
   * What identifies the client to the primary: the `Authorization` header
   * value it sent, or undefined for an anonymous client.
   */
  credential: string | undefined;
  /** Host of the upstream asked. */
  upstream: string;
  repository: string;
}

interface Entry<T> {
  decision: T;
  expiresAt: number;
}

/** A cached decision; `T` is what the caller's check answers (e.g. allow / deny with a status). */
export class DecisionCache<T extends {}> {
  readonly #ttlMs: number;
  readonly #clock: Clock;
  readonly #key = randomBytes(32);
  readonly #decisions: LRUCache<string, Entry<T>> | undefined;
  readonly #inflight = new Map<string, Promise<T>>();

  constructor(config: DecisionCacheConfig, deps: DecisionCacheDeps) {
    if (!Number.isSafeInteger(config.ttlMs) || config.ttlMs < 0) throw new RangeError('ttlMs must be a whole number of milliseconds, at least 0');
    this.#ttlMs = config.ttlMs;
    this.#clock = deps.clock;
    this.#decisions = config.ttlMs === 0 ? undefined : new LRUCache<string, Entry<T>>({ max: config.maxEntries ?? 10_000 });
  }

  /** The key a question is stored under: an HMAC, never the credential. */
  keyOf(question: DecisionQuestion): string {
    const field = (text: string | undefined): string => (text === undefined ? '-' : `${text.length}:${text}`);
    return createHmac('sha256', this.#key)
      .update(`${field(question.credential)}|${field(question.upstream.toLowerCase())}|${field(question.repository)}`)
      .digest('base64url');
  }

  /** The cached decision for `question`, if one is still valid. */
  peek(question: DecisionQuestion): T | undefined {
    return this.#valid(this.keyOf(question));
  }

  /**
   * The cached decision, or the answer of `check`, cached for the TTL.
   * Concurrent calls for the same question share one `check`, which is not
   * tied to any one caller; each caller stops waiting when its own `signal`
   * aborts, rejecting with the signal's reason.
   */
  async decide(question: DecisionQuestion, check: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    const key = this.keyOf(question);
    const cached = this.#valid(key);
    if (cached !== undefined) return cached;
    let pending = this.#inflight.get(key);
    if (pending === undefined) {
      // `finally` runs in a later microtask, so even a `check` that throws at once is removed after it was added.
      pending = this.#ask(key, check).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, pending);
    }
    return signal === undefined ? pending : abortable(pending, signal);
  }

  /** Forgets every decision (e.g. after the access configuration changed). */
  clear(): void {
    this.#decisions?.clear();
  }

  /** Decisions held now. */
  get size(): number {
    return this.#decisions?.size ?? 0;
  }

  get ttlMs(): number {
    return this.#ttlMs;
  }

  async #ask(key: string, check: () => Promise<T>): Promise<T> {
    const decision = await check();
    this.#decisions?.set(key, { decision, expiresAt: this.#clock.now() + this.#ttlMs });
    return decision;
  }

  #valid(key: string): T | undefined {
    const entry = this.#decisions?.get(key);
    if (entry === undefined) return undefined;
    if (this.#clock.now() < entry.expiresAt) return entry.decision;
    this.#decisions?.delete(key);
    return undefined;
  }
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
