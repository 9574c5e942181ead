/**
 * Wires what protects one primary (src/upstream/circuit-breaker.ts,
 * protected-upstream.ts) to config, metrics, logs and the other workers.
 * One per primary per process: failures are counted, slots capped and 404s
 * remembered per worker (and in the cluster primary, for its prefetch
 * listings); a breaker that opens or closes, and a 429's Retry-After, are
 * shared with every process of the node through `channel`.
 */
import type { Clock, Logger, Upstream } from '../cache/ports.ts';
import type { UpstreamProtectionConfig } from '../config/types.ts';
import type { BreakerMetrics } from '../observability/metrics.ts';
import { CircuitBreaker, type BreakerChannel, type CircuitState } from '../upstream/circuit-breaker.ts';
import { ConcurrencyCap, NotFoundCache, protectListing, protectUpstream } from '../upstream/protected-upstream.ts';
import type { RegistryListing } from '../upstream/registry-client.ts';

const stateValue: Record<CircuitState, number> = { closed: 0, 'half-open': 1, open: 2 };

export interface UpstreamProtection {
  readonly breaker: CircuitBreaker;
  /** `rememberNotFound`: the view with Outpost's own credentials (404s of a client's view are never shared). */
  protect(upstream: Upstream, rememberNotFound: boolean): Upstream;
  /** The paged listings prefetch jobs read, through the same breaker and cap. */
  protectListing(listing: RegistryListing): RegistryListing;
}

export function upstreamProtection(host: string, config: UpstreamProtectionConfig, deps: { clock: Clock; metrics: BreakerMetrics; logger: Logger; channel?: BreakerChannel | undefined }): UpstreamProtection {
  const { clock, metrics, logger, channel } = deps;
  metrics.circuitState.set({ upstream: host }, 0);
  const breaker = new CircuitBreaker({
    host,
    clock,
    failureThreshold: config.failureThreshold,
    cooldownMs: config.cooldownMs,
    ...(channel !== undefined ? { share: (event) => channel.publish(event) } : {}),
    onStateChange: (state, remote) => {
      metrics.circuitState.set({ upstream: host }, stateValue[state]);
      if (remote) return; // the worker that decided counts and logs it
      if (state === 'open') {
        metrics.circuitOpens.inc({ upstream: host });
        logger.warn({ upstream: host }, 'circuit breaker open: requests to this primary fail at once until a probe succeeds');
      } else if (state === 'closed') {
        logger.info({ upstream: host }, 'circuit breaker closed: the primary answered a probe');
      }
    },
  });
  channel?.subscribe((event) => {
    if (event.host === host) breaker.adopt(event);
  });
  const cap = new ConcurrencyCap(host, { maxConcurrent: config.maxConcurrent, maxQueued: config.maxQueued, queueTimeoutMs: config.queueTimeoutMs });
  const notFound = new NotFoundCache(config.notFoundTtlMs, clock);
  return {
    breaker,
    protect: (upstream, rememberNotFound) => protectUpstream(upstream, { breaker, cap, ...(rememberNotFound ? { notFound } : {}) }),
    protectListing: (listing) => protectListing(host, listing, { breaker, cap }),
  };
}
