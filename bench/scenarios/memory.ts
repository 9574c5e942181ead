/**
 * Bounded memory (issue 12, item 5): many clients of the same cold big blob,
 * on a mirror with empty storage, and what each server process holds while
 * they are served and once they are gone.
 *
 *   cold-200   200 concurrent GETs of the cold 256 MiB blob, every byte read as fast as it comes
 *   slow-200   200 concurrent GETs of the cold blob by clients that read 64 KiB/s each, and hang up
 *              after 20 s (a 256 MiB body at that rate would take over an hour)
 *
 * Per mirror and round: emptied and restarted, idle RSS of every process
 * (once it has settled), peak RSS while the clients run (sampled every
 * 50 ms), and RSS after (once every process is back within idle + 64 MiB,
 * or after 10 s: what it still holds then). "main process" is Outpost's
 * cluster primary and the proxy's one process; "largest worker" is the
 * Outpost worker with the highest figure.
 */
import type { DistributionRegistry } from '../../test/support/distribution.ts';
import { parallelGets, slowGets } from '../blob-clients.ts';
import { processTrees, readComm, readRssKiB } from '../process-tree.ts';
import { coldMirrors, type ColdMirror } from '../targets.ts';
import { upstreamCost } from './pull.ts';
import { rotate, round1, type Scenario, type ScenarioContext } from './scenario.ts';

/** Issue 12's bound: every process within its idle RSS + this, during and after. */
export const memoryHeadroomMiB = 64;
const settleTimeoutMs = 10_000;

interface ProcessRss {
  pid: number;
  main: boolean;
  mib: number;
}

function snapshot(rootPid: number | undefined): ProcessRss[] {
  if (rootPid === undefined) return [];
  const out: ProcessRss[] = [];
  for (const pid of processTrees([rootPid]).get(rootPid) ?? []) {
    const kib = readRssKiB(pid);
    if (kib !== undefined && !isEsbuild(pid)) out.push({ pid, main: pid === rootPid, mib: kib / 1024 });
  }
  return out;
}

/** tsx's esbuild service: a helper of a node process, not part of the server. */
const isEsbuild = (pid: number): boolean => readComm(pid) === 'esbuild';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Idle: sampled until two readings 500 ms apart agree within 1 MiB per process (at most 10 s). */
async function settledIdle(rootPid: number | undefined): Promise<Map<number, ProcessRss>> {
  let last = snapshot(rootPid);
  for (let i = 0; i < 20; i++) {
    await sleep(500);
    const now = snapshot(rootPid);
    const stable = now.length === last.length && now.every((p) => Math.abs(p.mib - (last.find((q) => q.pid === p.pid)?.mib ?? Infinity)) < 1);
    last = now;
    if (stable) break;
  }
  return new Map(last.map((p) => [p.pid, p]));
}

interface PeakSampler {
  stop(): Map<number, number>;
}

function samplePeaks(rootPid: number | undefined, intervalMs = 50): PeakSampler {
  const peaks = new Map<number, number>();
  const sample = (): void => {
    for (const p of snapshot(rootPid)) peaks.set(p.pid, Math.max(peaks.get(p.pid) ?? 0, p.mib));
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peaks;
    },
  };
}

/** After: sampled until every process idle at the start is within idle + headroom again (at most 10 s). */
async function settledAfter(rootPid: number | undefined, idle: Map<number, ProcessRss>): Promise<{ after: Map<number, number>; settleMs: number }> {
  const started = Date.now();
  let after = new Map<number, number>();
  for (;;) {
    after = new Map(snapshot(rootPid).map((p) => [p.pid, p.mib]));
    const within = [...idle.values()].every((p) => (after.get(p.pid) ?? 0) <= p.mib + memoryHeadroomMiB);
    if (within || Date.now() - started >= settleTimeoutMs) return { after, settleMs: Date.now() - started };
    await sleep(250);
  }
}

export interface MemoryFigures {
  idle: Map<number, ProcessRss>;
  peak: Map<number, number>;
  after: Map<number, number>;
  settleMs: number;
}

/** The rows of one mirror in one round. */
export function memoryRows(f: MemoryFigures): Array<{ metric: string; value: number }> {
  const rows: Array<{ metric: string; value: number }> = [];
  const processes = [...f.idle.values()];
  const main = processes.find((p) => p.main);
  const workers = processes.filter((p) => !p.main);
  if (main) {
    rows.push({ metric: 'main process idle MiB', value: main.mib });
    rows.push({ metric: 'main process peak MiB', value: f.peak.get(main.pid) ?? main.mib });
    rows.push({ metric: 'main process after MiB', value: f.after.get(main.pid) ?? Number.NaN });
  }
  if (workers.length > 0) {
    rows.push({ metric: 'largest worker idle MiB', value: Math.max(...workers.map((w) => w.mib)) });
    rows.push({ metric: 'largest worker peak MiB', value: Math.max(...workers.map((w) => f.peak.get(w.pid) ?? w.mib)) });
    rows.push({ metric: 'largest worker after MiB', value: Math.max(...workers.map((w) => f.after.get(w.pid) ?? Number.NaN)) });
  }
  rows.push({ metric: 'worst peak − idle MiB', value: Math.max(...processes.map((p) => (f.peak.get(p.pid) ?? p.mib) - p.mib)) });
  rows.push({ metric: 'worst after − idle MiB', value: Math.max(...processes.map((p) => (f.after.get(p.pid) ?? Number.NaN) - p.mib)) });
  return rows;
}

