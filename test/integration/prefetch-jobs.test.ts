/**
 * Prefetch jobs on a replica set: two real Outpost nodes (two workers each)
 * with a real etcd, a real Redis and a real distribution registry as the
 * primary, behind a fault-injecting proxy. The WAN is counted in the
 * registry's own access log.
 *
 * - A `runOnStart` job with the issue's patterns warms exactly the images
 *   they select, once for the whole set (each blob GET once at the primary),
 *   on both replicas; pulls through either replica then cost no blob GET.
 * - Scheduled retention (every minute): the leader has both replicas sweep;
 *   a repository rule of 1 s removes what only `old/*` references, while
 *   pinned images and repositories no rule covers (retention 0) stay.
 * - A run the leader dies in (kill -9, the primary slowed down so the run is
 *   observably in progress) is completed by the other replica, which becomes
 *   the leader, without fetching again what was done.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { startEtcd, type EtcdServer } from '../support/etcd.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { MEDIA_TYPES, makeImage, makeLayer, pushImage, sha256, type Image, type ImageBlob } from '../support/images.ts';
import type { OutpostNode } from '../support/outpost.ts';
import { startRedis, type RedisServer } from '../support/redis.ts';
import { startReplicas } from '../support/replica-set.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';
import { waitFor } from '../support/wait.ts';

const clusterName = 'prefetchjobs';
const secret = 'prefetch-jobs-test-secret-0123456789';
const adminToken = 'prefetch-jobs-admin-token';
const ids = ['n1', 'n2'] as const;
const accept = [MEDIA_TYPES.oci.manifest, MEDIA_TYPES.oci.index, MEDIA_TYPES.docker.manifest, MEDIA_TYPES.docker.index].join(', ');

const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let proxy: FaultProxy;
let etcd: EtcdServer;
let redis: RedisServer;
let etcdClient: Etcd3;
const nodes = new Map<string, OutpostNode>();
/** Every pushed image by `repo:tag`. */
const images = new Map<string, Image>();

const warmedByIssue = ['bars/app:v1', ...Array.from({ length: 7 }, (_, i) => `bars/small-${i}:v1`)];
const notWarmed = ['bars/app:v1-docker', 'bars/small-7:v1'];
const bulk = Array.from({ length: 6 }, (_, i) => `bulk/big-${i}:v1`);

async function push(ref: string, layerBytes: number[], format: 'oci' | 'docker' = 'oci'): Promise<void> {
  const [repo, tag] = ref.split(':') as [string, string];
  const image = makeImage({ mediaTypes: format, layers: layerBytes.map((sizeBytes) => makeLayer({ sizeBytes })) });
  await pushImage(registry.url, repo, tag, image);
  images.set(ref, image);
}

beforeAll(async () => {
  [registry, etcd, redis] = await Promise.all([startDistribution(), startEtcd(), startRedis()]);
  cleanup.add(() => registry.dispose());
  cleanup.add(() => etcd.dispose());
  cleanup.add(() => redis.dispose());
  proxy = await startFaultProxy({ target: registry.url });
  cleanup.add(() => proxy.stop());
  etcdClient = new Etcd3({ hosts: etcd.url });
  cleanup.add(() => etcdClient.close());
  await push('bars/app:v1', [300_000, 120_000]);
  await push('bars/app:v1-docker', [200_000], 'docker');
  for (let i = 0; i < 8; i++) await push(`bars/small-${i}:v1`, [20_000 + i * 1_000]);
  for (const ref of bulk) await push(ref, [400_000]);
  await push('old/a:v1', [50_000]);
  await push('old/pinned:v1', [60_000]);
  registry.clearRequests();

  const configDir = await makeTempDir('prefetch-config');
  cleanup.add(() => removeTempDir(configDir));
  const configFile = join(configDir, 'outpost.json');
  const never = '0 0 1 1 *';
  await writeFile(
    configFile,
    JSON.stringify({
      cache: { retentionSchedule: '* * * * *', retentionRules: [{ repositories: ['old/*'], unusedFor: '1s' }], pins: ['old/pinned:v1'] },
      prefetch: [
        { name: 'bars', schedule: never, images: ['bars/app:v*', 'bars/small-*:*', '-*:v1-docker', '-bars/small-7:*'], runOnStart: true, concurrency: 2, requestsPerSecond: 50 },
        { name: 'bulk', schedule: never, images: ['bulk/*:v1'], concurrency: 1, requestsPerSecond: 50 },
        { name: 'missing', schedule: never, images: ['nothere/app:v1'], requestsPerSecond: 50 },
      ],
    }),
  );
  const started = await startReplicas(
    ids,
    { upstreamUrl: proxy.url, etcdUrl: etcd.url, redisUrl: redis.url, cluster: clusterName, secret, adminToken, env: { OUTPOST_CONFIG: configFile } },
    cleanup.add,
  );
  for (const [id, node] of started) nodes.set(id, node);

}, 120_000);
afterAll(() => cleanup.run());

