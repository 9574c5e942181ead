/** The RunStore contract: every adapter (memory, etcd) passes the same suite. */
import { expect, it } from 'vitest';
import type { ImageOutcome, RunHeader, RunStore } from '../../../src/prefetch/run-store.ts';
import { image } from './fakes.ts';

export interface RunStoreFixture {
  /** A store whose node leads, and one (same records) whose node does not. */
  stores(): Promise<{ leader: RunStore; follower: RunStore }>;
}

let seq = 0;
export function header(overrides: Partial<RunHeader> = {}): RunHeader {
  seq += 1;
  return {
    job: 'nightly',
    runId: `run-${seq}`,
    dueKey: `schedule:${seq}`,
    reason: 'schedule',
    startedAt: 1_700_000_000_000 + seq,
    finishedAt: undefined,
    state: 'running',
    error: undefined,
    ...overrides,
  };
}

export function outcome(index: number, ok = true): ImageOutcome {
  return { index, image: `registry.test/bars/small-${index}:v1`, ok, skipped: false, blobs: 2, bytes: 10, replicas: ['n1', 'n2'], error: ok ? undefined : 'boom' };
}

export function runStoreContract(fixture: RunStoreFixture): void {
  it('has no run for a job that never ran', async () => {
    const { leader } = await fixture.stores();
    expect(await leader.read('nightly')).toBeUndefined();
    expect(await leader.header('nightly')).toBeUndefined();
  });

  it('records a run: header, image list (kept in order beyond a chunk), outcomes, finish', async () => {
    const { leader, follower } = await fixture.stores();
    const h = header();
    expect(await leader.begin(h)).toEqual({ ok: true });
    const images = Array.from({ length: 2_345 }, (_, i) => image(`bars/small-${i}`, `v${i % 7}`));
    expect(await leader.setImages('nightly', h.runId, images)).toBe(true);
    expect(await leader.recordOutcome('nightly', h.runId, outcome(0))).toBe(true);
    expect(await leader.recordOutcome('nightly', h.runId, outcome(2_344, false))).toBe(true);
    const read = await follower.read('nightly'); // any replica reads it
    expect(read?.header).toEqual(h);
    expect(read?.images).toEqual(images);
    expect([...read!.outcomes.keys()].sort((a, b) => a - b)).toEqual([0, 2_344]);
    expect(read!.outcomes.get(2_344)).toEqual(outcome(2_344, false));
    expect(await leader.finish('nightly', h.runId, { state: 'partial', finishedAt: h.startedAt + 5_000, error: undefined })).toBe(true);
    expect(await follower.header('nightly')).toEqual({ ...h, state: 'partial', finishedAt: h.startedAt + 5_000 });
  });

  it('refuses a second run while one is in progress, and a second run for the same due key', async () => {
    const { leader } = await fixture.stores();
    const first = header({ dueKey: 'schedule:2026-11-30T03:00:00.000Z' });
    expect(await leader.begin(first)).toEqual({ ok: true });
    expect(await leader.begin(header())).toMatchObject({ ok: false, reason: 'busy', current: { runId: first.runId } });
    await leader.finish('nightly', first.runId, { state: 'succeeded', finishedAt: first.startedAt + 1, error: undefined });
    expect(await leader.begin(header({ dueKey: first.dueKey }))).toMatchObject({ ok: false, reason: 'duplicate' });
  });

  it('a new run starts from a clean record: the last run\'s images and outcomes are gone', async () => {
    const { leader } = await fixture.stores();
    const first = header();
    await leader.begin(first);
    await leader.setImages('nightly', first.runId, [image('a'), image('b')]);
    await leader.recordOutcome('nightly', first.runId, outcome(1));
    await leader.finish('nightly', first.runId, { state: 'succeeded', finishedAt: first.startedAt + 1, error: undefined });
    const second = header();
    expect(await leader.begin(second)).toEqual({ ok: true });
    const read = await leader.read('nightly');
    expect(read?.header.runId).toBe(second.runId);
    expect(read?.images).toBeUndefined();
    expect(read?.outcomes.size).toBe(0);
  });

  it('refuses writes for a run that is no longer the current one', async () => {
    const { leader } = await fixture.stores();
    const first = header();
    await leader.begin(first);
    await leader.finish('nightly', first.runId, { state: 'failed', finishedAt: first.startedAt + 1, error: 'catalog unreadable' });
    const second = header();
    await leader.begin(second);
    expect(await leader.recordOutcome('nightly', first.runId, outcome(0))).toBe(false);
    expect(await leader.setImages('nightly', first.runId, [image('a')])).toBe(false);
    expect(await leader.finish('nightly', first.runId, { state: 'succeeded', finishedAt: 1, error: undefined })).toBe(false);
    expect((await leader.read('nightly'))?.outcomes.size).toBe(0);
  });

  it('refuses every write of a node that does not lead (fenced)', async () => {
    const { leader, follower } = await fixture.stores();
    const h = header();
    expect(await follower.begin(header())).toMatchObject({ ok: false, reason: 'not-leader' });
    await leader.begin(h);
    expect(await follower.setImages('nightly', h.runId, [image('a')])).toBe(false);
    expect(await follower.recordOutcome('nightly', h.runId, outcome(0))).toBe(false);
    expect(await follower.finish('nightly', h.runId, { state: 'succeeded', finishedAt: 1, error: undefined })).toBe(false);
    const read = await leader.read('nightly');
    expect(read?.images).toBeUndefined();
    expect(read?.outcomes.size).toBe(0);
    expect(read?.header.state).toBe('running');
  });

  it('keeps one pending request per job, written by any replica and taken by the leader', async () => {
    const { leader, follower } = await fixture.stores();
    expect(await follower.requestRun({ job: 'nightly', runId: 'r1', at: 1 })).toEqual({ job: 'nightly', runId: 'r1', at: 1 });
    // A second request while one is pending gets the pending one.
    expect(await leader.requestRun({ job: 'nightly', runId: 'r9', at: 9 })).toEqual({ job: 'nightly', runId: 'r1', at: 1 });
    await follower.requestRun({ job: 'other', runId: 'r2', at: 2 });
    expect((await leader.pendingRequests()).sort((a, b) => a.at - b.at)).toEqual([
      { job: 'nightly', runId: 'r1', at: 1 },
      { job: 'other', runId: 'r2', at: 2 },
    ]);
    await leader.takeRequest({ job: 'nightly', runId: 'stale', at: 1 }); // not the one pending: kept
    await leader.takeRequest({ job: 'other', runId: 'r2', at: 2 });
    expect(await leader.pendingRequests()).toEqual([{ job: 'nightly', runId: 'r1', at: 1 }]);
  });
}
