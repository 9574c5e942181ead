/**
 * Cold pull of the whole app image with skopeo: straight from the primary,
 * through the Node relay (node-relay.ts: the least a Node mirror does), and
 * through each mirror started with empty storage; with the bytes each
 * mirror fetched from the primary and how many times it fetched each blob.
 *
 * Also the CPU time of everything the pull ran on — skopeo, the primary and
 * the mirror — and the least wall time that much work can take on this
 * machine's cores (CPU-s ÷ cores): on a loopback link the three share the
 * machine, so a mirror's cost shows up in the pull's time, and the bound
 * says how close to the direct pull any mirror could come here.
 */
import os from 'node:os';
import { openCpuWindow } from '../cpu.ts';
import { clockTicksPerSecond, reapedChildTicks } from '../process-tree.ts';
import { coldMirrors } from '../targets.ts';
import { upstreamCost, pullImage } from './pull.ts';
import { rotate, round1, type Scenario } from './scenario.ts';

export const coldPull: Scenario = {
  name: 'cold-pull',
  title: 'cold pull of the app image with skopeo (seconds; bytes fetched from the primary)',
  async run(ctx) {
    const { targets, seed, options } = ctx;
    const image = seed.app;
    const blobs = [image.config.digest, ...image.layers.map((l) => l.digest)];
    const imageBytes = image.config.size + image.layers.reduce((sum, l) => sum + l.size, 0);
    const direct = { name: 'direct', host: () => targets.primary.host, pid: (): number | undefined => undefined, reset: async () => undefined };
    const { relay } = targets;
    const floor = { name: 'relay', host: () => relay.host, pid: () => relay.pid, reset: () => relay.reset() };
    const ways = [...(options.anchors ? [direct, floor] : []), ...coldMirrors(targets, options.anchors)];
    for (let round = 0; round < options.rounds; round++) {
      for (const way of rotate(ways, round)) {
        await way.reset();
        await targets.primary.flushLog();
        targets.primary.clearRequests();
        const pid = way.pid();
        const cpu = pid === undefined ? undefined : openCpuWindow(pid);
        const primaryPid = targets.primary.pid;
        const primaryCpu = primaryPid === undefined ? undefined : openCpuWindow(primaryPid);
        const clientTicks = reapedChildTicks();
        const pull = await pullImage(way.host(), image);
        const cpuSeconds = cpu?.stop();
        const clientSeconds = (reapedChildTicks() - clientTicks) / clockTicksPerSecond;
        const primarySeconds = primaryCpu?.stop() ?? 0;
        const totalSeconds = clientSeconds + primarySeconds + (cpuSeconds ?? 0);
        const cost = await upstreamCost(targets.primary, blobs);
        const perBlob = Object.values(cost.getsPerBlob);
        const maxGets = Math.max(...perBlob);
        const minGets = Math.min(...perBlob);
        ctx.log(
          `  round ${round + 1} ${way.name.padEnd(8)} ${pull.seconds.toFixed(2)} s  primary sent ${(cost.blobBytes / 2 ** 20).toFixed(1)} MiB in ${cost.blobGets} blob GETs (per blob ${minGets}–${maxGets})`,
        );
        ctx.record({ metric: 'pull s', target: way.name, round, value: pull.seconds, better: 'lower', detail: { ...cost, imageBytes, mirrorCpuSeconds: cpuSeconds } });
        if (cpuSeconds !== undefined) ctx.record({ metric: 'mirror CPU-s', target: way.name, round, value: cpuSeconds, better: 'lower' });
        ctx.record({ metric: 'skopeo + primary CPU-s', target: way.name, round, value: clientSeconds + primarySeconds, better: 'lower' });
        ctx.record({ metric: 'all CPU-s ÷ cores (least pull s)', target: way.name, round, value: totalSeconds / os.availableParallelism(), better: 'lower' });
        ctx.record({ metric: 'MiB from primary', target: way.name, round, value: cost.blobBytes / 2 ** 20, better: 'lower' });
        ctx.record({ metric: 'fetches per blob (max)', target: way.name, round, value: maxGets, better: 'lower', detail: { min: minGets, imageMiB: round1(imageBytes / 2 ** 20) } });
      }
    }
  },
};
