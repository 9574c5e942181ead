import { describe, expect, it } from 'vitest';
import type { ImageRef, ReplicaTarget } from '../../../src/prefetch/ports.ts';
import { RunExecutor, type PendingImage } from '../../../src/prefetch/run-executor.ts';
import type { ImageOutcome } from '../../../src/prefetch/run-store.ts';
import { TokenBucket } from '../../../src/prefetch/token-bucket.ts';
import { FakeTime, FakeWarmClient, gate, image, okResult, recordingLogger, replicas } from './fakes.ts';

function pending(count: number): PendingImage[] {
  return Array.from({ length: count }, (_, index) => ({ index, ref: image(`bars/small-${index}`) }));
}

function setup(options: { live?: ReplicaTarget[]; mode?: 'all' | 'one'; concurrency?: number; rate?: number; client?: FakeWarmClient; time?: FakeTime } = {}) {
  const time = options.time ?? new FakeTime();
  const client = options.client ?? new FakeWarmClient(time);
  const executor = new RunExecutor({
    client,
    replicas: async () => options.live ?? replicas('n1', 'n2'),
    replicasMode: options.mode ?? 'all',
    concurrency: options.concurrency ?? 2,
    bucket: new TokenBucket(options.rate ?? 1_000, Math.max(1, options.rate ?? 1_000), time, time.sleep),
    platforms: [],
    warmTimeoutMs: 60_000,
    logger: recordingLogger(),
  });
  const outcomes: ImageOutcome[] = [];
  const run = (images: PendingImage[], signal = new AbortController().signal) =>
    executor.execute(images, async (o) => (outcomes.push(o), true), signal);
  return { time, client, executor, outcomes, run };
}

const byIndex = (outcomes: ImageOutcome[]) => [...outcomes].sort((a, b) => a.index - b.index);

