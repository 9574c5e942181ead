/**
 * A leader change mid-run on a real etcd (Debian etcd-server): the run
 * record is fenced by the real election, the new leader resumes the run,
 * and the deposed leader's late results change nothing.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/cache/ports.ts';
import { createEtcdClient } from '../../../src/coordination/etcd-client.ts';
import { EtcdRunStore } from '../../../src/coordination/etcd-run-store.ts';
import { PrefetchJobs } from '../../../src/prefetch/prefetch-jobs.ts';
import { realTimers } from '../../../src/prefetch/scheduler.ts';
import { createCleanupStack } from '../../support/cleanup.ts';
import { startEtcd, type EtcdServer } from '../../support/etcd.ts';
import { testEtcdMember } from '../../support/etcd-member.ts';
import { waitFor } from '../../support/wait.ts';
import { FakeImageSource, FakeWarmClient, gate, image, job, okResult, recordingLogger, replicas } from './fakes.ts';

const secret = 'unit-test-peer-secret-0123456789';
let etcd: EtcdServer;
const cleanup = createCleanupStack();
beforeAll(async () => {
  etcd = await startEtcd();
}, 30_000);
afterAll(() => etcd?.dispose());
afterEach(() => cleanup.run());

function member(cluster: string, nodeId: string) {
  const set = testEtcdMember({ etcdUrl: etcd.url, cluster, nodeId, secret, logger: recordingLogger() });
  let stopped = false;
  const stop = async () => {
    if (!stopped) await set.stop();
    stopped = true;
  };
  cleanup.add(stop);
  return { set, stop };
}

describe('PrefetchJobs on a real etcd', () => {
  it('a new leader finishes the run the old one was deposed from, and the old one\'s late results are refused', async () => {
    const cluster = `prefetch-resume-${process.pid}`;
    const images = Array.from({ length: 5 }, (_, i) => image(`bars/small-${i}`));
    const hold = gate();
    const nodes = ['a', 'b'].map((id) => {
      const m = member(cluster, id);
      const client = createEtcdClient({ endpoints: [etcd.url], callTimeoutMs: 1_000 });
      cleanup.add(() => client.close());
      const warm = new FakeWarmClient(systemClock, async (_r, ref) => {
        if (id === 'a' && ref.repository === 'bars/small-2') await hold.promise; // a hangs on the third image
        return okResult(ref);
      });
      const jobs = new PrefetchJobs({
        jobs: [job({ runOnStart: true, replicas: 'one', concurrency: 1 })],
        store: new EtcdRunStore({ client, clusterName: cluster, ifLeader: (ops, ...c) => m.set.ifLeader(ops, ...c) }),
        source: new FakeImageSource(images),
        client: warm,
        replicas: async () => replicas(id),
        isLeader: () => m.set.state().leader,
        clusterStartedAt: async () => Date.now() - 60_000,
        clock: systemClock,
        timers: realTimers,
        logger: recordingLogger(),
        observer: { runFinished: () => undefined, imageDone: () => undefined },
        pollMs: 200,
      });
      cleanup.add(() => jobs.stop());
      return { id, m, jobs, warm };
    });
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    await a.m.set.start();
    await waitFor(() => a.m.set.state().leader, { what: 'a to lead', timeoutMs: 10_000 });
    await b.m.set.start();
    a.jobs.start();
    b.jobs.start();
    await waitFor(() => a.warm.calls.length === 3, { what: 'a to reach the third image', timeoutMs: 10_000 });
    const runId = (await b.jobs.list())[0]!.lastRun!.runId;
    // a resigns (as on SIGTERM): b leads and resumes; a's run is still waiting on its third image.
    await a.m.stop();
    await waitFor(async () => (await b.jobs.list())[0]?.lastRun?.result === 'succeeded', { what: 'b to finish the run', timeoutMs: 15_000, intervalMs: 100 });
    expect(b.warm.calls.map((c) => c.image.split('/').at(-1))).toEqual(['small-2:v1', 'small-3:v1', 'small-4:v1']);
    hold.open(); // a's late answer: its write is fenced off
    await new Promise((resolve) => setTimeout(resolve, 300));
    const last = (await b.jobs.list())[0]!.lastRun!;
    expect(last).toMatchObject({ runId, result: 'succeeded', counts: { images: 5, warmed: 5, failed: 0 } });
    expect(a.warm.calls).toHaveLength(3); // a took no image after losing the lead
  }, 60_000);
});