async function measureMemory(
  primary: DistributionRegistry,
  mirror: ColdMirror,
  digest: string,
  clients: (url: string) => Promise<Array<{ metric: string; value: number; better: 'higher' | 'lower' }>>,
): Promise<{ figures: MemoryFigures; extra: Array<{ metric: string; value: number; better: 'higher' | 'lower' }>; upstreamGets: number }> {
  await mirror.reset();
  await fetch(`${mirror.url()}/v2/`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.arrayBuffer());
  const idle = await settledIdle(mirror.pid());
  await primary.flushLog();
  primary.clearRequests();
  const sampler = samplePeaks(mirror.pid());
  let peak = new Map<number, number>();
  let extra: Array<{ metric: string; value: number; better: 'higher' | 'lower' }>;
  try {
    extra = await clients(mirror.url());
  } finally {
    peak = sampler.stop();
  }
  const { after, settleMs } = await settledAfter(mirror.pid(), idle);
  const upstreamGets = (await upstreamCost(primary, [digest])).getsPerBlob[digest] ?? 0;
  return { figures: { idle, peak, after, settleMs }, extra, upstreamGets };
}

function record(ctx: ScenarioContext, target: string, round: number, r: Awaited<ReturnType<typeof measureMemory>>): void {
  const rows = memoryRows(r.figures);
  const get = (metric: string): string => round1(rows.find((x) => x.metric === metric)?.value ?? Number.NaN, 0).toString();
  ctx.log(
    `  round ${round + 1} ${target.padEnd(12)} main ${get('main process idle MiB')}→${get('main process peak MiB')}→${get('main process after MiB')} MiB` +
      (r.figures.idle.size > 1 ? `, largest worker ${get('largest worker idle MiB')}→${get('largest worker peak MiB')}→${get('largest worker after MiB')} MiB` : '') +
      ` (settled in ${(r.figures.settleMs / 1000).toFixed(1)} s), ${r.upstreamGets} upstream GETs; ` +
      r.extra.map((e) => `${e.metric} ${round1(e.value, 2)}`).join(', '),
  );
  const perProcess = [...r.figures.idle.values()].map((p) => ({
    pid: p.pid,
    role: p.main ? 'main' : 'worker',
    idleMiB: round1(p.mib),
    peakMiB: round1(r.figures.peak.get(p.pid) ?? Number.NaN),
    afterMiB: round1(r.figures.after.get(p.pid) ?? Number.NaN),
  }));
  rows.forEach((row, i) =>
    ctx.record({ metric: row.metric, target, round, value: row.value, better: 'lower', ...(i === 0 ? { detail: { perProcess, settleMs: r.figures.settleMs } } : {}) }),
  );
  ctx.record({ metric: 'upstream GETs', target, round, value: r.upstreamGets, better: 'lower' });
  for (const e of r.extra) ctx.record({ metric: e.metric, target, round, value: e.value, better: e.better });
}

export const cold200: Scenario = {
  name: 'cold-200',
  title: '200 concurrent clients of the same cold big blob: RSS per process, idle → peak → after',
  async run(ctx) {
    const { targets, seed, options } = ctx;
    const path = `/v2/${seed.app.repo}/blobs/${seed.big.digest}`;
    const n = options.memoryClients;
    for (let round = 0; round < options.memoryRounds; round++) {
      for (const mirror of rotate(coldMirrors(targets, options.anchors), round)) {
        const r = await measureMemory(targets.primary, mirror, seed.big.digest, async (url) => {
          const result = await parallelGets(url, path, { clients: n, getsPerClient: 1, hash: false });
          const complete = result.outcomes.filter((o) => o.status === 200 && o.bytes === seed.big.size).length;
          const bad = result.outcomes.find((o) => o.status !== 200 || o.bytes !== seed.big.size);
          if (bad) ctx.log(`  ! ${mirror.name}: ${n - complete} of ${n} GETs incomplete, e.g. ${JSON.stringify(bad)}`);
          return [
            { metric: `${n} GETs s`, value: result.wallMs / 1000, better: 'lower' },
            { metric: `complete bodies (of ${n})`, value: complete, better: 'higher' },
          ];
        });
        record(ctx, mirror.name, round, r);
      }
    }
  },
};

export const slow200: Scenario = {
  name: 'slow-200',
  title: '200 slow clients (64 KiB/s each) of the same cold big blob: RSS per process, idle → peak → after',
  async run(ctx) {
    const { targets, seed, options } = ctx;
    const path = `/v2/${seed.app.repo}/blobs/${seed.big.digest}`;
    const n = options.memoryClients;
    const rate = options.slowClientBytesPerSec;
    const seconds = options.slowClientSeconds;
    ctx.log(`  ${n} clients, ${rate / 1024} KiB/s each, hanging up after ${seconds} s`);
    for (let round = 0; round < options.memoryRounds; round++) {
      for (const mirror of rotate(coldMirrors(targets, options.anchors), round)) {
        const r = await measureMemory(targets.primary, mirror, seed.big.digest, async (url) => {
          const result = await slowGets(url, path, { clients: n, bytesPerSec: rate, seconds });
          const sorted = [...result.bytes].sort((a, b) => a - b);
          const served = result.statuses.filter((s) => s === 200).length;
          if (result.errors > 0) ctx.log(`  ! ${mirror.name}: ${result.errors} of ${n} slow clients failed, e.g. ${result.firstError}`);
          return [
            { metric: `answered 200 (of ${n})`, value: served, better: 'higher' },
            { metric: 'slowest client KiB/s', value: sorted[0]! / 1024 / seconds, better: 'higher' },
          ];
        });
        record(ctx, mirror.name, round, r);
      }
    }
  },
};
