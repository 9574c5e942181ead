/**
 * Warm request rates (autocannon, 64 keep-alive connections, same settings
 * for every target): HEAD and GET of a manifest by tag, GET of a ~600 B
 * config blob, GET of ~4 KiB layers across the tiny repositories.
 */
import { openCpuWindow } from '../cpu.ts';
import { runLoad } from '../load.ts';
import type { ScenarioName } from '../options.ts';
import { manifestAccept } from '../seed.ts';
import { warmServers } from '../targets.ts';
import { rotate, round1, type Scenario, type ScenarioContext } from './scenario.ts';
import { warmPaths } from './warm.ts';

interface RateSpec {
  name: ScenarioName;
  title: string;
  method: 'GET' | 'HEAD';
  paths(ctx: ScenarioContext): string[];
  headers?: Record<string, string>;
}

function rateScenario(spec: RateSpec): Scenario {
  return {
    name: spec.name,
    title: spec.title,
    async run(ctx) {
      const { targets, options } = ctx;
      const paths = spec.paths(ctx);
      const servers = warmServers(targets, options.anchors);
      const load = (url: string, durationS: number) =>
        runLoad({ url, method: spec.method, paths, headers: spec.headers ?? {}, connections: options.connections, durationS });
      for (const server of servers) {
        await warmPaths(targets.primary, server.url, paths, spec.headers ?? {});
        await load(server.url, options.warmupS);
      }
      for (let round = 0; round < options.rounds; round++) {
        for (const server of rotate(servers, round)) {
          const pid = server.pid();
          const cpu = pid === undefined ? undefined : openCpuWindow(pid);
          const result = await load(server.url, options.durationS);
          const cpuSeconds = cpu?.stop();
          const failures = result.non2xx + result.errors + result.timeouts;
          if (failures > 0) ctx.log(`  ! ${server.name}: ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts (${JSON.stringify(result.statusCodes)})`);
          ctx.log(`  round ${round + 1} ${server.name.padEnd(8)} ${Math.round(result.requestsPerSec)} req/s  p50 ${result.latencyP50Ms} ms  p99 ${result.latencyP99Ms} ms`);
          ctx.record({
            metric: 'req/s',
            target: server.name,
            round,
            value: result.requestsPerSec,
            better: 'higher',
            detail: {
              ok: result.ok,
              non2xx: result.non2xx,
              errors: result.errors,
              timeouts: result.timeouts,
              latencyP50Ms: result.latencyP50Ms,
              latencyP99Ms: result.latencyP99Ms,
              durationS: result.durationS,
              cpuSeconds: cpuSeconds === undefined ? undefined : round1(cpuSeconds, 2),
              cpuUsPerRequest: cpuSeconds === undefined || result.ok === 0 ? undefined : round1((cpuSeconds * 1e6) / result.ok),
            },
          });
          if (cpuSeconds !== undefined && result.ok > 0) {
            ctx.record({ metric: 'server CPU µs/req', target: server.name, round, value: (cpuSeconds * 1e6) / result.ok, better: 'lower' });
          }
        }
      }
    },
  };
}

const manifestPath = (ctx: ScenarioContext): string[] => [`/v2/${ctx.seed.app.repo}/manifests/${ctx.seed.app.tag}`];

export const tagHead = rateScenario({
  name: 'tag-head',
  title: 'warm HEAD of a manifest by tag, 64 connections',
  method: 'HEAD',
  paths: manifestPath,
  headers: { accept: manifestAccept },
});

export const tagGet = rateScenario({
  name: 'tag-get',
  title: 'warm GET of a manifest by tag, 64 connections',
  method: 'GET',
  paths: manifestPath,
  headers: { accept: manifestAccept },
});

export const configBlob = rateScenario({
  name: 'config-blob',
  title: 'warm GET of a ~600 B config blob, 64 connections',
  method: 'GET',
  paths: (ctx) => {
    const image = ctx.seed.tiny[0]!;
    return [`/v2/${image.repo}/blobs/${image.config.digest}`];
  },
});

export const layers4k = rateScenario({
  name: 'layers-4k',
  title: 'warm GET of ~4 KiB layers across the tiny repositories, 64 connections',
  method: 'GET',
  paths: (ctx) => ctx.seed.tiny.map((image) => `/v2/${image.repo}/blobs/${image.layers[0]!.digest}`),
});
