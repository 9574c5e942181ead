/**
 * The Upstream port wrapped with what protects a primary from this node:
 *
 * - the circuit breaker and 429 gate (circuit-breaker.ts): refused calls
 *   never reach the network;
 * - an optional cap on concurrent calls, with a bounded queue and a queue
 *   timeout (UPSTREAM_BUSY → 503 when the queue is full, UPSTREAM_TIMEOUT →
 *   504 when the wait was too long). A blob call holds its slot until its
 *   body is closed, since the transfer is the load;
 * - a short negative cache of 404s for manifests by tag and tag lists, so
 *   random names cannot burn the primary's rate limit. 404s by digest are
 *   never remembered: a digest is asked for right after a manifest named it,
 *   and a push in progress makes it exist moments later.
 *
 * The cap and the 404 memory are per process (per worker), in memory,
 * bounded; the breaker shares its decisions (see circuit-breaker.ts).
 */
import { LRUCache } from 'lru-cache';
import { UpstreamError, type Clock, type Upstream } from '../cache/ports.ts';
import type { CircuitBreaker } from './circuit-breaker.ts';
import type { RegistryListing } from './registry-client.ts';
import { toUpstreamError } from './upstream-errors.ts';

export interface ConcurrencyCapOptions {
  /** Calls in flight at once; 0 = no cap. */
  maxConcurrent: number;
  /** Calls waiting for a slot; more are refused at once. */
  maxQueued: number;
  /** Longest a call waits for a slot. */
  queueTimeoutMs: number;
}

export interface ProtectionOptions {
  breaker: CircuitBreaker;
  cap: ConcurrencyCap;
  /** 404s remembered for tags and repositories; undefined = none (e.g. per-client views of the primary). */
  notFound?: NotFoundCache;
}

/** Remembers 404s for a short time. */
export class NotFoundCache {
  /** Key → until when (ms since the epoch). */
  private readonly entries: LRUCache<string, number>;

  constructor(
    private readonly ttlMs: number,
    private readonly clock: Clock,
    max = 10_000,
  ) {
    this.entries = new LRUCache<string, number>({ max });
  }

  has(key: string): boolean {
    const until = this.entries.get(key);
    if (until === undefined) return false;
    if (until > this.clock.now()) return true;
    this.entries.delete(key);
    return false;
  }

  add(key: string): void {
    if (this.ttlMs > 0) this.entries.set(key, this.clock.now() + this.ttlMs);
  }
}

/** A counting semaphore with a bounded FIFO queue and a wait timeout. */
export class ConcurrencyCap {
  private active = 0;
  private readonly waiting: Array<{ grant: () => void }> = [];

  constructor(
    private readonly host: string,
    private readonly options: ConcurrencyCapOptions,
  ) {}

