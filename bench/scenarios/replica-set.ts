/**
 * A remote office with three mirrors behind one simulated WAN link
 * (bench/wan-link.ts): a replica set of 3 Outpost nodes sharing a real etcd
 * and a real redis-server (1 worker each), side by side with 3 distribution
 * proxies (each its own storage), on the same link, in the same run,
 * alternating every round.
 *
 * For each trio, on empty storage:
 *
 *   1 cold      one skopeo pull through the first node (a) alone
 *   a again     the same pull again through a (warm: its local disk)
 *   b after a   the same pull through b, which is empty while a holds the
 *               image (Outpost: the peer-fill warm-up; proxies: nothing to share)
 *   3 at once   emptied again, one pull through each node at the same moment;
 *               wall time until the last one is done
 *
 * Bytes over the WAN are what the relay delivered towards the office
 * (headers and manifests included), read once the link has gone quiet;
 * blob GETs and blob bytes come from the primary's access log.
 */
import type { DistributionRegistry } from '../../test/support/distribution.ts';
import { startDistribution } from '../../test/support/distribution.ts';
import { openCpuWindow } from '../cpu.ts';
import { startCoordination, startReplicaSet, type BenchReplicaSet, type Coordination } from '../replica-set.ts';
import { resetProxy } from '../targets.ts';
import { startWanLink, type WanLink } from '../wan-link.ts';
import { pullImage, upstreamCost, type PullResult, type UpstreamCost } from './pull.ts';
import { rotate, round1, type Scenario, type ScenarioContext } from './scenario.ts';

export const replicaSetSize = 3;
export const outpostTrio = `outpost ×${replicaSetSize}`;
export const proxyTrio = `proxy ×${replicaSetSize}`;

const MiB = 2 ** 20;

/** Three mirrors of one kind, reachable over loopback from the office's clients. */
interface Trio {
  name: string;
  hosts(): string[];
  /** Root pid of each mirror's process tree (for CPU time). */
  pids(): Array<number | undefined>;
  /** Empty every mirror's storage (and, for a replica set, its shared state). */
  reset(): Promise<void>;
}

interface StepCost<T> {
  result: T;
  /** Bytes the link delivered towards the office / towards the primary. */
  wanDown: number;
  wanUp: number;
  upstream: UpstreamCost;
}

/** Runs `action` between two quiet points of the link, and reads what it cost. */
async function costOf<T>(link: WanLink, primary: DistributionRegistry, blobs: readonly string[], action: () => Promise<T>): Promise<StepCost<T>> {
  const before = await link.quiet();
  await primary.flushLog();
  primary.clearRequests();
  const result = await action();
  const after = await link.quiet();
  const upstream = await upstreamCost(primary, blobs);
  return { result, wanDown: after.down - before.down, wanUp: after.up - before.up, upstream };
}

function maxGetsPerBlob(cost: UpstreamCost): number {
  return Math.max(0, ...Object.values(cost.getsPerBlob));
}

async function measureTrio(ctx: ScenarioContext, link: WanLink, trio: Trio, round: number): Promise<void> {
  const { targets, seed } = ctx;
  const image = seed.app;
  const blobs = [image.config.digest, ...image.layers.map((l) => l.digest)];
  const imageBytes = image.config.size + image.layers.reduce((sum, l) => sum + l.size, 0);
  const primary = targets.primary;
  const name = trio.name;
  const record = (metric: string, value: number, better: 'higher' | 'lower', detail?: Record<string, unknown>): void =>
    ctx.record({ metric, target: name, round, value, better, ...(detail === undefined ? {} : { detail }) });
  const line = (what: string, seconds: number, cost: StepCost<unknown>): void =>
    ctx.log(
      `  round ${round + 1} ${name.padEnd(10)} ${what.padEnd(10)} ${seconds.toFixed(2)} s  WAN ${(cost.wanDown / MiB).toFixed(1)} MiB  ` +
        `primary sent ${(cost.upstream.blobBytes / MiB).toFixed(1)} MiB in ${cost.upstream.blobGets} blob GETs (per blob max ${maxGetsPerBlob(cost.upstream)})`,
    );
  const costDetail = (cost: StepCost<unknown>): Record<string, unknown> => ({
    wanDownBytes: cost.wanDown,
    wanUpBytes: cost.wanUp,
    imageBytes,
    ...cost.upstream,
  });

  // 1 cold pull through one node of an empty trio, then the same node again, then its neighbour.
  await trio.reset();
  const [a, b] = trio.hosts() as [string, string];
  const single = await costOf(link, primary, blobs, () => pullImage(a, image));
  line('1 cold', single.result.seconds, single);
  record('1 cold: pull s', single.result.seconds, 'lower', costDetail(single));
  record('1 cold: MiB over the WAN', single.wanDown / MiB, 'lower');

  const again = await costOf(link, primary, blobs, () => pullImage(a, image));
  line('a again', again.result.seconds, again);
  record('a again (warm): MB/s', imageBytes / 1e6 / again.result.seconds, 'higher', { seconds: round1(again.result.seconds, 3), ...costDetail(again) });

  const after = await costOf(link, primary, blobs, () => pullImage(b, image));
  line('b after a', after.result.seconds, after);
  record('b after a: pull s', after.result.seconds, 'lower', costDetail(after));
  record('b after a: MB/s', imageBytes / 1e6 / after.result.seconds, 'higher');
  record('b after a: MiB over the WAN', after.wanDown / MiB, 'lower');
  record('b after a: blob MiB from primary', after.upstream.blobBytes / MiB, 'lower');

  // One pull through each node at the same moment, on an emptied trio.
  await trio.reset();
  const pids = trio.pids();
  const windows = pids.map((pid) => (pid === undefined ? undefined : openCpuWindow(pid)));
  const together = await costOf(link, primary, blobs, async () => {
    const started = performance.now();
    const pulls: PullResult[] = await Promise.all(trio.hosts().map((host) => pullImage(host, image)));
    return { seconds: (performance.now() - started) / 1000, each: pulls.map((p) => round1(p.seconds, 3)) };
  });
  const cpuSeconds = windows.reduce((sum, w) => sum + (w?.stop() ?? 0), 0);
  const n = trio.hosts().length;
  line(`${n} at once`, together.result.seconds, together);
  ctx.log(`  round ${round + 1} ${name.padEnd(10)} ${`${n} at once`.padEnd(10)} each pull: ${together.result.each.map((s) => `${s.toFixed(2)} s`).join(', ')}; ÷ 1 cold ${(together.result.seconds / single.result.seconds).toFixed(2)}×`);
  record(`${n} at once: pull s (until the last)`, together.result.seconds, 'lower', { eachS: together.result.each, ...costDetail(together), mirrorsCpuSeconds: round1(cpuSeconds, 2) });
  record(`${n} at once ÷ 1 cold`, together.result.seconds / single.result.seconds, 'lower');
  record(`${n} at once: MiB over the WAN`, together.wanDown / MiB, 'lower');
  record(`${n} at once: WAN bytes ÷ image`, together.wanDown / imageBytes, 'lower', { imageMiB: round1(imageBytes / MiB) });
  record(`${n} at once: GETs per blob (max)`, maxGetsPerBlob(together.upstream), 'lower', { getsPerBlob: together.upstream.getsPerBlob });
  record(`${n} at once: mirrors' CPU-s (all ${n})`, cpuSeconds, 'lower');
}