const node = (id: string): OutpostNode => nodes.get(id)!;
const auth = { authorization: `Bearer ${adminToken}` };

interface JobStatus {
  name: string;
  nextRunAt?: string;
  lastRun?: { runId: string; result: string; counts: { images: number; warmed: number; failed: number; skipped: number; blobs: number; bytes: number }; errors: string[] };
}

async function jobs(n: OutpostNode): Promise<JobStatus[]> {
  const res = await fetch(`${n.url}/api/v0/prefetch/jobs`, { headers: auth, signal: AbortSignal.timeout(10_000) });
  if (res.status !== 200) throw new Error(`jobs: HTTP ${res.status} ${await res.text()}`);
  return ((await res.json()) as { jobs: JobStatus[] }).jobs;
}

async function job(n: OutpostNode, name: string): Promise<JobStatus> {
  return (await jobs(n)).find((j) => j.name === name)!;
}

async function leader(n: OutpostNode): Promise<string | null> {
  const res = await fetch(`${n.url}/api/v0/meta/cluster_status`, { headers: auth, signal: AbortSignal.timeout(10_000) });
  return ((await res.json()) as { leader: string | null }).leader;
}

/** Blob GETs the primary answered for these blobs (its own access log). */
async function primaryBlobGets(blobs: readonly ImageBlob[]): Promise<number[]> {
  await registry.flushLog();
  return blobs.map((blob) => registry.countRequests({ method: 'GET', kind: 'blob', pathIncludes: blob.digest }));
}

const layersOf = (ref: string): ImageBlob[] => images.get(ref)!.blobs;

/** The tag's manifest, then every blob, each checked against its digest. */
async function pull(n: OutpostNode, ref: string): Promise<void> {
  const [repo, tag] = ref.split(':') as [string, string];
  const image = images.get(ref)!;
  const res = await fetch(`${n.url}/v2/${repo}/manifests/${tag}`, { headers: { accept }, signal: AbortSignal.timeout(30_000) });
  const manifest = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) throw new Error(`manifest: HTTP ${res.status} ${manifest.toString('utf8').slice(0, 300)}`);
  expect(sha256(manifest)).toBe(image.digest);
  for (const blob of image.blobs) {
    const b = await fetch(`${n.url}/v2/${repo}/blobs/${blob.digest}`, { signal: AbortSignal.timeout(30_000) });
    expect(b.status).toBe(200);
    expect(sha256(Buffer.from(await b.arrayBuffer()))).toBe(blob.digest);
  }
}

