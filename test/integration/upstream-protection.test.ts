/**
 * Upstream protection with a real distribution registry behind the fault
 * proxy: the circuit breaker on a dead (hung) primary and its half-open
 * recovery, a 429-answering primary with a warm cache, the 404 memory, and
 * the cap on concurrent upstream requests.
 *
 * One worker per node where counts matter (failures, the cap and the 404
 * memory are counted per worker); a 2-worker node shows a decision shared.
 */
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { makeImage, makeLayer, pushImage, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { pullOciDigests } from '../support/skopeo.ts';
import { waitFor } from '../support/wait.ts';

const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let proxy: FaultProxy;
let outpost: OutpostNode;
let image: Image;

function pullImage(): Promise<string[]> {
  return pullOciDigests(`${outpost.host}/team/app:v1`, { timeoutMs: 60_000 });
}

async function get(url: string, method: 'GET' | 'HEAD' = 'GET'): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const res = await request(url, { method });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

/** A sample of /metrics, e.g. `outpost_upstream_circuit_state{upstream="127.0.0.1:1234"}`. */
async function metric(node: OutpostNode, series: string): Promise<number | undefined> {
  const text = (await get(`${node.url}/metrics`)).body;
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function health(node: OutpostNode): Promise<{ status: number; body: { healthy: boolean; checks: Record<string, { status: string; detail?: string }> } }> {
  const res = await get(`${node.url}/health`);
  return { status: res.status, body: JSON.parse(res.body) };
}

beforeAll(async () => {
  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  proxy = await startFaultProxy({ target: registry.url });
  cleanup.add(() => proxy.stop());
  image = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 100_000, seed: 'protection' })] });
  await pushImage(registry.url, 'team/app', 'v1', image);
  // TTL 0: every tag request asks the primary, so each fault below is met head-on.
  outpost = await startOutpost({
    upstreamUrl: proxy.url,
    workers: 1,
    env: {
      OUTPOST_TAG_TTL: '0s',
      OUTPOST_TAG_REVALIDATE_TIMEOUT: '1s',
      OUTPOST_UPSTREAM_HEADERS_TIMEOUT: '1s',
      OUTPOST_UPSTREAM_FAILURE_THRESHOLD: '3',
      OUTPOST_UPSTREAM_COOLDOWN: '4s',
    },
  });
  cleanup.add(() => outpost.dispose());
  expect(await pullImage()).toEqual([image.digest]); // warm-up
}, 120_000);

afterEach(() => {
  proxy.clearFaults();
  proxy.releaseHung();
});

afterAll(() => cleanup.run());