describe('RunExecutor', () => {
  it('replicas: one — each image is warmed once, spread round-robin over the live replicas', async () => {
    const { client, outcomes, run } = setup({ mode: 'one', live: replicas('n1', 'n2', 'n3') });
    await run(pending(6));
    expect(client.calls).toHaveLength(6);
    const perReplica = new Map<string, number>();
    for (const call of client.calls) perReplica.set(call.replica, (perReplica.get(call.replica) ?? 0) + 1);
    expect(Object.fromEntries(perReplica)).toEqual({ n1: 2, n2: 2, n3: 2 });
    expect(byIndex(outcomes).map((o) => [o.index, o.ok, o.replicas.length])).toEqual([0, 1, 2, 3, 4, 5].map((i) => [i, true, 1]));
  });

  it('replicas: all — the first replica warms by tag (crossing the WAN), every other one afterwards by digest', async () => {
    const { client, outcomes, run } = setup({ mode: 'all', live: replicas('n1', 'n2', 'n3'), concurrency: 1 });
    await run(pending(1));
    const digest = okResult(image('bars/small-0')).digest!;
    expect(client.calls[0]).toMatchObject({ replica: 'n1', image: 'registry.test/bars/small-0:v1' });
    expect(client.calls.slice(1).map((c) => [c.replica, c.image]).sort()).toEqual([
      ['n2', `registry.test/bars/small-0@${digest}`],
      ['n3', `registry.test/bars/small-0@${digest}`],
    ]);
    expect(outcomes).toEqual([
      { index: 0, image: 'registry.test/bars/small-0:v1', ok: true, skipped: false, blobs: 2, bytes: 100, replicas: ['n1', 'n2', 'n3'], error: undefined },
    ]);
  });

  it('a replica that cannot be reached is replaced once by another; a second failure fails the image, never the run', async () => {
    const time = new FakeTime();
    const client = new FakeWarmClient(time, (replica, ref) => {
      if (replica.id === 'n1') throw new Error('connect ECONNREFUSED');
      if (ref.repository === 'bars/small-1') throw new Error('socket hang up');
      return okResult(ref);
    });
    const { outcomes, run } = setup({ time, client, mode: 'one', live: replicas('n1', 'n2'), concurrency: 1 });
    await run(pending(3));
    const sorted = byIndex(outcomes);
    expect(sorted.map((o) => [o.ok, o.replicas])).toEqual([
      [true, ['n2']],
      [false, []],
      [true, ['n2']],
    ]);
    expect(sorted[1]!.error).toMatch(/socket hang up|ECONNREFUSED/);
    // Two tries per image at most.
    expect(client.calls.filter((c) => c.image.includes('small-1'))).toHaveLength(2);
  });

  it("records an image's own failure (ok: false) without trying it elsewhere", async () => {
    const time = new FakeTime();
    const client = new FakeWarmClient(time, (_r, ref) => ({ ...okResult(ref), ok: false, digest: undefined, error: 'MANIFEST_UNKNOWN: no such tag' }));
    const { outcomes, run } = setup({ time, client, mode: 'all' });
    await run(pending(1));
    expect(client.calls).toHaveLength(1);
    expect(outcomes[0]).toMatchObject({ ok: false, error: 'MANIFEST_UNKNOWN: no such tag', replicas: [] });
  });

  it('an image not warm on every replica (replicas: all) is failed, naming the replica', async () => {
    const time = new FakeTime();
    const client = new FakeWarmClient(time, (replica, ref) => {
      if (replica.id === 'n2' && ref.reference.startsWith('sha256:')) throw new Error('replica n2 is gone');
      return okResult(ref);
    });
    const { outcomes, run } = setup({ time, client, mode: 'all', concurrency: 1 });
    await run(pending(1));
    expect(outcomes[0]).toMatchObject({ ok: false, replicas: ['n1'], error: 'not warm on n2: replica n2 is gone' });
    expect(client.calls.filter((c) => c.replica === 'n2')).toHaveLength(2); // retried once
  });

  it('keeps at most `concurrency` images in progress over the cluster', async () => {
    const time = new FakeTime();
    const release: Array<() => void> = [];
    const client = new FakeWarmClient(time, async (_r, ref) => {
      const g = gate();
      release.push(() => g.open());
      await g.promise;
      return okResult(ref);
    });
    const { outcomes, run } = setup({ time, client, mode: 'one', concurrency: 3, live: replicas('n1', 'n2', 'n3', 'n4') });
    const done = run(pending(10));
    for (let i = 0; i < 40 && outcomes.length < 10; i++) {
      await time.advance(0);
      release.splice(0).forEach((open) => open());
    }
    await done;
    expect(outcomes).toHaveLength(10);
    expect(client.maxInFlight).toBe(3);
  });

  it('caps requests to the primary at requestsPerSecond: a token per first warm, then one per blob it fetched', async () => {
    const time = new FakeTime();
    // Each image: 4 blobs, none cached → 1 + 4 tokens per image.
    const client = new FakeWarmClient(time, (_r, ref) => okResult(ref, 4, 400, 0));
    const { outcomes, run } = setup({ time, client, mode: 'one', concurrency: 4, rate: 5 });
    const started = time.now();
    const done = run(pending(10));
    for (let i = 0; i < 200 && outcomes.length < 10; i++) await time.advance(100);
    await done;
    const firstWarms = client.calls.map((c) => c.at - started);
    // 10 images × 5 tokens at 5/s with a burst of 5: about 9 s before the last one may start.
    expect(firstWarms.at(-1)!).toBeGreaterThanOrEqual(8_000);
    for (let i = 5; i < firstWarms.length; i++) {
      // Over any window, starts never exceed the rate (5 per second, one start costs 5 with its blobs).
      expect(firstWarms[i]! - firstWarms[i - 5]!).toBeGreaterThanOrEqual(4_000);
    }
  });

  it('a blob already on the replica costs no token', async () => {
    const time = new FakeTime();
    const client = new FakeWarmClient(time, (_r, ref) => okResult(ref, 4, 400, 4));
    const { outcomes, run } = setup({ time, client, mode: 'one', concurrency: 1, rate: 5 });
    const done = run(pending(5));
    for (let i = 0; i < 50 && outcomes.length < 5; i++) await time.advance(100);
    await done;
    expect(client.calls.at(-1)!.at - client.calls[0]!.at).toBeLessThan(1_000);
  });

  it('stops taking images once a record cannot be written (leadership lost)', async () => {
    const { executor, client } = setup({ mode: 'one', concurrency: 1 });
    let written = 0;
    await executor.execute(pending(5), async () => ++written < 2, new AbortController().signal);
    expect(client.calls).toHaveLength(2);
  });

  it('an abort leaves the images in progress without an outcome', async () => {
    const time = new FakeTime();
    const controller = new AbortController();
    const client = new FakeWarmClient(time, async (_r, ref: ImageRef, options) => {
      if (ref.repository === 'bars/small-1') {
        controller.abort(new Error('leadership lost'));
        options.signal.throwIfAborted();
      }
      return okResult(ref);
    });
    const { outcomes, run } = setup({ time, client, mode: 'one', concurrency: 1 });
    await run(pending(4), controller.signal);
    expect(outcomes.map((o) => o.index)).toEqual([0]);
  });
});

describe('RunExecutor, images with nothing to warm', () => {
  it('records an image the warmer skipped (no selected platform) as skipped, asking no other replica', async () => {
    const time = new FakeTime();
    const client = new FakeWarmClient(time, (_r, ref) => ({ ...okResult(ref, 0, 0), skipped: 'no platform of the index is selected' }));
    const { outcomes, run } = setup({ time, client, mode: 'all' });
    await run(pending(1));
    expect(client.calls).toHaveLength(1);
    expect(outcomes[0]).toMatchObject({ ok: true, skipped: true, replicas: [], error: 'no platform of the index is selected' });
  });
});