/** Whether a node's cache directory holds the blob (the disk store shards by digest). */
async function holds(n: OutpostNode, blob: ImageBlob): Promise<boolean> {
  const res = await fetch(`${n.url}/api/v0/cache/entries?limit=1000`, { headers: auth, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  return text.includes(blob.digest);
}

describe('prefetch jobs on a replica set', () => {
  it('warms exactly the images the runOnStart job selects, each blob from the primary once, on both replicas', async () => {
    await waitFor(async () => (await job(node('n1'), 'bars')).lastRun?.result === 'succeeded', {
      what: 'the runOnStart run of job bars to succeed',
      timeoutMs: 90_000,
      intervalMs: 250,
    });
    // The same from either replica.
    const [a, b] = await Promise.all(ids.map((id) => job(node(id), 'bars')));
    expect(b?.lastRun).toEqual(a?.lastRun);
    expect(a?.lastRun?.counts).toMatchObject({ images: 8, warmed: 8, failed: 0 });
    const warmedBlobs = warmedByIssue.flatMap(layersOf);
    expect(await primaryBlobGets(warmedBlobs)).toEqual(warmedBlobs.map(() => 1));
    expect(await primaryBlobGets(notWarmed.flatMap(layersOf))).toEqual(notWarmed.flatMap(layersOf).map(() => 0));
    for (const id of ids) {
      for (const blob of warmedBlobs) expect(await holds(node(id), blob), `${id} holds ${blob.digest}`).toBe(true);
    }
    const runs = (await Promise.all(ids.map((id) => fetch(`${node(id).url}/metrics`).then((r) => r.text()))))
      .join('\n')
      .split('\n')
      .filter((line) => line.startsWith('outpost_prefetch_runs_total{') && line.includes('job="bars"'));
    expect(runs.map((line) => Number(line.split(' ').at(-1))).reduce((x, y) => x + y, 0)).toBe(1); // once per cluster
    const finished = ids.flatMap((id) => node(id).logs()).find((l) => l.msg === 'prefetch run finished' && l.job === 'bars');
    console.info(`runOnStart run of bars: ${JSON.stringify(finished?.seconds)} s, ${warmedBlobs.length} blobs each fetched once, warm on ${ids.length} replicas`);
  }, 120_000);

  it('serves pulls of a warmed image through either replica without a blob GET upstream', async () => {
    registry.clearRequests();
    for (const id of ids) await pull(node(id), 'bars/app:v1');
    await registry.flushLog();
    expect(registry.countRequests({ method: 'GET', kind: 'blob' })).toBe(0);
  }, 60_000);

  it('lists the jobs with their next run and answers 404 for an unknown job', async () => {
    const list = await jobs(node('n2'));
    expect(list.map((j) => j.name)).toEqual(['bars', 'bulk', 'missing']);
    expect(list[1]?.nextRunAt).toBe('2027-01-01T00:00:00.000Z');
    const res = await fetch(`${node('n2').url}/api/v0/prefetch/jobs/nope/run`, { method: 'POST', headers: auth });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('JOB_UNKNOWN');
    expect((await fetch(`${node('n2').url}/api/v0/prefetch/jobs`)).status).toBe(401);
  });

  it('reports a job whose last run failed in cluster_status current_issues, on every replica', async () => {
    const res = await fetch(`${node('n1').url}/api/v0/prefetch/jobs/missing/run`, { method: 'POST', headers: auth });
    expect(res.status).toBe(202);
    await waitFor(async () => ['failed', 'partial'].includes((await job(node('n2'), 'missing')).lastRun?.result ?? ''), {
      what: 'the run of job missing to fail',
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    const last = (await job(node('n2'), 'missing')).lastRun!;
    expect(last.counts).toMatchObject({ images: 1, warmed: 0, failed: 1 });
    expect(last.errors[0]).toMatch(/nothere\/app:v1/);
    for (const id of ids) {
      const issues = async () => {
        const status = (await (await fetch(`${node(id).url}/api/v0/meta/cluster_status`, { headers: auth })).json()) as { current_issues: Array<{ critical: boolean; description: string }> };
        return status.current_issues.filter((i) => i.description.startsWith('prefetch job missing'));
      };
      // cluster_status reads the run records at most every 5 s.
      await waitFor(async () => (await issues()).length > 0, { what: `${id}'s cluster_status to name job missing`, timeoutMs: 10_000, intervalMs: 250 });
      expect(await issues()).toEqual([{ critical: false, description: expect.stringContaining(`last run ${last.runId} failed`) as string }]);
    }
  }, 60_000);

  it('sweeps retention on schedule on both replicas: a rule removes old/* content, pins and uncovered repositories stay', async () => {
    for (const id of ids) {
      await pull(node(id), 'old/a:v1');
      await pull(node(id), 'old/pinned:v1');
    }
    const swept = layersOf('old/a:v1');
    for (const id of ids) for (const blob of swept) expect(await holds(node(id), blob)).toBe(true);
    await waitFor(
      async () => {
        for (const id of ids) for (const blob of swept) if (await holds(node(id), blob)) return false;
        return true;
      },
      { what: 'the scheduled sweep to remove old/a on both replicas', timeoutMs: 90_000, intervalMs: 500 },
    );
    for (const id of ids) {
      const pins = await (await fetch(`${node(id).url}/api/v0/cache/pins`, { headers: auth })).text();
      for (const ref of ['old/pinned:v1', 'bars/app:v1']) {
        for (const blob of layersOf(ref)) expect(await holds(node(id), blob), `${id} keeps ${ref} ${blob.digest}; pins ${pins}`).toBe(true);
      }
    }
    const leaderId = (await leader(node('n1')))!;
    const sweepLines = node(leaderId).logs().filter((l) => l.msg === 'retention sweep done');
    expect(sweepLines.length).toBeGreaterThanOrEqual(1);
    expect(sweepLines.at(-1)).toMatchObject({ replicas: 2, failed: 0 });
    const other = ids.find((id) => id !== leaderId)!;
    expect(node(other).logs().filter((l) => l.msg === 'retention sweep done')).toEqual([]); // the leader's duty only
  }, 120_000);

  it('completes a run on the new leader after kill -9 of the leader, without fetching again what was done', async () => {
    const leaderId = (await leader(node('n1')))!;
    const followerId = ids.find((id) => id !== leaderId)!;
    // ~2 s per image: the run is observably in progress.
    proxy.setFault({ mode: 'slowBlob', bytesPerSecond: 200_000 }, { when: { pathIncludes: '/bulk/' } });
    registry.clearRequests();
    // Asked of the replica that does not lead: it goes to the leader through etcd.
    const res = await fetch(`${node(followerId).url}/api/v0/prefetch/jobs/bulk/run`, { method: 'POST', headers: auth });
    expect(res.status).toBe(202);
    const { runId } = (await res.json()) as { runId: string };
    const second = await fetch(`${node(followerId).url}/api/v0/prefetch/jobs/bulk/run`, { method: 'POST', headers: auth });
    await waitFor(async () => ((await job(node(followerId), 'bulk')).lastRun?.counts.warmed ?? 0) >= 2, {
      what: 'two images of the bulk run to be done',
      timeoutMs: 60_000,
      intervalMs: 100,
    });
    // Asked again at once: the same run (still pending, 202 with its id) or 409 once it started; never a second run.
    expect([202, 409]).toContain(second.status);
    if (second.status === 202) expect(((await second.json()) as { runId: string }).runId).toBe(runId);
    const doneKeys = await etcdClient.getAll().prefix(`${clusterName}/prefetch/runs/bulk/done/`).strings();
    const doneBefore = Object.values(doneKeys).map((v) => (JSON.parse(v) as { image: string }).image.replace(/^[^/]+\//, ''));
    expect(doneBefore.length).toBeGreaterThanOrEqual(2);
    await node(leaderId).crash();
    await waitFor(async () => (await leader(node(followerId))) === followerId, { what: `${followerId} to lead`, timeoutMs: 20_000, intervalMs: 200 });
    await waitFor(async () => (await job(node(followerId), 'bulk')).lastRun?.result === 'succeeded', {
      what: 'the bulk run to be completed by the new leader',
      timeoutMs: 90_000,
      intervalMs: 250,
    });
    proxy.clearFaults();
    const last = (await job(node(followerId), 'bulk')).lastRun!;
    expect(last.runId).toBe(runId);
    expect(last.counts).toMatchObject({ images: 6, warmed: 6, failed: 0 });
    // What was done before the crash was not fetched again; the rest was fetched (at most twice: the image in flight).
    for (const ref of doneBefore) expect(await primaryBlobGets(layersOf(ref)), ref).toEqual(layersOf(ref).map(() => 1));
    for (const ref of bulk) for (const gets of await primaryBlobGets(layersOf(ref))) expect(gets).toBeGreaterThanOrEqual(1);
    const refetched = (await Promise.all(bulk.map(async (ref) => ((await primaryBlobGets(layersOf(ref))).some((gets) => gets > 1) ? [ref] : [])))).flat();
    expect(refetched.length, `images fetched again: ${refetched.join(', ')}`).toBeLessThanOrEqual(1); // concurrency 1: at most the image in flight at the crash
    expect(node(followerId).logs().some((l) => l.msg === 'resuming a prefetch run another leader left in progress')).toBe(true);
    console.info(`kill -9 mid-run: ${doneBefore.length} of ${bulk.length} images done before the crash, fetched again: ${refetched.length === 0 ? 'none' : refetched.join(', ')}`);
  }, 180_000);
});
