/**
 * A circuit breaker for one primary, and the 429 gate beside it.
 *
 * Breaker: `failureThreshold` consecutive outages (connection refused/reset,
 * DNS, TLS, timeouts, 5xx — never a 404/401/403, which are answers) open it.
 * While open, calls are refused at once, without touching the network. After
 * the cool-down one call is let through as a probe (half-open): success
 * closes the breaker, an outage opens it again for twice the previous
 * cool-down (capped at 16 times the configured one).
 *
 * Gate: a 429 keeps every call away from the primary until its Retry-After
 * (or, without one, the cool-down) has passed.
 *
 * Each process counts its own failures; what it decides (opened until T,
 * closed again, rate limited until T) goes to `share`, and what another
 * process of the node decided comes in through `adopt` — so in a cluster one
 * worker's open breaker or 429 keeps every worker away from the primary.
 * Refusals are UpstreamErrors like any other outage, so stale-if-error
 * serves cached tags meanwhile.
 */
import { UpstreamError, type Clock, type UpstreamErrorCode } from '../cache/ports.ts';

export type CircuitState = 'closed' | 'half-open' | 'open';

/** How the processes of a node tell each other their breakers' decisions (IPC through the cluster primary). */
export interface BreakerChannel {
  publish(event: BreakerEvent): void;
  /** `listener` gets the other processes' events (never this one's own). */
  subscribe(listener: (event: BreakerEvent) => void): void;
}

/** A decision one process shares with the others of the node. `until`: ms since the epoch. */
export type BreakerEvent =
  | { host: string; kind: 'open'; until: number; code: 'UPSTREAM_TIMEOUT' | 'UPSTREAM_UNREACHABLE'; reason: string }
  | { host: string; kind: 'closed' }
  | { host: string; kind: 'rate-limited'; until: number };

export interface CircuitBreakerOptions {
  host: string;
  clock: Clock;
  /** Consecutive outages that open the breaker. */
  failureThreshold: number;
  /** Time open before the first half-open probe; doubles on each failed probe. */
  cooldownMs: number;
  /** `remote`: the change was adopted from another process, not decided here. */
  onStateChange?(state: CircuitState, remote: boolean): void;
  /** Where this process's decisions go (the other workers). */
  share?(event: BreakerEvent): void;
}

/** Outages that count towards opening: the primary could not be talked to or failed on its side. */
const OUTAGES: ReadonlySet<UpstreamErrorCode> = new Set(['UPSTREAM_UNREACHABLE', 'UPSTREAM_TIMEOUT', 'UPSTREAM_SERVER_ERROR']);
const MAX_BACKOFF = 16;

/** What a finished call tells the breaker. */
export type CallOutcome = 'success' | 'outage' | 'neutral';

export function outcomeOf(err: unknown): CallOutcome {
  if (!(err instanceof UpstreamError)) return 'neutral';
  if (OUTAGES.has(err.code)) return 'outage';
  // The caller gave up, or the primary said "slow down": neither says whether it is up.
  if (err.code === 'UPSTREAM_ABORTED' || err.code === 'UPSTREAM_RATE_LIMITED') return 'neutral';
  return 'success'; // 404, 401, 403, a malformed answer: it answered
}

export class CircuitBreaker {
  private current: CircuitState = 'closed';
  private failures = 0;
  private openUntil = 0;
  private cooldownMs: number;
  private probing = false;
  private lastFailure: { code: UpstreamErrorCode; reason: string } | undefined;
  private rateLimitedUntil = 0;

  constructor(private readonly options: CircuitBreakerOptions) {
    this.cooldownMs = options.cooldownMs;
  }

  get state(): CircuitState {
    return this.current;
  }

  /** Milliseconds until the primary may be asked again after a 429; 0 when it may. */
  rateLimitedForMs(): number {
    return Math.max(0, this.rateLimitedUntil - this.options.clock.now());
  }

  /**
   * Whether a call may go to the primary now; throws the refusal when not.
   * Resolves to `true` when this call is the half-open probe: pass that to `record`.
   */
  admit(): boolean {
    const now = this.options.clock.now();
    const waitMs = this.rateLimitedUntil - now;
    if (waitMs > 0) {
      const retryAfter = Math.ceil(waitMs / 1000);
      throw new UpstreamError('UPSTREAM_RATE_LIMITED', `${this.options.host}: rate limited by the primary for ${retryAfter}s more`, {
        status: 429,
        retryAfter,
        reason: `the primary rate limited this mirror; no request to ${this.options.host} for ${retryAfter}s`,
      });
    }
    if (this.current === 'closed') return false;
    if (this.current === 'open') {
      if (now < this.openUntil) throw this.refusal(this.openUntil - now);
      this.transition('half-open');
    }
    if (this.probing) throw this.refusal(0);
    this.probing = true;
    return true;
  }

