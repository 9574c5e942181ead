/** Membership, election and fencing against a real etcd (Debian etcd-server), with a 2 s lease. */
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/cache/ports.ts';
import type { MemberRecord } from '../../../src/cluster/member-record.ts';
import { createEtcdClient } from '../../../src/coordination/etcd-client.ts';
import { DuplicateNodeIdError, EtcdReplicaSet } from '../../../src/coordination/etcd-replica-set.ts';
import { createCleanupStack } from '../../support/cleanup.ts';
import { startEtcd, type EtcdServer } from '../../support/etcd.ts';
import { testMemberRecord } from '../../support/etcd-member.ts';
import { startProcess } from '../../support/process.ts';
import { waitFor } from '../../support/wait.ts';

const ttlSeconds = 2;
const secret = 'unit-test-peer-secret-0123456789';
let etcd: EtcdServer;
const cleanup = createCleanupStack();
let clusterSeq = 0;

beforeAll(async () => {
  etcd = await startEtcd();
}, 30_000);
afterAll(() => etcd?.dispose());
afterEach(() => cleanup.run());

interface LogLine {
  level: string;
  msg: string;
  obj: object;
}

function recordOf(nodeId: string): Omit<MemberRecord, 'heartbeat_at' | 'instance'> {
  return testMemberRecord(nodeId, { cache_bytes: 1234, hit_ratio: 0.5 });
}

function node(cluster: string, nodeId: string, options: { secret?: string } = {}) {
  const logs: LogLine[] = [];
  const log = (level: string) => (obj: object, msg: string) => logs.push({ level, msg, obj });
  const client = createEtcdClient({ endpoints: [etcd.url], callTimeoutMs: 1_000 });
  const set = new EtcdReplicaSet({
    client,
    clusterName: cluster,
    nodeId,
    leaseTtlSeconds: ttlSeconds,
    peerSecret: options.secret ?? secret,
    heartbeatMs: 500,
    record: () => recordOf(nodeId),
    logger: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
    clock: systemClock,
  });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await set.stop();
  };
  cleanup.add(stop);
  return { set, logs, stop };
}

const repoRoot = path.resolve(import.meta.dirname, '../../..');

/** A member in a process of its own, to be killed with SIGKILL like a crashed node. */
async function processMember(cluster: string, nodeId: string) {
  const proc = await startProcess(process.execPath, ['--import', 'tsx', 'test/support/etcd-member-process.ts'], {
    cwd: repoRoot,
    env: { ETCD_URL: etcd.url, CLUSTER: cluster, NODE_ID: nodeId, SECRET: secret, TTL_SECONDS: String(ttlSeconds) },
    name: `member-${nodeId}`,
  });
  cleanup.add(() => proc.stop({ graceMs: 2_000 }));
  await waitFor(
    () => {
      if (!proc.isRunning()) throw new Error(`member exited: ${proc.output()}`);
      return proc.output().includes('joined\n');
    },
    { what: `${nodeId} to join`, timeoutMs: 15_000 },
  );
  return { proc, leads: () => proc.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { leader: boolean }).at(-1)?.leader === true };
}

function freshCluster(): string {
  clusterSeq += 1;
  return `unit-${process.pid}-${clusterSeq}`;
}

async function leaderOf(...nodes: Array<{ set: EtcdReplicaSet }>): Promise<string[]> {
  return nodes.filter((n) => n.set.state().leader).map((n) => n.set.state().leaderId ?? '?');
}

