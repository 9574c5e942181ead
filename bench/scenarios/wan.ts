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

async function measureOverWan(ctx: ScenarioContext, wanHost: string, outpost: OutpostNode): Promise<void> {
  const { targets, seed, options } = ctx;
  const image = seed.app;
  const blobs = [image.config.digest, ...image.layers.map((l) => l.digest)];
  // Each entry runs as a unit: the warm pull directly follows its cold pull.
  const sequences: PullStep[][] = [
    [{ name: 'direct (WAN)', run: () => pullImage(wanHost, image) }],
    [
      {
        name: 'outpost cold',
        run: async () => {
          await resetOutpost(outpost);
          return pullImage(outpost.host, image);
        },
      },
      { name: 'outpost warm', run: () => pullImage(outpost.host, image) },
    ],
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
    const r = await measureColdConcurrency(
      targets.primary,
      { name: 'outpost (WAN)', url: () => outpost.url, pid: () => outpost.pid, reset: () => resetOutpost(outpost) },
      `/v2/${image.repo}/blobs/${seed.big.digest}`,
      seed.big,
      options.concurrentColdClients,
    );
    recordColdConcurrency(ctx, 'outpost (WAN)', round, r);
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
    let outpost: OutpostNode | undefined;
    try {
      const wanHost = relay.host;
      ctx.log(`  WAN link ${wanHost} → primary: +${latencyMs} ms each way, ${mbit} Mbit/s each direction`);
      outpost = await startOutpost({ upstreamUrl: relay.url, workers: 2, env: outpostBenchEnv });
      const started = outpost;
      ctx.cleanup.add(() => started.dispose());
      ctx.watch({ target: 'outpost (WAN)', rootPid: () => started.pid, rootRole: 'primary', childRole: 'worker' });
      await measureOverWan(ctx, wanHost, outpost);
    } finally {
      await outpost?.dispose();
      await relay.stop();
    }
  },
};
