/**
 * Three real Outpost nodes with a real etcd, a real Redis and a real
 * distribution registry as the primary, a 2 s lease: membership, election,
 * failover, cluster_status and degradation when etcd or Redis go away.
 *
 * The tests run in order on one replica set (each leaves it as the next
 * expects: three nodes until the failover tests remove the leaders).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterStatus } from '../../src/cluster/cluster-status.ts';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { startEtcd, type EtcdServer } from '../support/etcd.ts';
import { makeImage, makeLayer, pushImage, sha256, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { freePort } from '../support/ports.ts';
import { startProcess } from '../support/process.ts';
import { startRedis, type RedisServer } from '../support/redis.ts';
import { replicaEnv } from '../support/replica-set.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';
import { waitFor } from '../support/wait.ts';

const ttlMs = 2_000;
/** etcd expires leases on a half-second beat; the survivors then need one look. */
const failoverBoundMs = ttlMs + 1_500;
const token = 'replica-set-admin-token';
const secret = 'replica-set-peer-secret-0123456789';
const repoRoot = path.resolve(import.meta.dirname, '../..');

const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let etcd: EtcdServer;
let redis: RedisServer;
const nodes = new Map<string, OutpostNode>();
let standalone: OutpostNode;
const images: Image[] = [];

function nodeEnv(id: string, port: number): Record<string, string> {
  return replicaEnv(id, port, { etcdUrl: etcd.url, redisUrl: redis.url, secret, adminToken: token, leaseTtl: `${ttlMs / 1000}s` });
}

beforeAll(async () => {
  [registry, etcd, redis] = await Promise.all([startDistribution(), startEtcd(), startRedis()]);
  cleanup.add(() => registry.dispose());
  cleanup.add(() => etcd.dispose());
  cleanup.add(() => redis.dispose());
  for (const tag of ['v1', 'v2', 'v3']) {
    const image = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 50_000, seed: `replica-set-${tag}` })] });
    await pushImage(registry.url, 'team/app', tag, image);
    images.push(image);
  }
  await Promise.all([
    startOutpost({ upstreamUrl: registry.url, workers: 1, env: { OUTPOST_NODE_ID: 'solo', OUTPOST_ADMIN_TOKEN: token } }).then((node) => {
      standalone = node;
      cleanup.add(() => node.dispose());
    }),
    ...['n1', 'n2', 'n3'].map(async (id) => {
      const port = await freePort();
      const node = await startOutpost({ upstreamUrl: registry.url, workers: 1, port, env: nodeEnv(id, port) });
      cleanup.add(() => node.dispose());
      nodes.set(id, node);
    }),
  ]);
}, 90_000);
afterAll(() => cleanup.run());