describe('the circuit breaker', () => {
  it('opens on a dead primary: cached pulls cost it nothing, cold pulls fail at once; a probe closes it again', async () => {
    const state = `outpost_upstream_circuit_state{upstream="${proxy.host}"}`;
    expect(await metric(outpost, state)).toBe(0);
    proxy.setFault({ mode: 'hang' });
    for (let i = 0; i < 3; i++) {
      const cold = await get(`${outpost.url}/v2/team/cold${i}/manifests/v1`);
      expect(cold.status).toBe(504);
    }
    expect(await metric(outpost, state)).toBe(2);
    expect(await metric(outpost, `outpost_upstream_circuit_opens_total{upstream="${proxy.host}"}`)).toBe(1);
    const report = await health(outpost);
    expect(report.status).toBe(200);
    expect(report.body.healthy).toBe(true);
    expect(report.body.checks.circuit_breakers).toMatchObject({ status: 'degraded' });
    expect(report.body.checks.circuit_breakers!.detail).toContain('open');

    proxy.clearRequests();
    expect(await pullImage()).toEqual([image.digest]);
    expect(proxy.countRequests()).toBe(0);

    // Behaviour check, not a benchmark: the hung primary would hold each request for the 1 s headers timeout.
    const started = Date.now();
    const cold = await get(`${outpost.url}/v2/team/cold-again/manifests/v1`);
    const blob = await get(`${outpost.url}/v2/team/cold-again/blobs/sha256:${'7'.repeat(64)}`);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(cold.status).toBe(504);
    expect(blob.status).toBe(504);
    expect(JSON.parse(cold.body).errors[0]).toMatchObject({ code: 'UPSTREAM_TIMEOUT', detail: { cause: expect.stringContaining('circuit breaker open') } });
    expect(proxy.countRequests()).toBe(0);

    // The primary comes back: after the cool-down one probe goes through and closes the breaker.
    proxy.clearFaults();
    proxy.releaseHung();
    await waitFor(async () => (await get(`${outpost.url}/v2/team/app/manifests/v1`, 'HEAD')).headers['x-outpost-cache'] === 'revalidated', {
      what: 'a revalidation to reach the primary again',
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    expect(await metric(outpost, state)).toBe(0);
    expect((await health(outpost)).body.checks.circuit_breakers).toMatchObject({ status: 'ok' });
  }, 60_000);
});

describe('a primary that answers 429', () => {
  it('serves the warm cache, sends nothing upstream until Retry-After has passed, and answers 429 for what is not cached', async () => {
    proxy.setFault(
      { mode: 'status', status: 429, headers: { 'retry-after': '3', 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '0;w=21600' } },
      { when: { kind: 'manifest' } },
    );
    proxy.clearRequests();
    const started = Date.now();
    expect(await pullImage()).toEqual([image.digest]);
    expect(proxy.countRequests()).toBe(1);
    expect(await pullImage()).toEqual([image.digest]);
    const cold = await get(`${outpost.url}/v2/team/not-cached/manifests/v1`);
    expect(cold.status).toBe(429);
    expect(JSON.parse(cold.body).errors[0].code).toBe('TOOMANYREQUESTS');
    expect(Number(cold.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(cold.headers['retry-after'])).toBeLessThanOrEqual(3);
    expect(await metric(outpost, `outpost_upstream_ratelimit_limit{upstream="${proxy.host}"}`)).toBe(100);
    expect(await metric(outpost, `outpost_upstream_ratelimit_remaining{upstream="${proxy.host}"}`)).toBe(0);
    // Nothing more reaches the primary before Retry-After has passed; then the next revalidation does (and is answered).
    proxy.clearFaults();
    await waitFor(
      async () => {
        await get(`${outpost.url}/v2/team/app/manifests/v1`, 'HEAD');
        return proxy.countRequests() > 1;
      },
      { what: 'a request to reach the primary after Retry-After', timeoutMs: 15_000, intervalMs: 100 },
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(3_000);
  }, 60_000);
});

describe('the 404 memory', () => {
  it('asks the primary once about a name it does not have, however often clients ask', async () => {
    proxy.clearRequests();
    for (let i = 0; i < 10; i++) {
      const res = await get(`${outpost.url}/v2/team/random-name-4f9c/manifests/latest`);
      expect(res.status).toBe(404);
      expect(JSON.parse(res.body).errors[0].code).toBe('MANIFEST_UNKNOWN');
      const tags = await get(`${outpost.url}/v2/team/random-name-4f9c/tags/list`);
      expect(tags.status).toBe(404);
    }
    expect(proxy.countRequests({ kind: 'manifest', pathIncludes: 'random-name-4f9c' })).toBe(1);
    expect(proxy.countRequests({ kind: 'tags', pathIncludes: 'random-name-4f9c' })).toBe(1);
  });
});

describe('the cap on concurrent upstream requests', () => {
  it('queues one request behind the cap (504 when no slot comes in time) and refuses the next at once (503)', async () => {
    const capped = await startOutpost({
      upstreamUrl: proxy.url,
      workers: 1,
      env: {
        OUTPOST_UPSTREAM_HEADERS_TIMEOUT: '10s',
        OUTPOST_UPSTREAM_MAX_CONCURRENT: '1',
        OUTPOST_UPSTREAM_MAX_QUEUED: '1',
        OUTPOST_UPSTREAM_QUEUE_TIMEOUT: '1s',
      },
    });
    cleanup.add(() => capped.dispose());
    proxy.setFault({ mode: 'hang' });
    proxy.clearRequests();
    const holding = get(`${capped.url}/v2/team/held/manifests/v1`);
    await waitFor(() => proxy.countRequests() === 1, { what: 'the first request to reach the primary' });
    const queued = get(`${capped.url}/v2/team/queued/manifests/v1`);
    // The queued request is in before the third: wait until the node has answered something else meanwhile.
    await get(`${capped.url}/v2/`);
    const refused = await get(`${capped.url}/v2/team/refused/manifests/v1`);
    expect(refused.status).toBe(503);
    expect(JSON.parse(refused.body).errors[0].code).toBe('UNAVAILABLE');
    const late = await queued;
    expect(late.status).toBe(504);
    expect(proxy.countRequests()).toBe(1);
    proxy.releaseHung();
    await holding;
  }, 60_000);
});

describe('decisions shared by the workers of a node', () => {
  it('keeps every worker away from a primary that answered one of them 429', async () => {
    const node = await startOutpost({ upstreamUrl: proxy.url, workers: 2 });
    cleanup.add(() => node.dispose());
    await waitFor(async () => (await health(node)).body.checks.workers?.detail === '2 of 2 workers running', { what: 'both workers to be up' });
    proxy.setFault({ mode: 'status', status: 429, headers: { 'retry-after': '60' } }, { when: { kind: 'manifest' } });
    proxy.clearRequests();
    // Fresh connections: the cluster spreads them over both workers.
    const first = await request(`${node.url}/v2/team/shared-429/manifests/v1`, { reset: true });
    expect(first.statusCode).toBe(429);
    await first.body.dump();
    // Fresh connections until both workers have answered (the cluster hands connections out; under load one worker may take several in a row).
    const pids = new Set<unknown>();
    let sent = 0;
    await waitFor(
      async () => {
        const res = await request(`${node.url}/v2/team/shared-429-${sent}/manifests/v1`, { reset: true });
        sent += 1;
        expect(res.statusCode).toBe(429);
        expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
        await res.body.dump();
        for (const line of node.logs()) if (line.msg === 'request' && String(line.repository).startsWith('team/shared-429')) pids.add(line.pid);
        return pids.size === 2;
      },
      { what: 'both workers to answer a request', timeoutMs: 20_000, intervalMs: 10 },
    );
    // The other worker may have asked once in the few milliseconds before the decision reached it over IPC; once
    // both have answered, the decision is shared: more requests, on either worker, never reach the primary.
    const shared = proxy.countRequests();
    expect(shared).toBeLessThanOrEqual(2);
    for (let i = 0; i < 10; i++) {
      const res = await request(`${node.url}/v2/team/shared-429-after-${i}/manifests/v1`, { reset: true });
      expect(res.statusCode).toBe(429);
      await res.body.dump();
    }
    expect(proxy.countRequests()).toBe(shared);
  }, 60_000);
});
