/**
 * Bearer tokens cached per (realm, service, scope) until shortly before they
 * expire, with concurrent requests for the same key sharing one token fetch.
 *
 * Lifetime follows the Docker token spec: `expires_in` seconds, 60 when the
 * token server omits it. The lifetime is counted from when the fetch started
 * on our clock (not the server's `issued_at`, which clock skew makes
 * untrustworthy), minus a safety margin so a token is never sent in its last
 * seconds.
 */
import type { Clock } from '../cache/ports.ts';

export interface TokenKey {
  realm: string;
  service: string | undefined;
  scope: string;
}

export interface TokenGrant {
  token: string;
  /** Seconds the token stays valid; undefined → the spec's default of 60. */
  expiresInSeconds: number | undefined;
}

export interface TokenCacheOptions {
  clock: Clock;
  /** Taken off every lifetime (at most half of it). Default 10s. */
  safetyMarginMs?: number;
  /** Entries kept at most; the oldest go first. Default 1000. */
  maxEntries?: number;
}

const DEFAULT_TTL_SECONDS = 60;

interface Entry {
  token: string;
  expiresAt: number;
}

export class TokenCache {
  readonly #clock: Clock;
  readonly #marginMs: number;
  readonly #maxEntries: number;
  readonly #tokens = new Map<string, Entry>();
  readonly #inflight = new Map<string, Promise<string>>();

  constructor(options: TokenCacheOptions) {
    this.#clock = options.clock;
    this.#marginMs = options.safetyMarginMs ?? 10_000;
    this.#maxEntries = options.maxEntries ?? 1000;
  }

  /** A token still valid for `key`, if one is cached. */
  get(key: TokenKey): string | undefined {
    const id = keyId(key);
    const entry = this.#tokens.get(id);
    if (entry === undefined) return undefined;
    if (this.#clock.now() >= entry.expiresAt) {
      this.#tokens.delete(id);
      return undefined;
    }
    return entry.token;
  }

  /** Forget `token` for `key` (the primary rejected it); a newer token stays. */
  invalidate(key: TokenKey, token: string): void {
    const id = keyId(key);
    if (this.#tokens.get(id)?.token === token) this.#tokens.delete(id);
  }

  /**
   * The cached token for `key`, or one from `fetch`. Concurrent callers for
   * the same key share a single fetch. The fetch is not tied to any one
   * caller's signal (a caller that gives up must not fail the others); each
   * caller stops waiting when its own `signal` aborts, rejecting with the
   * signal's reason.
   */
  async obtain(key: TokenKey, fetch: () => Promise<TokenGrant>, signal: AbortSignal): Promise<string> {
    const cached = this.get(key);
    if (cached !== undefined) return cached;
    if (signal.aborted) throw signal.reason;
    const id = keyId(key);
    let pending = this.#inflight.get(id);
    if (pending === undefined) {
      pending = this.#fetch(id, fetch);
      this.#inflight.set(id, pending);
    }
    return abortable(pending, signal);
  }

  async #fetch(id: string, fetch: () => Promise<TokenGrant>): Promise<string> {
    const startedAt = this.#clock.now();
    try {
      const grant = await fetch();
      this.#store(id, grant, startedAt);
      return grant.token;
    } finally {
      this.#inflight.delete(id);
    }
  }

  #store(id: string, grant: TokenGrant, startedAt: number): void {
    const seconds = grant.expiresInSeconds ?? DEFAULT_TTL_SECONDS;
    const lifetimeMs = Math.max(0, seconds * 1000);
    const expiresAt = startedAt + lifetimeMs - Math.min(this.#marginMs, lifetimeMs / 2);
    this.#tokens.delete(id); // re-insert at the end: Map order is age order
    this.#tokens.set(id, { token: grant.token, expiresAt });
    this.#prune();
  }

  #prune(): void {
    const now = this.#clock.now();
    for (const [id, entry] of this.#tokens) {
      if (entry.expiresAt <= now) this.#tokens.delete(id);
    }
    for (const id of this.#tokens.keys()) {
      if (this.#tokens.size <= this.#maxEntries) break;
      this.#tokens.delete(id);
    }
  }
}

function keyId(key: TokenKey): string {
  return JSON.stringify([key.realm, key.service ?? null, key.scope]);
}

/** `promise`, or the signal's reason if it aborts first. `promise` always gets a handler. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
