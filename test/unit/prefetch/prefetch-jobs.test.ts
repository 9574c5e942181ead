import { describe, expect, it } from 'vitest';
import type { PrefetchJobConfig } from '../../../src/config/types.ts';
import { isRegistryError } from '../../../src/registry/errors.ts';
import { PrefetchJobs, type PrefetchObserver } from '../../../src/prefetch/prefetch-jobs.ts';
import type { ImageRef, ReplicaTarget } from '../../../src/prefetch/ports.ts';
import { MemoryRunStore, type MemoryRunRecords } from '../../../src/prefetch/run-store.ts';
import { FakeImageSource, FakeTime, FakeWarmClient, gate, image, job, okResult, recordingLogger, replicas, settle } from './fakes.ts';

const smalls = (n: number): ImageRef[] => Array.from({ length: n }, (_, i) => image(`bars/small-${i}`));

interface NodeOptions {
  time: FakeTime;
  records: MemoryRunRecords;
  leading: () => boolean;
  jobs?: PrefetchJobConfig[];
  source?: FakeImageSource;
  client?: FakeWarmClient;
  live?: ReplicaTarget[];
  clusterStartedAt?: number;
  maxImages?: number;
}

function node(options: NodeOptions) {
  const logger = recordingLogger();
  const observed: string[] = [];
  const observer: PrefetchObserver = {
    runFinished: (j, result, seconds) => void observed.push(`run ${j} ${result} ${seconds}s`),
    imageDone: (j, result, bytes) => void observed.push(`image ${j} ${result} ${bytes}`),
  };
  const client = options.client ?? new FakeWarmClient(options.time);
  const source = options.source ?? new FakeImageSource(smalls(3));
  const store = new MemoryRunStore(options.leading, options.records);
  const jobs = new PrefetchJobs({
    jobs: options.jobs ?? [job({ runOnStart: true, replicas: 'one', concurrency: 1 })],
    store,
    source,
    client,
    replicas: async () => options.live ?? replicas('n1'),
    isLeader: options.leading,
    clusterStartedAt: async () => options.clusterStartedAt ?? options.time.now() - 1_000,
    clock: options.time,
    timers: options.time,
    sleep: options.time.sleep,
    logger,
    observer,
    pollMs: 1_000,
    ...(options.maxImages === undefined ? {} : { maxImages: options.maxImages }),
  });
  return { jobs, logger, observed, client, source, store };
}

const records = (): MemoryRunRecords => ({ runs: new Map(), requests: new Map() });