describe('etcd replica set', () => {
  it('elects exactly one leader that every member sees, and lists every member', async () => {
    const cluster = freshCluster();
    const [a, b, c] = [node(cluster, 'a'), node(cluster, 'b'), node(cluster, 'c')];
    await Promise.all([a.set.start(), b.set.start(), c.set.start()]);
    await waitFor(async () => (await leaderOf(a, b, c)).length === 1 && [a, b, c].every((n) => n.set.state().members === 3), {
      what: 'one leader and three members',
      timeoutMs: 5_000,
    });
    const leader = (await leaderOf(a, b, c))[0];
    for (const n of [a, b, c]) expect(n.set.state().leaderId).toBe(leader);
    const view = await a.set.view();
    expect(view?.members.map((m) => m.id).sort()).toEqual(['a', 'b', 'c']);
    expect(view?.members.every((m) => m.record.verified)).toBe(true);
    expect(view?.leader).toBe(leader);
    const elected = [a, b, c].find((n) => n.set.state().leader)!;
    expect(elected.logs.some((l) => l.msg === 'became the leader')).toBe(true);
  });

  it('refuses a second live process with the same node id, naming the id', async () => {
    const cluster = freshCluster();
    const first = node(cluster, 'twin');
    await first.set.start();
    const second = node(cluster, 'twin');
    const started = Date.now();
    const error = await second.set.start().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(DuplicateNodeIdError);
    expect((error as Error).message).toContain('node id "twin" is already used by a live replica');
    // It waited for the holder's lease to run out first (a killed earlier run of the same node would have let go).
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(first.set.state().joined).toBe(true);
  });

  it('lets a restarted node take its id back once the killed run’s lease expires', async () => {
    const cluster = freshCluster();
    const before = await processMember(cluster, 'phoenix');
    await before.proc.stop({ signal: 'SIGKILL' });
    const after = node(cluster, 'phoenix');
    await after.set.start();
    expect(after.set.state().joined).toBe(true);
  });

  it('replaces a killed leader within the lease TTL and drops it from the members', async () => {
    const cluster = freshCluster();
    const a = await processMember(cluster, 'a');
    await waitFor(a.leads, { what: 'a to lead', timeoutMs: 5_000 });
    const b = node(cluster, 'b');
    await b.set.start();
    await waitFor(() => b.set.state().members === 2, { what: 'b to see two members', timeoutMs: 5_000 });
    const killed = Date.now();
    await a.proc.stop({ signal: 'SIGKILL' });
    await waitFor(() => b.set.state().leader, { what: 'b to take over', timeoutMs: ttlSeconds * 1000 + 1_500, intervalMs: 20 });
    const failoverMs = Date.now() - killed;
    const view = await b.set.view();
    expect(view?.members.map((m) => m.id)).toEqual(['b']);
    expect(failoverMs).toBeLessThan(ttlSeconds * 1000 + 1_500);
    // The leader remembers the dead replica in the aggregate, so cluster_status can report it.
    await waitFor(async () => (await b.set.view())?.aggregate?.leader === 'b', { what: 'b to write the aggregate', timeoutMs: 3_000 });
    expect(Object.keys((await b.set.view())?.aggregate?.replicas ?? {}).sort()).toEqual(['a', 'b']);
  });

  it('hands leadership over at once when the leader stops gracefully, and records the departure', async () => {
    const cluster = freshCluster();
    const a = node(cluster, 'a');
    await a.set.start();
    await waitFor(() => a.set.state().leader, { what: 'a to lead', timeoutMs: 5_000 });
    const b = node(cluster, 'b');
    await b.set.start();
    await waitFor(() => b.set.state().members === 2, { what: 'b to see two members', timeoutMs: 5_000 });
    const stopping = Date.now();
    await a.stop();
    await waitFor(() => b.set.state().leader, { what: 'b to take over', timeoutMs: 1_500, intervalMs: 20 });
    expect(Date.now() - stopping).toBeLessThan(1_500);
    const view = await b.set.view();
    expect(view?.members.map((m) => m.id)).toEqual(['b']);
    expect(view?.departed.has('a')).toBe(true);
    expect(a.logs.some((l) => l.msg === 'resigned from the leader election')).toBe(true);
  });

  it('fences leader transactions: they commit only while this node leads', async () => {
    const cluster = freshCluster();
    const a = node(cluster, 'a');
    await a.set.start();
    await waitFor(() => a.set.state().leader, { what: 'a to lead', timeoutMs: 5_000 });
    const b = node(cluster, 'b');
    await b.set.start();
    const client = createEtcdClient({ endpoints: [etcd.url], callTimeoutMs: 1_000 });
    cleanup.add(() => client.close());
    expect(await a.set.ifLeader([client.put(`${cluster}/duty`).value('from a')])).toBe(true);
    expect(await b.set.ifLeader([client.put(`${cluster}/duty`).value('from b')])).toBe(false);
    expect(await client.get(`${cluster}/duty`).string()).toBe('from a');
    // A leader whose election key is gone in etcd (lease expired in a partition) can no longer act, even before it notices.
    await client.delete().prefix(`${cluster}/election/`);
    expect(await a.set.ifLeader([client.put(`${cluster}/duty`).value('stale a')])).toBe(false);
    expect(await client.get(`${cluster}/duty`).string()).toBe('from a');
  });

  it('reports records signed with another peer secret as unverified', async () => {
    const cluster = freshCluster();
    const a = node(cluster, 'a');
    const stranger = node(cluster, 'stranger', { secret: 'a-different-secret-0123456789' });
    await Promise.all([a.set.start(), stranger.set.start()]);
    const view = await a.set.view();
    const seen = view?.members.find((m) => m.id === 'stranger');
    expect(seen?.record.verified).toBe(false);
    expect(seen?.record.verified === false && seen.record.reason).toContain('OUTPOST_PEER_SECRET');
    expect(view?.members.find((m) => m.id === 'a')?.record.verified).toBe(true);
  });
});

describe('etcd replica set while etcd goes away', () => {
  it('starts at once without etcd, and joins and leads when etcd appears', async () => {
    await etcd.stop();
    let a: ReturnType<typeof node>;
    try {
      a = node(freshCluster(), 'a');
      const started = Date.now();
      await a.set.start();
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(a.set.state()).toMatchObject({ etcdUp: false, joined: false, leader: false });
      expect(a.logs.some((l) => l.msg.startsWith('etcd unreachable at start'))).toBe(true);
    } finally {
      await etcd.start();
    }
    await waitFor(() => a.set.state().joined && a.set.state().leader, { what: 'a to join and lead once etcd is up', timeoutMs: 5_000 });
  });


  it('keeps running without a leader while etcd is down, and rejoins and re-elects when it is back', async () => {
    const cluster = freshCluster();
    const a = node(cluster, 'a');
    const b = node(cluster, 'b');
    await Promise.all([a.set.start(), b.set.start()]);
    await waitFor(async () => (await leaderOf(a, b)).length === 1, { what: 'a leader', timeoutMs: 5_000 });
    await etcd.stop();
    try {
      await waitFor(() => !a.set.state().etcdUp && !b.set.state().etcdUp, { what: 'both to notice etcd is down', timeoutMs: 5_000 });
      expect(await leaderOf(a, b)).toEqual([]);
      // Past twice the TTL the client gives its lease up: the session must be replaced once etcd is back.
      await waitFor(() => !a.set.state().joined && !b.set.state().joined, { what: 'both leases given up', timeoutMs: 3 * ttlSeconds * 1000 + 2_000 });
    } finally {
      await etcd.start();
    }
    await waitFor(
      async () => a.set.state().etcdUp && b.set.state().etcdUp && (await leaderOf(a, b)).length === 1 && a.set.state().members === 2,
      { what: 'both back, one leader, two members', timeoutMs: 3 * ttlSeconds * 1000 + 3_000 },
    );
  });
});
