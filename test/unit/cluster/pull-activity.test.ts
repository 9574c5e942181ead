/** Recent pulls and top repositories: bounded on both sides of IPC, and what crosses it is checked again. */
import { describe, expect, it } from 'vitest';
import { parsePullBatch, PullActivity, PullRecorder, recentPullsKept, reposKept, type PullBatch, type PullEvent } from '../../../src/cluster/pull-activity.ts';

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

const manifest = (repository: string, reference = 'v1', extra: Partial<PullEvent> = {}): PullEvent => ({
  kind: 'manifest',
  repository,
  reference,
  client: '10.0.0.1',
  cache: 'hit',
  user: undefined,
  bytes: 500,
  ...extra,
});

describe('PullRecorder (worker side)', () => {
  it('batches pulls and blob bytes per repository, flushing at most once per period', () => {
    const c = clock();
    const batches: PullBatch[] = [];
    const recorder = new PullRecorder((b) => batches.push(b), c, 1_000);
    recorder.record(manifest('team/app', 'v1', { cache: 'miss', user: 'alice' }));
    recorder.record({ ...manifest('team/app'), kind: 'blob', reference: 'sha256:x', bytes: 4096 });
    expect(batches).toHaveLength(0);
    c.advance(1_000);
    recorder.record(manifest('team/other', 'v2', { cache: 'coalesced' }));
    expect(batches).toHaveLength(1);
    expect(batches[0]).toEqual({
      recent: [
        { at: 1_000_000, repository: 'team/app', reference: 'v1', client: '10.0.0.1', result: 'miss', user: 'alice' },
        { at: 1_001_000, repository: 'team/other', reference: 'v2', client: '10.0.0.1', result: 'coalesced' },
      ],
      repositories: [
        ['team/app', 1, 4096],
        ['team/other', 1, 0],
      ],
    });
    recorder.flush();
    expect(batches).toHaveLength(1); // nothing new: nothing sent
  });

  it('keeps its buffers bounded between two flushes', () => {
    const batches: PullBatch[] = [];
    const recorder = new PullRecorder((b) => batches.push(b), clock(), 60_000);
    for (let i = 0; i < reposKept + 500; i++) recorder.record(manifest(`repo/${i}`));
    recorder.flush();
    expect(batches[0]!.recent).toHaveLength(recentPullsKept);
    expect(batches[0]!.repositories).toHaveLength(reposKept);
  });

  it('names a result it does not know "other", and cuts very long values', () => {
    const batches: PullBatch[] = [];
    const recorder = new PullRecorder((b) => batches.push(b), clock(), 0);
    recorder.record(manifest('r'.repeat(1_000), 't'.repeat(1_000), { cache: 'weird' }));
    expect(batches[0]!.recent[0]!.result).toBe('other');
    expect(batches[0]!.recent[0]!.repository).toHaveLength(256);
    expect(batches[0]!.recent[0]!.reference).toHaveLength(256);
  });
});

describe('parsePullBatch (what arrives over IPC)', () => {
  it('keeps well-formed entries and drops malformed ones', () => {
    const parsed = parsePullBatch({
      recent: [
        { at: 1, repository: 'a', reference: 'v1', client: 'c', result: 'stale' },
        { at: 'soon', repository: 'a', reference: 'v1', client: 'c', result: 'hit' },
        null,
        { at: 2, repository: 'b', reference: 'v2', client: 'c', result: '<script>', user: 7 },
        { at: 3, repository: 'b', reference: 'v3', client: 'c', result: 'revalidated' },
      ],
      repositories: [['a', 1, 10], ['b', -1, 0], [3, 1, 1], 'x', ['c', 0, Infinity]],
    });
    expect(parsed).toEqual({
      recent: [
        { at: 1, repository: 'a', reference: 'v1', client: 'c', result: 'stale' },
        { at: 2, repository: 'b', reference: 'v2', client: 'c', result: 'other' },
        { at: 3, repository: 'b', reference: 'v3', client: 'c', result: 'revalidated' },
      ],
      repositories: [['a', 1, 10]],
    });
    expect(parsePullBatch(null)).toBeUndefined();
    expect(parsePullBatch({ recent: 'x', repositories: [] })).toBeUndefined();
  });

  it('never takes more than it keeps', () => {
    const recent = Array.from({ length: 5_000 }, (_, i) => ({ at: i, repository: 'a', reference: 'v', client: 'c', result: 'hit' }));
    const repositories = Array.from({ length: 5_000 }, (_, i) => [`r${i}`, 1, 1]);
    const parsed = parsePullBatch({ recent, repositories })!;
    expect(parsed.recent).toHaveLength(recentPullsKept);
    expect(parsed.recent.at(-1)!.at).toBe(4_999); // the newest
    expect(parsed.repositories).toHaveLength(reposKept);
  });
});

describe('PullActivity (primary side)', () => {
  it('lists recent pulls newest first, in a ring of the last hundred', () => {
    const activity = new PullActivity();
    for (let i = 0; i < 150; i++) activity.add({ recent: [{ at: i, repository: 'a', reference: `v${i}`, client: 'c', result: 'hit' }], repositories: [] });
    const recent = activity.recent();
    expect(recent).toHaveLength(recentPullsKept);
    expect(recent[0]!.reference).toBe('v149');
    expect(recent.at(-1)!.reference).toBe('v50');
    expect(activity.recent(3).map((p) => p.reference)).toEqual(['v149', 'v148', 'v147']);
  });

  it('ranks repositories by pulls and by bytes, summed over batches', () => {
    const activity = new PullActivity();
    activity.add({ recent: [], repositories: [['small/many', 5, 100], ['big/few', 1, 10_000]] });
    activity.add({ recent: [], repositories: [['small/many', 2, 0], ['bytes/only', 0, 50]] });
    expect(activity.top('pulls')).toEqual([
      { repository: 'small/many', pulls: 7, bytes: 100 },
      { repository: 'big/few', pulls: 1, bytes: 10_000 },
    ]);
    expect(activity.top('bytes').map((r) => r.repository)).toEqual(['big/few', 'small/many', 'bytes/only']);
    expect(activity.top('pulls', 1)).toHaveLength(1);
  });

  it('forgets the least pulled repository to make room past its bound', () => {
    const activity = new PullActivity();
    activity.add({ recent: [], repositories: Array.from({ length: reposKept }, (_, i): [string, number, number] => [`r${i}`, i === 7 ? 0 : 10, 1]) });
    activity.add({ recent: [], repositories: [['newcomer', 1, 1]] });
    const names = new Set(activity.top('bytes', reposKept + 1).map((r) => r.repository));
    expect(names.size).toBe(reposKept);
    expect(names.has('newcomer')).toBe(true);
    expect(names.has('r7')).toBe(false);
  });
});