  /** Resolves with the function that frees the slot; rejects with UPSTREAM_BUSY / UPSTREAM_TIMEOUT / the signal's reason. */
  async acquire(signal: AbortSignal): Promise<() => void> {
    const { maxConcurrent, maxQueued, queueTimeoutMs } = this.options;
    if (maxConcurrent <= 0) return () => {};
    if (this.active < maxConcurrent) return this.take();
    if (this.waiting.length >= maxQueued) {
      throw new UpstreamError('UPSTREAM_BUSY', `${this.host}: ${maxConcurrent} requests in flight and ${maxQueued} queued`, {
        reason: `this node's cap on concurrent requests to ${this.host} is reached (${maxConcurrent} in flight, ${maxQueued} queued)`,
      });
    }
    return new Promise<() => void>((resolve, reject) => {
      const waiter = {
        grant: () => {
          cleanup();
          resolve(this.take());
        },
      };
      const fail = (err: unknown): void => {
        cleanup();
        const at = this.waiting.indexOf(waiter);
        if (at >= 0) this.waiting.splice(at, 1);
        reject(err);
      };
      const timer = setTimeout(() => {
        fail(
          new UpstreamError('UPSTREAM_TIMEOUT', `${this.host}: no upstream slot within ${queueTimeoutMs}ms`, {
            reason: `waited ${Math.ceil(queueTimeoutMs / 1000)}s for one of ${maxConcurrent} slots to ${this.host}`,
          }),
        );
      }, queueTimeoutMs);
      const onAbort = (): void => fail(signal.reason);
      const cleanup = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      };
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  private take(): () => void {
    this.active += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active -= 1;
      this.waiting.shift()?.grant();
    };
  }
}

const isDigest = (reference: string): boolean => reference.includes(':');

/** One call to `host` through the gate, the breaker and the cap; `hold` keeps the slot past the call (blob bodies). */
async function guardedCall<R>(
  host: string,
  { breaker, cap }: Pick<ProtectionOptions, 'breaker' | 'cap'>,
  signal: AbortSignal,
  call: () => Promise<R>,
  hold?: (result: R, release: () => void) => void,
): Promise<R> {
  const probe = breaker.admit();
  let release: () => void;
  try {
    release = await cap.acquire(signal);
  } catch (err) {
    breaker.record(probe, new UpstreamError('UPSTREAM_ABORTED', 'not sent'));
    throw toUpstreamError(err, signal, `${host}: waiting for an upstream slot`);
  }
  try {
    const result = await call();
    breaker.record(probe);
    if (hold) hold(result, release);
    else release();
    return result;
  } catch (err) {
    release();
    breaker.record(probe, err);
    throw err;
  }
}

/** A paged listing (prefetch jobs' catalogs and tag lists) through the breaker and the cap of its primary. */
export function protectListing(host: string, listing: RegistryListing, protection: Pick<ProtectionOptions, 'breaker' | 'cap'>): RegistryListing {
  return { page: (kind, repo, next, pageSize, signal) => guardedCall(host, protection, signal, () => listing.page(kind, repo, next, pageSize, signal)) };
}

export function protectUpstream(upstream: Upstream, { breaker, cap, notFound }: ProtectionOptions): Upstream {
  const host = upstream.host;
  const gates = { breaker, cap };
  const guarded = <R>(signal: AbortSignal, call: () => Promise<R>, hold?: (result: R, release: () => void) => void): Promise<R> =>
    guardedCall(host, gates, signal, call, hold);
  /** A call whose 404 is remembered under `key` (when there is a key). */
  const remembered = async <R>(key: string | undefined, signal: AbortSignal, call: () => Promise<R>): Promise<R> => {
    if (key !== undefined && notFound?.has(key)) {
      throw new UpstreamError('UPSTREAM_NOT_FOUND', `${key}: the primary answered 404 (remembered)`, {
        status: 404,
        reason: 'the primary answered 404 (remembered)',
      });
    }
    try {
      return await guarded(signal, call);
    } catch (err) {
      if (key !== undefined && err instanceof UpstreamError && err.code === 'UPSTREAM_NOT_FOUND') notFound?.add(key);
      throw err;
    }
  };
  const tagKey = (repo: string, reference: string): string | undefined => (isDigest(reference) ? undefined : `manifest ${repo}:${reference}`);
  return {
    host,
    headManifest: (repo, reference, signal) => remembered(tagKey(repo, reference), signal, () => upstream.headManifest(repo, reference, signal)),
    getManifest: (repo, reference, maxBytes, signal) =>
      remembered(tagKey(repo, reference), signal, () => upstream.getManifest(repo, reference, maxBytes, signal)),
    headBlob: (repo, digest, signal) => guarded(signal, () => upstream.headBlob(repo, digest, signal)),
    getBlob: (repo, digest, signal, options) =>
      guarded(
        signal,
        () => upstream.getBlob(repo, digest, signal, options),
        (result, release) => {
          if (result.body.destroyed || result.body.closed) release();
          else result.body.once('close', release);
        },
      ),
    listTags: (repo, signal) => remembered(`tags ${repo}`, signal, () => upstream.listTags(repo, signal)),
    getReferrers: (repo, digest, artifactType, signal) => guarded(signal, () => upstream.getReferrers(repo, digest, artifactType, signal)),
    close: () => upstream.close(),
  };
}