export const replicaSet: Scenario = {
  name: 'replica-set',
  title: `remote office with ${replicaSetSize} mirrors behind one WAN link: an Outpost replica set (etcd + Redis, 1 worker each) vs ${replicaSetSize} distribution proxies`,
  async run(ctx) {
    const { targets, options } = ctx;
    const { latencyMs, mbit } = options.wan;
    const link = await startWanLink(targets.primary.host, { latencyMs, mbit });
    ctx.cleanup.add(() => link.stop());
    const owned: Array<() => Promise<void>> = [];
    const add = (dispose: () => Promise<void>): void => {
      owned.push(dispose);
      ctx.cleanup.add(dispose);
    };
    let current: BenchReplicaSet | undefined;
    try {
      ctx.log(`  WAN link ${link.host} → primary: +${latencyMs} ms each way, ${mbit} Mbit/s each direction, shared by every mirror`);
      const coordination: Coordination = await startCoordination(add);
      ctx.log(`  etcd ${coordination.etcd.url} (pid ${coordination.etcd.pid}), redis-server ${coordination.redis.url} (pid ${coordination.redis.pid})`);
      const proxies: DistributionRegistry[] = [];
      for (let i = 0; i < replicaSetSize; i++) {
        const proxy = await startDistribution({ proxyRemoteUrl: link.url });
        add(() => proxy.dispose());
        proxies.push(proxy);
      }
      ctx.log(`  ${proxyTrio}: ${proxies.map((p) => `${p.url} (pid ${p.pid})`).join(', ')} → WAN link`);
      let sets = 0;
      const outposts: Trio = {
        name: outpostTrio,
        hosts: () => current?.nodes.map((node) => node.host) ?? [],
        pids: () => current?.nodes.map((node) => node.pid) ?? [],
        async reset() {
          await current?.dispose();
          current = undefined;
          sets += 1;
          current = await startReplicaSet({
            upstreamUrl: link.url,
            coordination,
            clusterName: `bench-rs-${sets}`,
            size: replicaSetSize,
            add,
          });
          ctx.log(`  ${outpostTrio}: cluster ${current.clusterName}, ${current.nodes.map((n, i) => `${current!.ids[i]} ${n.url} (pid ${n.pid})`).join(', ')}, 1 worker each, formed`);
        },
      };
      const proxyTrioWay: Trio = {
        name: proxyTrio,
        hosts: () => proxies.map((p) => p.host),
        pids: () => proxies.map((p) => p.pid),
        reset: async () => {
          await Promise.all(proxies.map((p) => resetProxy(p)));
        },
      };
      for (let i = 0; i < replicaSetSize; i++) {
        ctx.watch({ target: outpostTrio, rootPid: () => current?.nodes[i]?.pid, rootRole: 'primary', childRole: 'worker' });
        ctx.watch({ target: proxyTrio, rootPid: () => proxies[i]!.pid, rootRole: 'process', childRole: 'child' });
      }
      for (let round = 0; round < options.rounds; round++) {
        for (const trio of rotate([outposts, proxyTrioWay], round)) await measureTrio(ctx, link, trio, round);
      }
    } finally {
      await current?.dispose();
      for (const dispose of owned.reverse()) await dispose().catch(() => undefined);
      await link.stop();
    }
  },
};
