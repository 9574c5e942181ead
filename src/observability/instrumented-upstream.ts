/**
 * A decorator over the Upstream port (and over the paged listings prefetch
 * jobs read, `list_page`) that measures every call: latency to headers and
 * outcome by code (the time each request waited is added up by
 * request-upstream-time.ts). It is the one place a failed upstream call is
 * counted in `outpost_upstream_errors_total`, once per call (retries are
 * inside the call), and it reports outages and recoveries to the host-wide
 * upstream status that /health shows (a worker's, or the cluster primary's).
 *
 * Not errors: UPSTREAM_NOT_FOUND (a 404 is an answer: the primary is up and
 * has no such thing) and UPSTREAM_ABORTED (our own caller gave up, e.g. a
 * client went away). Both are still counted in
 * `outpost_upstream_requests_total` under their outcome.
 */
import type { Upstream, UpstreamErrorCode } from '../cache/ports.ts';
import { isUpstreamError, isUpstreamOutage } from '../cache/ports.ts';
import type { RegistryListing } from '../upstream/registry-client.ts';
import type { UpstreamCallMetrics } from './metrics.ts';
import type { UpstreamStatus } from './upstream-status.ts';

const notErrors: ReadonlySet<UpstreamErrorCode> = new Set(['UPSTREAM_NOT_FOUND', 'UPSTREAM_ABORTED']);

export interface InstrumentUpstreamDeps {
  metrics: UpstreamCallMetrics;
  /** The host-wide upstream status /health shows: a worker's reports, or the cluster primary's board (its prefetch listings). */
  status?: UpstreamStatus;
}

/** `call`, counted and timed as `operation` of the primary `host`. */
function timed<A extends unknown[], R>(host: string, operation: string, call: (...args: A) => Promise<R>, { metrics, status }: InstrumentUpstreamDeps) {
  return async (...args: A): Promise<R> => {
    const started = performance.now();
    try {
      const result = await call(...args);
      metrics.upstreamRequests.inc({ operation, outcome: 'ok' });
      status?.succeeded(host);
      return result;
    } catch (err) {
      const code = isUpstreamError(err) ? err.code : 'UNKNOWN';
      metrics.upstreamRequests.inc({ operation, outcome: code });
      if (!notErrors.has(code as UpstreamErrorCode)) metrics.upstreamErrors.inc({ code });
      if (isUpstreamOutage(err)) status?.failed(host, code, (isUpstreamError(err) ? err.reason : undefined) ?? code);
      else if (isUpstreamError(err) && err.code !== 'UPSTREAM_ABORTED') status?.succeeded(host); // it answered
      throw err;
    } finally {
      metrics.upstreamDuration.observe({ operation }, (performance.now() - started) / 1000);
    }
  };
}

export function instrumentUpstream(upstream: Upstream, deps: InstrumentUpstreamDeps): Upstream {
  const op = <A extends unknown[], R>(operation: string, call: (...args: A) => Promise<R>) => timed(upstream.host, operation, call, deps);
  return {
    host: upstream.host,
    headManifest: op('head_manifest', upstream.headManifest.bind(upstream)),
    getManifest: op('get_manifest', upstream.getManifest.bind(upstream)),
    headBlob: op('head_blob', upstream.headBlob.bind(upstream)),
    getBlob: op('get_blob', upstream.getBlob.bind(upstream)),
    listTags: op('list_tags', upstream.listTags.bind(upstream)),
    getReferrers: op('get_referrers', upstream.getReferrers.bind(upstream)),
    close: () => upstream.close(),
  };
}

/** A primary's paged listings (prefetch jobs: `_catalog` and tag-list pages), each page counted as `list_page`. */
export function instrumentListing(host: string, listing: RegistryListing, deps: InstrumentUpstreamDeps): RegistryListing {
  return { page: timed(host, 'list_page', listing.page.bind(listing), deps) };
}
