/**
 * The cluster primary's requests to primaries (prefetch jobs listing
 * catalogs and tags) counted like the workers' requests, and merged with
 * them into the node's series.
 */
import { describe, expect, it } from 'vitest';
import { UpstreamError } from '../../../src/cache/ports.ts';
import { instrumentListing } from '../../../src/observability/instrumented-upstream.ts';
import { nodeMetrics, primaryMetrics, workerMetrics } from '../../../src/observability/metrics.ts';
import type { RegistryListing } from '../../../src/upstream/registry-client.ts';

const never = new AbortController().signal;

describe('instrumentListing', () => {
  it('counts every page by outcome, errors by code, and times them', async () => {
    const metrics = primaryMetrics();
    let answers = 0;
    const listing: RegistryListing = {
      async page() {
        answers += 1;
        if (answers === 3) throw new UpstreamError('UPSTREAM_SERVER_ERROR', 'GET _catalog: HTTP 503', { status: 503 });
        return { items: ['a'], next: undefined };
      },
    };
    const counted = instrumentListing('registry.test', listing, { metrics });
    await counted.page('repositories', '', undefined, 100, never);
    await counted.page('tags', 'a', undefined, 100, never);
    await expect(counted.page('repositories', '', undefined, 100, never)).rejects.toMatchObject({ code: 'UPSTREAM_SERVER_ERROR' });

    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^outpost_upstream_requests_total\{operation="list_page",outcome="ok"\} 2$/m);
    expect(text).toMatch(/^outpost_upstream_requests_total\{operation="list_page",outcome="UPSTREAM_SERVER_ERROR"\} 1$/m);
    expect(text).toMatch(/^outpost_upstream_errors_total\{code="UPSTREAM_SERVER_ERROR"\} 1$/m);
    expect(text).toMatch(/^outpost_upstream_request_duration_seconds_count\{operation="list_page"\} 3$/m);
  });

  it('adds up with the workers’ requests in the node’s metrics, one family per name', async () => {
    const primary = primaryMetrics();
    const worker = workerMetrics();
    primary.upstreamRequests.inc({ operation: 'list_page', outcome: 'ok' }, 4);
    worker.upstreamRequests.inc({ operation: 'get_blob', outcome: 'ok' }, 7);
    worker.upstreamRequests.inc({ operation: 'list_page', outcome: 'ok' }, 1);
    const text = await nodeMetrics([await primary.registry.getMetricsAsJSON(), await worker.registry.getMetricsAsJSON()]).metrics();
    expect(text.match(/^# TYPE outpost_upstream_requests_total counter$/gm)).toHaveLength(1);
    expect(text).toMatch(/^outpost_upstream_requests_total\{operation="list_page",outcome="ok"\} 5$/m);
    expect(text).toMatch(/^outpost_upstream_requests_total\{operation="get_blob",outcome="ok"\} 7$/m);
  });
});
