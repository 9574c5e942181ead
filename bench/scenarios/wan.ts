/**
 * The remote office: the primary behind a simulated WAN link
 * (bench/wan-relay.ts: added one-way latency and a bandwidth cap shared by
 * all connections), an Outpost next to the clients. Cold and warm skopeo
 * pulls through Outpost against pulling straight over the link, and N
 * concurrent cold GETs of the big blob through Outpost against one.
 */
import { startOutpost, type OutpostNode } from '../../test/support/outpost.ts';
import { outpostBenchEnv, resetOutpost } from '../targets.ts';
import { startWanLink } from '../wan-link.ts';
import { measureColdConcurrency, recordColdConcurrency } from './cold-concurrent.ts';
import { pullImage, upstreamCost, type PullResult } from './pull.ts';
import { rotate, type Scenario, type ScenarioContext } from './scenario.ts';

interface PullStep {
  name: string;
  run: () => Promise<PullResult>;
}

interface WanOutpost {
  name: string;
  node: OutpostNode;
}

async function measureOverWan(ctx: ScenarioContext, wanHost: string, outposts: readonly WanOutpost[]): Promise<void> {
  const { targets, seed, options } = ctx;
  const image = seed.app;
  const blobs = [image.config.digest, ...image.layers.map((l) => l.digest)];
  // Each entry runs as a unit: the warm pull directly follows its cold pull.
  const sequences: PullStep[][] = [
    ...(options.anchors ? [[{ name: 'direct (WAN)', run: () => pullImage(wanHost, image) }]] : []),
    ...outposts.map(({ name, node }) => [
      {
        name: `${name} cold`,
        run: async () => {
          await resetOutpost(node);
          return pullImage(node.host, image);
        },
      },
      { name: `${name} warm`, run: () => pullImage(node.host, image) },
    ]),
  ];
  for (let round = 0; round < options.rounds; round++) {
    for (const sequence of rotate(sequences, round)) {
      for (const step of sequence) {
        await targets.primary.flushLog();
        targets.primary.clearRequests();
        const result = await step.run();
        const cost = await upstreamCost(targets.primary, blobs);
        ctx.log(`  round ${round + 1} ${step.name.padEnd(13)} ${result.seconds.toFixed(2)} s  primary sent ${(cost.blobBytes / 2 ** 20).toFixed(1)} MiB`);
        ctx.record({ metric: 'pull s', target: step.name, round, value: result.seconds, better: 'lower', detail: { ...cost } });
        ctx.record({ metric: 'MiB from primary', target: step.name, round, value: cost.blobBytes / 2 ** 20, better: 'lower' });
      }
    }
    for (const { name, node } of rotate(outposts, round)) {
      const target = `${name} (WAN)`;
      const r = await measureColdConcurrency(
        targets.primary,
        { name: target, url: () => node.url, pid: () => node.pid, reset: () => resetOutpost(node) },
        `/v2/${image.repo}/blobs/${seed.big.digest}`,
        seed.big,
        options.concurrentColdClients,
      );
      recordColdConcurrency(ctx, target, round, r);
    }
  }
}

export const wan: Scenario = {
  name: 'wan',
  title: 'remote office: primary behind a simulated WAN link',
  async run(ctx) {
    const { targets, options } = ctx;
    const { latencyMs, mbit } = options.wan;
    const relay = await startWanLink(targets.primary.host, { latencyMs, mbit });
    ctx.cleanup.add(() => relay.stop());
    const outposts: WanOutpost[] = [];
    try {
      const wanHost = relay.host;
      ctx.log(`  WAN link ${wanHost} → primary: +${latencyMs} ms each way, ${mbit} Mbit/s each direction`);
      // One Outpost behind the link per tree under measurement (two with --compare).
      for (const { name, root } of targets.outposts) {
        const node = await startOutpost({ upstreamUrl: relay.url, workers: 2, env: outpostBenchEnv, root });
        ctx.cleanup.add(() => node.dispose());
        outposts.push({ name, node });
        ctx.watch({ target: `${name} (WAN)`, rootPid: () => node.pid, rootRole: 'primary', childRole: 'worker' });
      }
      await measureOverWan(ctx, wanHost, outposts);
    } finally {
      for (const { node } of outposts) await node.dispose();
      await relay.stop();
    }
  },
};
