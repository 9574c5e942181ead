/**
 * N concurrent cold GETs of the big blob against one cold GET, each on a
 * mirror with empty storage: wall time, GETs the primary answered, and the
 * sha256 of every client's body. Then the same N GETs again, now warm: the
 * time this machine needs just to deliver N copies (the floor for the cold
 * figure when the primary is faster than local delivery, as on loopback).
 */
import type { DistributionRegistry } from '../../test/support/distribution.ts';
import { parallelGets } from '../blob-clients.ts';
import { openCpuWindow } from '../cpu.ts';
import type { BlobRef } from '../seed.ts';
import { coldMirrors } from '../targets.ts';
import { upstreamCost } from './pull.ts';
import { rotate, round1, type Scenario, type ScenarioContext } from './scenario.ts';

export interface ColdWay {
  name: string;
  url: () => string;
  /** Root pid of the mirror's process tree (for its CPU time). */
  pid: () => number | undefined;
  reset: () => Promise<void>;
}

export interface ColdConcurrencyResult {
  singleS: number;
  concurrentS: number;
  warmConcurrentS: number;
  upstreamGetsSingle: number;
  upstreamGetsConcurrent: number;
  /** Clients whose body had the right size and digest. */
  correct: number;
  clients: number;
  /** The mirror's CPU-seconds during the single cold GET and during the N cold GETs. */
  cpuSingleS: number | undefined;
  cpuConcurrentS: number | undefined;
}

async function withCpu<T>(pid: number | undefined, action: () => Promise<T>): Promise<[T, number | undefined]> {
  const window = pid === undefined ? undefined : openCpuWindow(pid);
  const result = await action();
  return [result, window?.stop()];
}

async function timedGets(url: string, path: string, blob: BlobRef, clients: number): Promise<{ seconds: number; correct: number; firstError: string | undefined }> {
  const result = await parallelGets(url, path, { clients, getsPerClient: 1, hash: true });
  const correct = result.outcomes.filter((o) => o.status === 200 && o.bytes === blob.size && o.digest === blob.digest).length;
  const bad = result.outcomes.find((o) => o.status !== 200 || o.digest !== blob.digest);
  return { seconds: result.wallMs / 1000, correct, firstError: bad === undefined ? undefined : `${bad.status} ${bad.bytes} B ${bad.digest ?? ''} ${bad.error ?? ''}` };
}

export async function measureColdConcurrency(
  primary: DistributionRegistry,
  way: ColdWay,
  path: string,
  blob: BlobRef,
  clients: number,
): Promise<ColdConcurrencyResult> {
  await way.reset();
  await primary.flushLog();
  primary.clearRequests();
  const [single, cpuSingleS] = await withCpu(way.pid(), () => timedGets(way.url(), path, blob, 1));
  if (single.correct !== 1) throw new Error(`${way.name}: single cold GET failed: ${single.firstError}`);
  const upstreamSingle = (await upstreamCost(primary, [blob.digest])).getsPerBlob[blob.digest] ?? 0;

  await way.reset();
  await primary.flushLog();
  primary.clearRequests();
  const [concurrent, cpuConcurrentS] = await withCpu(way.pid(), () => timedGets(way.url(), path, blob, clients));
  const upstreamConcurrent = (await upstreamCost(primary, [blob.digest])).getsPerBlob[blob.digest] ?? 0;

  const warm = await timedGets(way.url(), path, blob, clients);
  return {
    singleS: single.seconds,
    concurrentS: concurrent.seconds,
    warmConcurrentS: warm.seconds,
    upstreamGetsSingle: upstreamSingle,
    upstreamGetsConcurrent: upstreamConcurrent,
    correct: concurrent.correct,
    clients,
    cpuSingleS,
    cpuConcurrentS,
  };
}

export function recordColdConcurrency(ctx: ScenarioContext, target: string, round: number, r: ColdConcurrencyResult): void {
  ctx.log(
    `  round ${round + 1} ${target.padEnd(12)} 1 cold ${r.singleS.toFixed(2)} s | ${r.clients} cold ${r.concurrentS.toFixed(2)} s (×${(r.concurrentS / r.singleS).toFixed(2)}), ` +
      `${r.upstreamGetsConcurrent} upstream GETs, ${r.correct}/${r.clients} correct | ${r.clients} warm ${r.warmConcurrentS.toFixed(2)} s`,
  );
  const detail = { ...r, singleS: round1(r.singleS, 3), concurrentS: round1(r.concurrentS, 3), warmConcurrentS: round1(r.warmConcurrentS, 3) };
  ctx.record({ metric: '1 cold GET s', target, round, value: r.singleS, better: 'lower', detail });
  ctx.record({ metric: `${r.clients} cold GETs s`, target, round, value: r.concurrentS, better: 'lower' });
  ctx.record({ metric: `${r.clients} cold ÷ 1 cold`, target, round, value: r.concurrentS / r.singleS, better: 'lower' });
  // The N cold GETs can be no faster than the slower of: fetching the blob once (1 cold GET) and
  // delivering N copies from disk on this machine (N warm GETs). This row is what coalescing adds on top.
  ctx.record({ metric: `${r.clients} cold ÷ max(1 cold, ${r.clients} warm)`, target, round, value: r.concurrentS / Math.max(r.singleS, r.warmConcurrentS), better: 'lower' });
  ctx.record({ metric: `upstream GETs (${r.clients} cold)`, target, round, value: r.upstreamGetsConcurrent, better: 'lower' });
  ctx.record({ metric: `correct bodies (of ${r.clients})`, target, round, value: r.correct, better: 'higher' });
  ctx.record({ metric: `${r.clients} warm GETs s`, target, round, value: r.warmConcurrentS, better: 'lower' });
  if (r.cpuSingleS !== undefined) ctx.record({ metric: 'server CPU-s (1 cold GET)', target, round, value: r.cpuSingleS, better: 'lower' });
  if (r.correct !== r.clients) ctx.log(`  ! ${target}: only ${r.correct} of ${r.clients} clients got the right bytes`);
}

export const coldConcurrent: Scenario = {
  name: 'cold-32',
  title: '32 concurrent cold GETs of the big blob vs 1 cold GET (loopback primary)',
  async run(ctx) {
    const { targets, seed, options } = ctx;
    const path = `/v2/${seed.app.repo}/blobs/${seed.big.digest}`;
    const ways: ColdWay[] = coldMirrors(targets, options.anchors);
    for (let round = 0; round < options.rounds; round++) {
      for (const way of rotate(ways, round)) {
        const r = await measureColdConcurrency(targets.primary, way, path, seed.big, options.concurrentColdClients);
        recordColdConcurrency(ctx, way.name, round, r);
      }
    }
  },
};
