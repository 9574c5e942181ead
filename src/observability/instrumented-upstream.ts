/**
 * A decorator over the Upstream port that measures every call: latency to
 * headers, outcome by code, and the time attributed to the current request
 * (for the access log). It also remembers whether the primary answered
 * lately, which /health reports as "degraded".
 */
import type { Upstream } from '../cache/ports.ts';
import { isUpstreamError, isUpstreamOutage } from '../cache/ports.ts';
import type { WorkerMetrics } from './metrics.ts';
import { requestContext } from './request-context.ts';

export interface UpstreamHealth {
  /** The last outage error seen, if no success came after it. */
  lastOutage(): { code: string; at: number } | undefined;
}

export function instrumentUpstream(upstream: Upstream, metrics: WorkerMetrics): Upstream & UpstreamHealth {
  let outage: { code: string; at: number } | undefined;
  const timed = <A extends unknown[], R>(operation: string, call: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const started = performance.now();
      try {
        const result = await call(...args);
        metrics.upstreamRequests.inc({ operation, outcome: 'ok' });
        outage = undefined;
        return result;
      } catch (err) {
        const code = isUpstreamError(err) ? err.code : 'UNKNOWN';
        metrics.upstreamRequests.inc({ operation, outcome: code });
        metrics.upstreamErrors.inc({ code });
        if (isUpstreamOutage(err)) outage = { code, at: Date.now() };
        else if (isUpstreamError(err) && err.code !== 'UPSTREAM_ABORTED') outage = undefined;
        throw err;
      } finally {
        const seconds = (performance.now() - started) / 1000;
        metrics.upstreamDuration.observe({ operation }, seconds);
        const ctx = requestContext.getStore();
        if (ctx) ctx.upstreamMs += seconds * 1000;
      }
    };
  return {
    host: upstream.host,
    headManifest: timed('head_manifest', upstream.headManifest.bind(upstream)),
    getManifest: timed('get_manifest', upstream.getManifest.bind(upstream)),
    headBlob: timed('head_blob', upstream.headBlob.bind(upstream)),
    getBlob: timed('get_blob', upstream.getBlob.bind(upstream)),
    listTags: timed('list_tags', upstream.listTags.bind(upstream)),
    getReferrers: timed('get_referrers', upstream.getReferrers.bind(upstream)),
    close: () => upstream.close(),
    lastOutage: () => outage,
  };
}
