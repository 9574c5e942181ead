/** Where the status document comes from: this node's pulls or the replica set's (Redis), and one gathering for many pages. */
import type { PrefetchJobStatus } from '../../../src/prefetch/ports.ts';
import { describe, expect, it } from 'vitest';
import { buildClusterStatus } from '../../../src/cluster/cluster-status.ts';
import type { PullBatch, SharedPullActivity, SharedPulls } from '../../../src/cluster/pull-activity.ts';
import { StatusPageSource } from '../../../src/process/status-page-source.ts';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const t0 = Date.parse('2026-11-30T03:00:00Z');
const status = buildClusterStatus({
  now: t0,
  self: {
    node_id: 'n1',
    instance: '',
    advertise_url: '',
    version: '0.1.0',
    started_at: new Date(t0).toISOString(),
    heartbeat_at: new Date(t0).toISOString(),
    health: { status: 'ok', problems: [], draining: false, disk_failing: false },
    cache_bytes: 0,
    hit_ratio: 0,
    fills_in_flight: 0,
  },
  staleAfterMs: 0,
});
const batch: PullBatch = { recent: [{ at: t0, repository: 'own/repo', reference: 'v1', client: 'c', result: 'miss' }], repositories: [['own/repo', 1, 10]] };

function source(shared?: SharedPullActivity, jobs?: () => Promise<PrefetchJobStatus[]>): { source: StatusPageSource; gathered: () => number; advance: (ms: number) => void } {
  let now = t0;
  let gathered = 0;
  const s = new StatusPageSource({
    nodeId: 'n1',
    maxBytes: 1000,
    showUsers: false,
    clock: { now: () => now },
    logger: quiet,
    status: async () => {
      gathered += 1;
      return status;
    },
    metrics: async () => 'outpost_cache_size_bytes 10\n',
    ...(shared ? { shared: () => shared } : {}),
    ...(jobs ? { jobs } : {}),
  });
  return { source: s, gathered: () => gathered, advance: (ms) => (now += ms) };
}

function fakeShared(up: boolean, read: () => Promise<SharedPulls>): SharedPullActivity & { added: PullBatch[] } {
  const added: PullBatch[] = [];
  return { added, up: () => up, add: async (b) => void added.push(b), read };
}

describe('StatusPageSource', () => {
  it('shows this node\'s own pulls without a shared store', async () => {
    const { source: s } = source();
    s.pulls(batch);
    const data = await s.data();
    expect(data.pulls_scope).toBe('node');
    expect(data.recent_pulls).toEqual([{ at: '2026-11-30T03:00:00Z', repository: 'own/repo', reference: 'v1', client: 'c', result: 'miss' }]);
    expect(data.top_by_pulls).toEqual([{ repository: 'own/repo', pulls: 1, bytes: 10 }]);
    expect(data.cache).toMatchObject({ used_bytes: 10, max_bytes: 1000 });
  });

  it('adds pulls to the shared store and shows the replica set\'s when it answers', async () => {
    const shared = fakeShared(true, async () => ({
      recent: [{ at: t0, repository: 'other/repo', reference: 'v2', client: 'd', result: 'hit', node: 'n2' }],
      byPulls: [{ repository: 'other/repo', pulls: 5, bytes: 1 }],
      byBytes: [],
    }));
    const { source: s } = source(shared);
    s.pulls(batch);
    expect(shared.added).toEqual([batch]);
    const data = await s.data();
    expect(data.pulls_scope).toBe('cluster');
    expect(data.recent_pulls[0]).toMatchObject({ repository: 'other/repo', node: 'n2' });
  });

  it('falls back to this node\'s pulls, and says so, when the shared store is down or fails', async () => {
    const down = fakeShared(false, () => Promise.reject(new Error('not asked')));
    const { source: s1 } = source(down);
    s1.pulls(batch);
    expect(down.added).toEqual([]);
    expect((await s1.data()).pulls_scope).toBe('node');
    const failing = fakeShared(true, () => Promise.reject(new Error('Command timed out')));
    const { source: s2 } = source(failing);
    s2.pulls(batch);
    const data = await s2.data();
    expect(data.pulls_scope).toBe('node');
    expect(data.recent_pulls[0]!.repository).toBe('own/repo');
  });

  it('gathers once for every page asking within a second', async () => {
    const { source: s, gathered, advance } = source();
    await Promise.all([s.data(), s.data(), s.data()]);
    expect(gathered()).toBe(1);
    advance(999);
    await s.data();
    expect(gathered()).toBe(1);
    advance(1);
    await s.data();
    expect(gathered()).toBe(2);
  });

  it('carries the prefetch jobs, with the reason when they cannot be read, and reads them once per gathering', async () => {
    const job: PrefetchJobStatus = { name: 'nightly', schedule: '0 3 * * *', timezone: 'UTC', upstream: 'r.example', nextRunAt: undefined, lastRun: undefined };
    let reads = 0;
    const { source: s } = source(undefined, async () => {
      reads += 1;
      return [job];
    });
    await Promise.all([s.data(), s.data()]);
    expect((await s.data()).jobs).toEqual([job]);
    expect(reads).toBe(1);
    const failing = source(undefined, () => Promise.reject(new Error('etcd did not answer')));
    expect((await failing.source.data()).jobs).toBe('etcd did not answer');
    expect((await source().source.data()).jobs).toBeUndefined();
  });
});