describe('PrefetchJobs', () => {
  it('standalone: a runOnStart job warms its images at start; status, metrics and log lines follow', async () => {
    const time = new FakeTime();
    const n = node({ time, records: records(), leading: () => true });
    n.jobs.start();
    await time.advance(1_000);
    expect(n.client.calls.map((c) => c.image)).toEqual(smalls(3).map((r) => `registry.test/${r.repository}:v1`));
    const [status] = await n.jobs.list();
    expect(status).toMatchObject({
      name: 'nightly',
      schedule: '0 3 * * *',
      timezone: 'UTC',
      nextRunAt: '2026-11-30T03:00:00.000Z',
      lastRun: { result: 'succeeded', counts: { images: 3, warmed: 3, skipped: 0, failed: 0, blobs: 6, bytes: 300 }, errors: [] },
    });
    expect(n.observed).toEqual(['image nightly warmed 100', 'image nightly warmed 100', 'image nightly warmed 100', 'run nightly succeeded 0s']);
    expect(n.logger.lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['prefetch run started', 'prefetch run finished']));
    expect(await n.jobs.issues()).toEqual([]);
    await n.jobs.stop();
  });

  it('runs nothing before start(), even when told it leads (the workers a run warms through may not listen yet)', async () => {
    const time = new FakeTime();
    const shared = records();
    // A run a previous leader left in progress: the first thing a leader resumes.
    const left = new MemoryRunStore(() => true, shared);
    await left.begin({ job: 'nightly', runId: 'left', dueKey: 'manual:left', reason: 'manual', startedAt: time.now() - 1, finishedAt: undefined, state: 'running', error: undefined });
    await left.setImages('nightly', 'left', smalls(2));
    const n = node({ time, records: shared, leading: () => true, jobs: [job()] });
    n.jobs.leadershipChanged(true);
    await time.advance(5_000);
    expect(n.client.calls).toHaveLength(0);
    n.jobs.start();
    await time.advance(1_000);
    expect(n.client.calls).toHaveLength(2);
    expect((await n.jobs.list())[0]?.lastRun).toMatchObject({ runId: 'left', result: 'succeeded' });
    await n.jobs.stop();
  });

  it('runs on the cron instant, only on the leader', async () => {
    const time = new FakeTime(Date.parse('2026-11-30T02:59:00Z'));
    const shared = records();
    const leader = node({ time, records: shared, leading: () => true, jobs: [job({ concurrency: 1, replicas: 'one' })] });
    const follower = node({ time, records: shared, leading: () => false, jobs: [job({ concurrency: 1, replicas: 'one' })] });
    leader.jobs.start();
    follower.jobs.start();
    await time.advance(2 * 60_000);
    expect(leader.client.calls).toHaveLength(3);
    expect(follower.client.calls).toHaveLength(0);
    const [status] = await follower.jobs.list(); // the same from any replica
    expect(status?.lastRun).toMatchObject({ result: 'succeeded', startedAt: '2026-11-30T03:00:00.000Z' });
    expect(status?.nextRunAt).toBe('2026-12-01T03:00:00.000Z');
    await Promise.all([leader.jobs.stop(), follower.jobs.stop()]);
  });

  it('a leader change mid-run: the new leader finishes the run without warming again what was done', async () => {
    const time = new FakeTime();
    const shared = records();
    let leader: 'a' | 'b' = 'a';
    const hold = gate();
    const slowClient = new FakeWarmClient(time, async (_r, ref) => {
      if (ref.repository === 'bars/small-2') await hold.promise; // the third image hangs on a
      return okResult(ref);
    });
    const a = node({ time, records: shared, leading: () => leader === 'a', client: slowClient, source: new FakeImageSource(smalls(5)) });
    const b = node({ time, records: shared, leading: () => leader === 'b', source: new FakeImageSource(smalls(5)) });
    a.jobs.start();
    b.jobs.start();
    await time.advance(500);
    expect(slowClient.calls.map((c) => c.image.split('/')[2])).toEqual(['small-0:v1', 'small-1:v1', 'small-2:v1']);
    const runId = (await b.jobs.list())[0]!.lastRun!.runId;
    // a is deposed (its fence closes) and b leads.
    leader = 'b';
    a.jobs.leadershipChanged(false);
    b.jobs.leadershipChanged(true);
    await time.advance(2_000);
    expect(b.source.expansions).toBe(0); // the image list comes from the record
    expect(b.client.calls.map((c) => c.image.split('/')[2])).toEqual(['small-2:v1', 'small-3:v1', 'small-4:v1']);
    const [status] = await a.jobs.list();
    expect(status?.lastRun).toMatchObject({ runId, result: 'succeeded', counts: { images: 5, warmed: 5, failed: 0 } });
    expect(b.logger.lines.some((l) => l.msg.includes('resuming a prefetch run'))).toBe(true);
    hold.open(); // a's late answer changes nothing
    await time.advance(1_000);
    expect((await a.jobs.list())[0]?.lastRun?.counts.warmed).toBe(5);
    expect(a.observed.filter((o) => o.startsWith('run'))).toEqual([]);
    await Promise.all([a.jobs.stop(), b.jobs.stop()]);
  });

  it('runOnStart runs once per replica set start: a new leader after a failover does not run it again', async () => {
    const time = new FakeTime();
    const shared = records();
    const started = time.now() - 60_000;
    const a = node({ time, records: shared, leading: () => true, clusterStartedAt: started });
    a.jobs.start();
    await time.advance(1_000);
    await a.jobs.stop();
    const b = node({ time, records: shared, leading: () => true, clusterStartedAt: started });
    b.jobs.start();
    await time.advance(1_000);
    expect(b.client.calls).toHaveLength(0);
    expect(b.logger.lines.some((l) => l.msg.includes('already ran since the replica set started'))).toBe(true);
    await b.jobs.stop();
    // The whole set restarted later: runOnStart is due again.
    const c = node({ time, records: shared, leading: () => true, clusterStartedAt: time.now() });
    c.jobs.start();
    await time.advance(1_000);
    expect(c.client.calls).toHaveLength(3);
    await c.jobs.stop();
  });

  it('a run asked of a replica that does not lead is started by the leader under the same run id', async () => {
    const time = new FakeTime();
    const shared = records();
    const jobs = [job()];
    const leader = node({ time, records: shared, leading: () => true, jobs });
    const follower = node({ time, records: shared, leading: () => false, jobs });
    leader.jobs.start();
    follower.jobs.start();
    const { runId } = await follower.jobs.requestRun('nightly');
    await time.advance(1_500);
    expect(leader.client.calls).toHaveLength(3);
    expect((await follower.jobs.list())[0]?.lastRun).toMatchObject({ runId, result: 'succeeded' });
    await Promise.all([leader.jobs.stop(), follower.jobs.stop()]);
  });

  it('refuses a run of an unknown job (JOB_UNKNOWN) and while one is in progress (RUN_IN_PROGRESS)', async () => {
    const time = new FakeTime();
    const hold = gate();
    const client = new FakeWarmClient(time, async (_r, ref) => (await hold.promise, okResult(ref)));
    const n = node({ time, records: records(), leading: () => true, jobs: [job()], client });
    n.jobs.start();
    const code = async (p: Promise<unknown>) => p.then(() => 'ok', (err: unknown) => (isRegistryError(err) ? err.code : String(err)));
    expect(await code(n.jobs.requestRun('nope'))).toBe('JOB_UNKNOWN');
    const { runId } = await n.jobs.requestRun('nightly');
    await time.advance(0);
    expect(await code(n.jobs.requestRun('nightly'))).toBe('RUN_IN_PROGRESS');
    hold.open();
    await time.advance(1_000);
    expect((await n.jobs.list())[0]?.lastRun).toMatchObject({ runId, result: 'succeeded' });
    await n.jobs.stop();
  });

  it('paces every request of the listing by the job\'s requestsPerSecond', async () => {
    const time = new FakeTime();
    const paced: number[] = [];
    const source = new FakeImageSource(smalls(1));
    const expand = source.expand.bind(source);
    source.expand = async (j, signal, pace) => {
      for (let i = 0; i < 3; i++) {
        await pace?.(); // a catalog page, a tag-list page, a manifest: each a request to the primary
        paced.push(time.now());
      }
      return expand(j, signal);
    };
    const n = node({ time, records: records(), leading: () => true, source, jobs: [job({ runOnStart: true, replicas: 'one', concurrency: 1, requestsPerSecond: 0.5 })] });
    const start = time.now();
    n.jobs.start();
    await time.advance(10_000);
    expect(paced.map((at) => at - start)).toEqual([0, 2_000, 4_000]);
    expect(n.client.calls).toHaveLength(1);
    await n.jobs.stop();
  });

  it('a run whose listing fails is failed, logged, and reported in current_issues', async () => {
    const time = new FakeTime();
    const source = new FakeImageSource(async () => {
      throw new Error('UPSTREAM_UNAVAILABLE: catalog unreachable');
    });
    const n = node({ time, records: records(), leading: () => true, source });
    n.jobs.start();
    await time.advance(1_000);
    const [status] = await n.jobs.list();
    expect(status?.lastRun).toMatchObject({ result: 'failed', errors: ["could not list the job's images: UPSTREAM_UNAVAILABLE: catalog unreachable"] });
    expect(n.observed).toEqual(['run nightly failed 0s']);
    expect(await n.jobs.issues()).toEqual([
      { critical: false, description: `prefetch job nightly: last run ${status!.lastRun!.runId} failed: could not list the job's images: UPSTREAM_UNAVAILABLE: catalog unreachable` },
    ]);
    await n.jobs.stop();
  });

  it('failed images make the run partial, each logged, the first errors listed', async () => {
    const time = new FakeTime();
    const client = new FakeWarmClient(time, (_r, ref) =>
      ref.repository === 'bars/small-1' ? { ...okResult(ref), ok: false, error: 'MANIFEST_UNKNOWN: gone' } : okResult(ref),
    );
    const n = node({ time, records: records(), leading: () => true, client });
    n.jobs.start();
    await time.advance(1_000);
    const [status] = await n.jobs.list();
    expect(status?.lastRun).toMatchObject({ result: 'partial', counts: { images: 3, warmed: 2, failed: 1 }, errors: ['registry.test/bars/small-1:v1: MANIFEST_UNKNOWN: gone'] });
    expect(n.logger.lines.filter((l) => l.msg === 'prefetch image failed').map((l) => l.obj.image)).toEqual(['registry.test/bars/small-1:v1']);
    expect((await n.jobs.issues())[0]?.description).toMatch(/left 1 of 3 images cold/);
    await n.jobs.stop();
  });

  it('caps the images of a run, warming the first ones and reporting the cap as the run\'s error', async () => {
    const time = new FakeTime();
    const n = node({ time, records: records(), leading: () => true, source: new FakeImageSource(smalls(5)), maxImages: 2 });
    n.jobs.start();
    await time.advance(1_000);
    expect(n.client.calls).toHaveLength(2);
    const [status] = await n.jobs.list();
    expect(status?.lastRun).toMatchObject({ result: 'partial', counts: { images: 2, warmed: 2 } });
    expect(status?.lastRun?.errors[0]).toMatch(/select 5 images, more than the 2 a run may warm/);
    await n.jobs.stop();
  });

  it('stops cleanly while a run is in progress: no timer left, the run stays in progress for a leader', async () => {
    const time = new FakeTime();
    const client = new FakeWarmClient(time, async (_r, ref, options) => {
      await new Promise((_resolve, reject) => options.signal.addEventListener('abort', () => reject(options.signal.reason as Error)));
      return okResult(ref);
    });
    const n = node({ time, records: records(), leading: () => true, client });
    n.jobs.start();
    await time.advance(10);
    await n.jobs.stop();
    await settle();
    expect(time.armed()).toEqual([]);
    expect((await n.jobs.list())[0]?.lastRun?.result).toBe('running');
  });
});
