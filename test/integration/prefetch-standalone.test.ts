/**
 * Prefetch jobs on a standalone node (no etcd, no Redis): the node is its own
 * leader, keeps its run records in memory and warms through its own workers
 * on loopback with the node-local secret. A real distribution registry is the
 * primary, behind a fault proxy that can slow blob bodies down.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { makeImage, makeLayer, pushImage, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';
import { waitFor } from '../support/wait.ts';

const adminToken = 'prefetch-standalone-admin-token';
const auth = { authorization: `Bearer ${adminToken}` };
const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let proxy: FaultProxy;
let node: OutpostNode;
const images = new Map<string, Image>();

beforeAll(async () => {
  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  proxy = await startFaultProxy({ target: registry.url });
  cleanup.add(() => proxy.stop());
  for (const ref of ['solo/a:v1', 'solo/b:v1', 'solo/b:v2-rc1']) {
    const [repo, tag] = ref.split(':') as [string, string];
    const image = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 300_000 })] });
    await pushImage(registry.url, repo, tag, image);
    images.set(ref, image);
  }
  registry.clearRequests();
  const dir = await makeTempDir('prefetch-standalone');
  cleanup.add(() => removeTempDir(dir));
  const configFile = join(dir, 'outpost.json');
  await writeFile(configFile, JSON.stringify({ prefetch: [{ name: 'solo', schedule: '0 0 1 1 *', images: ['solo/*', '-*:*-rc*'], runOnStart: true, requestsPerSecond: 100 }] }));
  node = await startOutpost({ upstreamUrl: proxy.url, workers: 2, env: { OUTPOST_CONFIG: configFile, OUTPOST_ADMIN_TOKEN: adminToken } });
  cleanup.add(() => node.dispose());
}, 60_000);
afterAll(() => cleanup.run());

interface JobStatus {
  name: string;
  lastRun?: { runId: string; result: string; counts: { images: number; warmed: number; failed: number } };
}

async function solo(): Promise<JobStatus> {
  const res = await fetch(`${node.url}/api/v0/prefetch/jobs`, { headers: auth, signal: AbortSignal.timeout(10_000) });
  return ((await res.json()) as { jobs: JobStatus[] }).jobs[0]!;
}

describe('prefetch jobs on a standalone node', () => {
  it('runs a runOnStart job through its own workers: the selected images, each blob once', async () => {
    await waitFor(async () => (await solo()).lastRun?.result === 'succeeded', { what: 'the runOnStart run to succeed', timeoutMs: 60_000, intervalMs: 200 });
    expect((await solo()).lastRun?.counts).toMatchObject({ images: 2, warmed: 2, failed: 0 });
    await registry.flushLog();
    for (const ref of ['solo/a:v1', 'solo/b:v1']) {
      for (const blob of images.get(ref)!.blobs) expect(registry.countRequests({ method: 'GET', kind: 'blob', pathIncludes: blob.digest }), ref).toBe(1);
    }
    for (const blob of images.get('solo/b:v2-rc1')!.blobs) expect(registry.countRequests({ method: 'GET', kind: 'blob', pathIncludes: blob.digest })).toBe(0);
    const metrics = await (await fetch(`${node.url}/metrics`)).text();
    expect(metrics).toMatch(/^outpost_prefetch_runs_total\{job="solo",result="succeeded"\} 1$/m);
    expect(metrics).toMatch(/^outpost_prefetch_images_total\{job="solo",result="warmed"\} 2$/m);
    // The listing's requests, sent by the cluster primary: _catalog (one page) and the tags of solo/a and solo/b.
    expect(metrics).toMatch(/^outpost_upstream_requests_total\{operation="list_page",outcome="ok"\} 3$/m);
  }, 90_000);

  it('runs a job on request (202 with its run id) and refuses a second run while it is in progress (409)', async () => {
    // Everything is cached now; purge so the new run has work, and slow the primary so it is observably in progress.
    expect((await fetch(`${node.url}/api/v0/cache/purge`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ all: true }) })).status).toBe(200);
    proxy.setFault({ mode: 'slowBlob', bytesPerSecond: 100_000 });
    const first = await fetch(`${node.url}/api/v0/prefetch/jobs/solo/run`, { method: 'POST', headers: auth });
    expect(first.status).toBe(202);
    const { runId } = (await first.json()) as { runId: string };
    const second = await fetch(`${node.url}/api/v0/prefetch/jobs/solo/run`, { method: 'POST', headers: auth });
    expect(second.status).toBe(409);
    expect(((await second.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('RUN_IN_PROGRESS');
    await waitFor(async () => (await solo()).lastRun?.result === 'succeeded', { what: 'the requested run to succeed', timeoutMs: 60_000, intervalMs: 200 });
    proxy.clearFaults();
    expect((await solo()).lastRun?.runId).toBe(runId);
  }, 90_000);
});

describe("a prefetch job's listing and the node's circuit breaker", () => {
  const host = (): string => new URL(proxy.url).host;

  /** A node whose breaker opens at the first outage and stays open a minute, with a job that lists `solo/*`. */
  async function startBreakerNode(): Promise<{ node: OutpostNode; lastRun(): Promise<JobStatus['lastRun']> }> {
    const dir = await makeTempDir('prefetch-breaker');
    cleanup.add(() => removeTempDir(dir));
    const configFile = join(dir, 'outpost.json');
    await writeFile(configFile, JSON.stringify({ prefetch: [{ name: 'down', schedule: '0 0 1 1 *', images: ['solo/*'] }] }));
    const breakerNode = await startOutpost({
      upstreamUrl: proxy.url,
      workers: 2,
      env: { OUTPOST_CONFIG: configFile, OUTPOST_ADMIN_TOKEN: adminToken, OUTPOST_UPSTREAM_FAILURE_THRESHOLD: '1', OUTPOST_UPSTREAM_COOLDOWN: '60s', OUTPOST_UPSTREAM_RETRIES: '0' },
    });
    cleanup.add(() => breakerNode.dispose());
    const lastRun = async () => {
      const res = await fetch(`${breakerNode.url}/api/v0/prefetch/jobs`, { headers: auth, signal: AbortSignal.timeout(10_000) });
      return ((await res.json()) as { jobs: JobStatus[] }).jobs[0]?.lastRun;
    };
    return { node: breakerNode, lastRun };
  }

  async function runAndWaitForFailure(target: { node: OutpostNode; lastRun(): Promise<JobStatus['lastRun']> }): Promise<void> {
    const run = await fetch(`${target.node.url}/api/v0/prefetch/jobs/down/run`, { method: 'POST', headers: auth });
    expect(run.status).toBe(202);
    await waitFor(async () => (await target.lastRun())?.result === 'failed', { what: 'the run to fail', timeoutMs: 30_000, intervalMs: 100 });
  }

  it('opens the breaker every worker uses when the listing finds the primary failing, and /health says so', async () => {
    const target = await startBreakerNode();
    proxy.setFault({ mode: 'status', status: 503 });
    try {
      await runAndWaitForFailure(target);
      // The cluster primary's breaker opened and told the workers: whichever answers, /health is degraded and names it.
      for (let i = 0; i < 4; i++) {
        const health = (await (await fetch(`${target.node.url}/health`, { signal: AbortSignal.timeout(10_000) })).json()) as { checks: Record<string, { status: string; detail?: string }> };
        expect(health.checks['circuit_breakers']).toEqual({ status: 'degraded', detail: `circuit breaker ${host()}: open; serving from cache` });
        expect(health.checks['primary']?.status).toBe('degraded');
      }
      // A client's pull is refused at once by its worker's breaker, without a request to the primary.
      const before = proxy.countRequests();
      const pull = await fetch(`${target.node.url}/v2/solo/a/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' }, signal: AbortSignal.timeout(10_000) });
      expect(pull.status).toBe(502);
      expect(await pull.text()).toContain(`circuit breaker open for ${host()}`);
      expect(proxy.countRequests()).toBe(before);
      const metrics = await (await fetch(`${target.node.url}/metrics`)).text();
      expect(metrics).toContain(`outpost_upstream_circuit_state{upstream="${host()}"} 2`);
      expect(metrics).toMatch(/^outpost_upstream_requests_total\{operation="list_page",outcome="UPSTREAM_SERVER_ERROR"\} 1$/m);
    } finally {
      proxy.clearFaults();
    }
  }, 90_000);

  it("refuses the listing without a request once a worker's breaker opened", async () => {
    const target = await startBreakerNode();
    proxy.setFault({ mode: 'status', status: 503 });
    try {
      const pull = await fetch(`${target.node.url}/v2/solo/a/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' }, signal: AbortSignal.timeout(10_000) });
      expect(pull.status).toBe(502);
      // Relayed to the cluster primary too: its listing never reaches the primary.
      const metricsText = async (): Promise<string> => (await fetch(`${target.node.url}/metrics`)).text();
      await waitFor(async () => (await metricsText()).includes(`outpost_upstream_circuit_state{upstream="${host()}"} 2`), { what: 'the breaker open' });
      proxy.clearRequests();
      await runAndWaitForFailure(target);
      expect(proxy.countRequests()).toBe(0);
      expect(await metricsText()).not.toContain('operation="list_page"');
    } finally {
      proxy.clearFaults();
    }
  }, 90_000);
});