async function clusterStatus(node: OutpostNode): Promise<ClusterStatus> {
  const res = await fetch(`${node.url}/api/v0/meta/cluster_status`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5_000) });
  if (res.status !== 200) throw new Error(`cluster_status answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as ClusterStatus;
}

async function health(node: OutpostNode): Promise<{ status: number; body: { status: string; checks: Record<string, { status: string; detail?: string }> } }> {
  const res = await fetch(`${node.url}/health`, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: (await res.json()) as never };
}

async function metric(node: OutpostNode, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${node.url}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

/** Manifest by tag, then every blob, each checked against its digest. */
async function pull(node: OutpostNode, tag: string, image: Image): Promise<void> {
  const manifest = await fetch(`${node.url}/v2/team/app/manifests/${tag}`, {
    headers: { accept: image.mediaType },
    signal: AbortSignal.timeout(15_000),
  });
  expect(manifest.status).toBe(200);
  expect(sha256(Buffer.from(await manifest.arrayBuffer()))).toBe(image.digest);
  for (const blob of image.blobs) {
    const res = await fetch(`${node.url}/v2/team/app/blobs/${blob.digest}`, { signal: AbortSignal.timeout(15_000) });
    expect(res.status).toBe(200);
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(blob.digest);
  }
}

/** Every given node reports the same leader among them and each of them OK; resolves to that leader. */
async function agreed(ids: string[]): Promise<string> {
  let leader: string | null = null;
  await waitFor(
    async () => {
      const statuses = await Promise.all(ids.map((id) => clusterStatus(nodes.get(id)!)));
      const leaders = new Set(statuses.map((s) => s.leader));
      leader = statuses[0]!.leader;
      return (
        leaders.size === 1 &&
        leader !== null &&
        ids.includes(leader) &&
        statuses.every((s) => ids.every((id) => s.replica_health[id] === 'OK') && Object.keys(s.replicas).sort().join() === [...ids].sort().join())
      );
    },
    { what: `${ids.join(', ')} to agree on their replica set`, timeoutMs: 15_000, intervalMs: 100 },
  );
  return leader!;
}

/** The node's cluster primary and every process it started, all at once (kill -9 of the whole node). */
function killNode(pid: number): void {
  const children = readdirSync('/proc').flatMap((entry) => {
    if (!/^\d+$/.test(entry)) return [];
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      return ppid === pid ? [Number(entry)] : [];
    } catch {
      return [];
    }
  });
  for (const target of [pid, ...children]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

describe('a standalone node', () => {
  it('lists itself alone, as the leader, with no etcd or Redis metrics', async () => {
    const status = await clusterStatus(standalone);
    expect(status.leader).toBe('solo');
    expect(status.replica_health).toEqual({ solo: 'OK' });
    expect(status.current_issues).toEqual([]);
    expect(Object.keys(status.replicas)).toEqual(['solo']);
    expect(status.replicas['solo']?.advertise_url).toBe(standalone.url);
    expect(await metric(standalone, 'outpost_cluster_leader')).toBe(1);
    expect(await metric(standalone, 'outpost_cluster_members')).toBe(1);
    expect(await metric(standalone, 'outpost_etcd_up')).toBeUndefined();
    expect(await metric(standalone, 'outpost_redis_up')).toBeUndefined();
    expect((await health(standalone)).body.checks['cluster']).toBeUndefined();
  });
});

describe('a replica set of three nodes', () => {
  it('lists three OK replicas and the same leader from every node', async () => {
    const leader = await agreed(['n1', 'n2', 'n3']);
    const status = await clusterStatus(nodes.get('n1')!);
    expect(status.current_issues).toEqual([]);
    for (const id of ['n1', 'n2', 'n3']) {
      const replica = status.replicas[id]!;
      expect(replica.advertise_url).toBe(nodes.get(id)!.url);
      expect(replica.version).toBe(JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).version);
      expect(replica.uptime_seconds).toBeGreaterThanOrEqual(0);
      expect(typeof replica.cache_bytes).toBe('number');
      expect(replica.hit_ratio).toBeGreaterThanOrEqual(0);
      expect(Date.now() - Date.parse(replica.last_heartbeat)).toBeLessThan(10_000);
    }
    const leaders = await Promise.all([...nodes.values()].map((node) => metric(node, 'outpost_cluster_leader')));
    expect(leaders.sort()).toEqual([0, 0, 1]);
    expect(await metric(nodes.get(leader)!, 'outpost_cluster_leader')).toBe(1);
    for (const node of nodes.values()) {
      expect(await metric(node, 'outpost_cluster_members')).toBe(3);
      expect(await metric(node, 'outpost_etcd_up')).toBe(1);
      expect(await metric(node, 'outpost_redis_up')).toBe(1);
      const { status: code, body } = await health(node);
      expect(code).toBe(200);
      expect(body.checks['cluster']).toMatchObject({ status: 'ok' });
      expect(body.checks['cluster']?.detail).toContain(`leader ${leader}`);
    }
    // The admin token guards it.
    expect((await fetch(`${nodes.get('n2')!.url}/api/v0/meta/cluster_status`)).status).toBe(401);
  });

  it('refuses to start a node whose id a live replica holds, naming the id', async () => {
    const port = await freePort();
    const dir = await makeTempDir('duplicate');
    cleanup.add(() => removeTempDir(dir));
    const proc = await startProcess(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve'], {
      cwd: repoRoot,
      name: 'outpost-duplicate',
      env: {
        ...nodeEnv('n2', port),
        OUTPOST_HOST: '127.0.0.1',
        OUTPOST_PORT: String(port),
        OUTPOST_UPSTREAM_URL: registry.url,
        OUTPOST_CACHE_DIR: dir,
        OUTPOST_WORKERS: '1',
      },
    });
    cleanup.add(() => proc.stop());
    const exit = await Promise.race([proc.exited, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 20_000).unref())]);
    expect(exit?.code).toBe(1);
    expect(proc.stderr()).toContain('outpost: cannot start: node id "n2" is already used by a live replica');
    expect(proc.stderr()).toContain(`advertising ${nodes.get('n2')!.url}`);
    // It never served.
    expect(await fetch(`http://127.0.0.1:${port}/health`).catch(() => 'refused')).toBe('refused');
    await agreed(['n1', 'n2', 'n3']);
  });

  it('keeps pulling when Redis stops, says so, and recovers by itself when it is back', async () => {
    const node = nodes.get('n1')!;
    await redis.stop();
    try {
      await waitFor(async () => (await metric(node, 'outpost_redis_up')) === 0, { what: 'outpost_redis_up to drop to 0', timeoutMs: 5_000 });
      await pull(node, 'v1', images[0]!);
      const { status, body } = await health(node);
      expect(status).toBe(200);
      expect(body.checks['cluster']?.status).toBe('degraded');
      expect(body.checks['cluster']?.detail).toContain('Redis unreachable');
      const cluster = await clusterStatus(node);
      expect(cluster.current_issues.some((i) => i.description.startsWith('Redis unreachable from n1'))).toBe(true);
    } finally {
      await redis.start();
    }
    await waitFor(async () => (await metric(node, 'outpost_redis_up')) === 1, { what: 'outpost_redis_up back to 1', timeoutMs: 5_000 });
    await waitFor(async () => (await health(node)).body.checks['cluster']?.status === 'ok', { what: 'the cluster check to recover', timeoutMs: 5_000 });
    await pull(node, 'v1', images[0]!);
  });

  it('keeps pulling when etcd stops, degrades without failing, and re-forms the replica set when etcd is back', async () => {
    const node = nodes.get('n2')!;
    await etcd.stop();
    try {
      await waitFor(async () => (await health(node)).body.checks['cluster']?.status === 'degraded', {
        what: '/health to report etcd unreachable',
        timeoutMs: 5_000,
      });
      const { status, body } = await health(node);
      expect(status).toBe(200);
      expect(body.checks['cluster']?.detail).toContain('etcd unreachable');
      expect(await metric(node, 'outpost_etcd_up')).toBe(0);
      expect(await metric(node, 'outpost_cluster_leader')).toBe(0);
      // A cold pull (from the primary) and a warm one.
      await pull(node, 'v2', images[1]!);
      await pull(node, 'v2', images[1]!);
      const cluster = await clusterStatus(node);
      expect(cluster.leader).toBeNull();
      expect(cluster.current_issues[0]).toMatchObject({ critical: true });
      expect(cluster.current_issues[0]?.description).toMatch(/^etcd unreachable from n2 since /);
    } finally {
      await etcd.start();
    }
    const started = Date.now();
    const leader = await agreed(['n1', 'n2', 'n3']);
    console.info(`replica set re-formed ${Date.now() - started} ms after etcd came back, leader ${leader}`);
    for (const n of nodes.values()) expect(await metric(n, 'outpost_etcd_up')).toBe(1);
  });

  it('replaces a leader killed with SIGKILL within the lease TTL, and reports it unreachable', async () => {
    const leader = await agreed(['n1', 'n2', 'n3']);
    const dead = nodes.get(leader)!;
    const survivors = [...nodes.keys()].filter((id) => id !== leader);
    const watcher = nodes.get(survivors[0]!)!;
    const killedAt = Date.now();
    killNode(dead.pid!);
    let newLeaderMs = 0;
    let droppedMs = 0;
    await waitFor(
      async () => {
        const status = await clusterStatus(watcher);
        const now = Date.now() - killedAt;
        if (newLeaderMs === 0 && status.leader !== null && status.leader !== leader) newLeaderMs = now;
        if (droppedMs === 0 && status.replicas[leader] === undefined && status.replica_health[leader]?.startsWith('unreachable')) droppedMs = now;
        return newLeaderMs > 0 && droppedMs > 0;
      },
      { what: `a new leader after ${leader} was killed`, timeoutMs: failoverBoundMs + 5_000, intervalMs: 25 },
    );
    console.info(`SIGKILL of leader ${leader}: new leader after ${newLeaderMs} ms, dropped from replicas after ${droppedMs} ms (TTL ${ttlMs} ms)`);
    expect(newLeaderMs).toBeLessThan(failoverBoundMs);
    expect(droppedMs).toBeLessThan(failoverBoundMs);
    await dead.exited();
    nodes.delete(leader);
    await waitFor(async () => (await clusterStatus(watcher)).replica_health[leader]?.startsWith('unreachable: no heartbeat for') === true, {
      what: 'the dead leader reported unreachable',
      timeoutMs: 5_000,
    });
    const newLeader = await agreed(survivors);
    const status = await clusterStatus(watcher);
    expect(survivors).toContain(newLeader);
    expect(status.current_issues).toContainEqual({ critical: false, description: expect.stringMatching(new RegExp(`^replica ${leader} has no heartbeat for \\d+s$`)) });
    // Pulls go on through the survivors.
    await pull(watcher, 'v3', images[2]!);
  });

  it('hands leadership over well under the TTL when the leader stops gracefully', async () => {
    const ids = [...nodes.keys()];
    const leader = await agreed(ids);
    const other = ids.find((id) => id !== leader)!;
    const stopping = Date.now();
    const stopped = nodes.get(leader)!.stop();
    await waitFor(async () => (await clusterStatus(nodes.get(other)!)).leader === other, {
      what: `${other} to lead after ${leader} stopped`,
      timeoutMs: ttlMs,
      intervalMs: 20,
    });
    const handoverMs = Date.now() - stopping;
    console.info(`SIGTERM of leader ${leader}: ${other} leads after ${handoverMs} ms`);
    expect(handoverMs).toBeLessThan(ttlMs / 2);
    await stopped;
    expect((await nodes.get(leader)!.exited()).code).toBe(0);
    const logs = nodes.get(leader)!.logs();
    expect(logs.some((l) => l['msg'] === 'resigned from the leader election')).toBe(true);
    expect(logs.some((l) => l['msg'] === 'left the replica set')).toBe(true);
    // A replica that left on purpose is not reported missing.
    await waitFor(async () => (await clusterStatus(nodes.get(other)!)).replica_health[leader] === undefined, {
      what: `${leader} gone from replica_health`,
      timeoutMs: 5_000,
    });
  });
});
