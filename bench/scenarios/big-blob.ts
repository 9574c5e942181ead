/**
 * Warm GET of the big blob: 1 client, or 8 concurrent clients, each doing a
 * few sequential GETs on a keep-alive connection and discarding the bytes.
 * Reports MB/s (10^6 bytes) and the server's CPU-seconds per GB served.
 */
import { parallelGets } from '../blob-clients.ts';
import { openCpuWindow } from '../cpu.ts';
import type { ScenarioName } from '../options.ts';
import { warmServers } from '../targets.ts';
import { rotate, round1, type Scenario } from './scenario.ts';
import { warmBlob } from './warm.ts';

function bigBlobScenario(name: ScenarioName, clients: 1 | 8): Scenario {
  return {
    name,
    title: `warm GET of the big blob, ${clients} client${clients === 1 ? '' : 's'} (MB/s, server CPU-s per GB)`,
    async run(ctx) {
      const { targets, seed, options } = ctx;
      const path = `/v2/${seed.app.repo}/blobs/${seed.big.digest}`;
      const getsPerClient = clients === 1 ? options.bigGetsPerClient.one : options.bigGetsPerClient.eight;
      const servers = warmServers(targets, options.anchors);
      for (const server of servers) await warmBlob(targets.primary, server.url, path, seed.big.digest);
      for (let round = 0; round < options.rounds; round++) {
        for (const server of rotate(servers, round)) {
          const pid = server.pid();
          const cpu = pid === undefined ? undefined : openCpuWindow(pid);
          const result = await parallelGets(server.url, path, { clients, getsPerClient, hash: false });
          const cpuSeconds = cpu?.stop();
          const bad = result.outcomes.filter((o) => o.status !== 200 || o.bytes !== seed.big.size);
          if (bad.length > 0) throw new Error(`${server.name}: ${bad.length} of ${result.outcomes.length} GETs of the big blob failed: ${JSON.stringify(bad[0])}`);
          const mbPerSec = result.bytes / 1e6 / (result.wallMs / 1000);
          const cpuSecondsPerGb = cpuSeconds === undefined ? undefined : cpuSeconds / (result.bytes / 1e9);
          ctx.log(`  round ${round + 1} ${server.name.padEnd(8)} ${Math.round(mbPerSec)} MB/s  ${cpuSecondsPerGb?.toFixed(2)} CPU-s/GB`);
          ctx.record({
            metric: 'MB/s',
            target: server.name,
            round,
            value: mbPerSec,
            better: 'higher',
            detail: { bytes: result.bytes, wallMs: round1(result.wallMs), cpuSeconds: cpuSeconds === undefined ? undefined : round1(cpuSeconds, 2), cpuSecondsPerGb: cpuSecondsPerGb === undefined ? undefined : round1(cpuSecondsPerGb, 3) },
          });
          if (cpuSecondsPerGb !== undefined) {
            ctx.record({ metric: 'server CPU-s/GB', target: server.name, round, value: cpuSecondsPerGb, better: 'lower' });
          }
        }
      }
    },
  };
}

export const bigBlob1 = bigBlobScenario('big-blob-1', 1);
export const bigBlob8 = bigBlobScenario('big-blob-8', 8);