  /** What a call admitted by `admit` came to; `err` undefined for success. */
  record(probe: boolean, err?: unknown): void {
    if (probe) this.probing = false;
    if (err instanceof UpstreamError && err.code === 'UPSTREAM_RATE_LIMITED') {
      const waitMs = err.retryAfter !== undefined ? err.retryAfter * 1000 : this.options.cooldownMs;
      this.rateLimitedUntil = Math.max(this.rateLimitedUntil, this.options.clock.now() + waitMs);
      this.options.share?.({ host: this.options.host, kind: 'rate-limited', until: this.rateLimitedUntil });
    }
    const outcome = err === undefined ? 'success' : outcomeOf(err);
    if (outcome === 'neutral') return;
    if (outcome === 'success') {
      this.failures = 0;
      this.cooldownMs = this.options.cooldownMs;
      if (this.current !== 'closed') {
        this.transition('closed');
        this.options.share?.({ host: this.options.host, kind: 'closed' });
      }
      return;
    }
    const failure = err as UpstreamError;
    this.lastFailure = { code: failure.code, reason: failure.reason ?? failure.code };
    this.failures += 1;
    if (this.current === 'half-open' && probe) {
      this.cooldownMs = Math.min(this.cooldownMs * 2, this.options.cooldownMs * MAX_BACKOFF);
      this.open();
    } else if (this.current === 'closed' && this.failures >= this.options.failureThreshold) {
      this.open();
    }
  }

  /** What another process of the node decided. */
  adopt(event: BreakerEvent): void {
    if (event.kind === 'rate-limited') {
      this.rateLimitedUntil = Math.max(this.rateLimitedUntil, event.until);
    } else if (event.kind === 'open') {
      if (event.until <= this.options.clock.now()) return;
      this.lastFailure = { code: event.code, reason: event.reason };
      this.failures = Math.max(this.failures, this.options.failureThreshold);
      this.openUntil = Math.max(this.openUntil, event.until);
      if (this.current !== 'open') this.transition('open', true);
    } else if (this.current !== 'closed') {
      this.failures = 0;
      this.cooldownMs = this.options.cooldownMs;
      this.transition('closed', true);
    }
  }

  private open(): void {
    this.openUntil = this.options.clock.now() + this.cooldownMs;
    this.transition('open');
    const code = this.lastFailure?.code === 'UPSTREAM_TIMEOUT' ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_UNREACHABLE';
    this.options.share?.({ host: this.options.host, kind: 'open', until: this.openUntil, code, reason: this.lastFailure?.reason ?? 'unknown' });
  }

  private transition(state: CircuitState, remote = false): void {
    this.current = state;
    this.options.onStateChange?.(state, remote);
  }

  /** 504 when the primary was timing out, 502 otherwise; the detail names the breaker. */
  private refusal(waitMs: number): UpstreamError {
    const last = this.lastFailure;
    const code = last?.code === 'UPSTREAM_TIMEOUT' ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_UNREACHABLE';
    const next = waitMs > 0 ? `next probe in ${Math.ceil(waitMs / 1000)}s` : 'a probe is in flight';
    const reason = `circuit breaker open for ${this.options.host} after ${this.failures} consecutive failures (last: ${last?.reason ?? 'unknown'}); ${next}`;
    return new UpstreamError(code, `${this.options.host}: ${reason}`, { reason });
  }
}

/** A BreakerEvent from another process, checked field by field; undefined when it is not one. */
export function parseBreakerEvent(value: unknown): BreakerEvent | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.host !== 'string') return undefined;
  if (v.kind === 'closed') return { host: v.host, kind: 'closed' };
  if (typeof v.until !== 'number' || !Number.isFinite(v.until)) return undefined;
  if (v.kind === 'rate-limited') return { host: v.host, kind: 'rate-limited', until: v.until };
  if (v.kind === 'open' && (v.code === 'UPSTREAM_TIMEOUT' || v.code === 'UPSTREAM_UNREACHABLE') && typeof v.reason === 'string') {
    return { host: v.host, kind: 'open', until: v.until, code: v.code, reason: v.reason };
  }
  return undefined;
}
