/**
 * Profiles Outpost under one bench workload: starts a primary, seeds it,
 * starts Outpost (2 workers) under `node --cpu-prof`, runs the workload,
 * stops Outpost with SIGTERM so every process writes its .cpuprofile, and
 * prints the top self-time functions of each. The profiles stay in
 * bench/results/profile-<workload>-<time>/ for flame graphs (Chrome
 * DevTools or speedscope).
 *
 *   node --import tsx bench/profile.ts --workload tag-head [--duration 10] [--quick] [--wan] [--perf]
 *
 * --perf records with Linux `perf record -g` instead (every thread of every
 * Outpost process, kernel time and V8's GC and compiler threads included,
 * JIT frames named through --perf-basic-prof), only while the workload
 * runs, and prints the `perf report` command to read it.
 *
 * --wan puts the simulated WAN link (bench/wan-relay.ts, --wan-latency-ms,
 * --wan-mbit) between Outpost and the primary. Besides the profiles, the
 * CPU-seconds each Outpost process used during the workload are printed
 * (from /proc, so they are true CPU time even on a busy machine, where
 * sampled profiles also count time spent waiting for a core).
 *
 * Workloads: tag-head, tag-get, config-blob, layers-4k (autocannon, 64
 * connections), big-blob-1, big-blob-8 (warm GETs), cold-get (one cold GET
 * of the big blob), cold-32 (32 concurrent cold GETs), cold-pull (skopeo).
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCleanupStack } from '../test/support/cleanup.ts';
import { startDistribution } from '../test/support/distribution.ts';
import { freePort } from '../test/support/ports.ts';
import { startProcess } from '../test/support/process.ts';
import { makeTempDir, removeTempDir } from '../test/support/temp.ts';
import { waitFor } from '../test/support/wait.ts';
import { parallelGets } from './blob-clients.ts';
import { formatSummary, profileFiles, summarizeProfile } from './cpuprofile-top.ts';
import { runLoad } from './load.ts';
import { parseOptions } from './options.ts';
import { clockTicksPerSecond, processTrees, readComm, readStat, threadTicks } from './process-tree.ts';
import { pullImage } from './scenarios/pull.ts';
import { warmBlob, warmPaths } from './scenarios/warm.ts';
import { manifestAccept, seedPrimary, type Seed } from './seed.ts';
import { outpostBenchEnv } from './targets.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const workloads = ['tag-head', 'tag-get', 'config-blob', 'layers-4k', 'big-blob-1', 'big-blob-8', 'cold-get', 'cold-32', 'cold-pull'] as const;
type Workload = (typeof workloads)[number];

function takeFlag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const [, value] = argv.splice(i, 2);
  return value;
}

async function runWorkload(workload: Workload, url: string, host: string, seed: Seed, durationS: number, primary: Awaited<ReturnType<typeof startDistribution>>): Promise<string> {
  const manifest = `/v2/${seed.app.repo}/manifests/${seed.app.tag}`;
  const bigPath = `/v2/${seed.app.repo}/blobs/${seed.big.digest}`;
  const rate = async (method: 'GET' | 'HEAD', paths: string[], headers: Record<string, string> = {}): Promise<string> => {
    await warmPaths(primary, url, paths, headers);
    const r = await runLoad({ url, method, paths, headers, connections: 64, durationS });
    return `${Math.round(r.requestsPerSec)} req/s, p50 ${r.latencyP50Ms} ms, p99 ${r.latencyP99Ms} ms, ${r.non2xx} non-2xx`;
  };
  switch (workload) {
    case 'tag-head':
      return rate('HEAD', [manifest], { accept: manifestAccept });
    case 'tag-get':
      return rate('GET', [manifest], { accept: manifestAccept });
    case 'config-blob':
      return rate('GET', [`/v2/${seed.tiny[0]!.repo}/blobs/${seed.tiny[0]!.config.digest}`]);
    case 'layers-4k':
      return rate('GET', seed.tiny.map((t) => `/v2/${t.repo}/blobs/${t.layers[0]!.digest}`));
    case 'big-blob-1':
    case 'big-blob-8': {
      await warmBlob(primary, url, bigPath, seed.big.digest);
      const clients = workload === 'big-blob-1' ? 1 : 8;
      const r = await parallelGets(url, bigPath, { clients, getsPerClient: workload === 'big-blob-1' ? 8 : 3, hash: false });
      return `${Math.round(r.bytes / 1e6 / (r.wallMs / 1000))} MB/s`;
    }
    case 'cold-get':
    case 'cold-32': {
      const clients = workload === 'cold-get' ? 1 : 32;
      const r = await parallelGets(url, bigPath, { clients, getsPerClient: 1, hash: true });
      const ok = r.outcomes.filter((o) => o.digest === seed.big.digest).length;
      return `${clients} cold GET(s) in ${(r.wallMs / 1000).toFixed(2)} s, ${ok}/${clients} correct`;
    }
    case 'cold-pull': {
      const r = await pullImage(host, seed.app);
      return `cold pull in ${r.seconds.toFixed(2)} s`;
    }
  }
}

interface ProcessCpu {
  comm: string;
  seconds: number;
  sysSeconds: number;
  threads: Map<string, number>;
}

function cpuByProcess(root: number): Map<number, ProcessCpu> {
  const out = new Map<number, ProcessCpu>();
  for (const pid of processTrees([root]).get(root) ?? []) {
    const stat = readStat(pid);
    if (stat) {
      out.set(pid, { comm: readComm(pid) ?? '?', seconds: stat.cpuTicks / clockTicksPerSecond, sysSeconds: stat.sysTicks / clockTicksPerSecond, threads: threadTicks(pid) });
    }
  }
  return out;
}

function threadDelta(after: ProcessCpu, before: ProcessCpu | undefined): string {
  return [...after.threads]
    .map(([name, ticks]) => [name, (ticks - (before?.threads.get(name) ?? 0)) / clockTicksPerSecond] as const)
    .filter(([, s]) => s >= 0.01)
    .sort((a, b) => b[1] - a[1])
    .map(([name, s]) => `${name} ${s.toFixed(2)}`)
    .join(', ');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const workload = takeFlag(argv, 'workload') as Workload | undefined;
  if (workload === undefined || !workloads.includes(workload)) {
    throw new Error(`--workload must be one of ${workloads.join(', ')}`);
  }
  const wanIndex = argv.indexOf('--wan');
  const wan = wanIndex >= 0;
  if (wan) argv.splice(wanIndex, 1);
  const perfIndex = argv.indexOf('--perf');
  const perf = perfIndex >= 0;
  if (perf) argv.splice(perfIndex, 1);
  const options = parseOptions(argv);
  const cleanup = createCleanupStack();
  process.on('SIGINT', () => void cleanup.run().finally(() => process.exit(130)));
  try {
    const primary = await startDistribution();
    cleanup.add(() => primary.dispose());
    const seed = await seedPrimary(primary.url, options);
    let upstreamUrl = primary.url;
    if (wan) {
      const relayPort = await freePort();
      const relay = await startProcess(
        process.execPath,
        ['--import', 'tsx', 'bench/wan-relay.ts', '--port', String(relayPort), '--target', primary.host, '--latency-ms', String(options.wan.latencyMs), '--mbit', String(options.wan.mbit)],
        { cwd: repoRoot, name: 'wan-relay' },
      );
      cleanup.add(() => relay.stop());
      await waitFor(() => relay.output().includes('listening'), { what: 'wan-relay to listen', timeoutMs: 20_000 });
      upstreamUrl = `http://127.0.0.1:${relayPort}`;
    }
    const profileDir = path.resolve(repoRoot, options.outDir, `profile-${workload}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
    await mkdir(profileDir, { recursive: true });
    const cacheDir = await makeTempDir('outpost-profile-cache');
    cleanup.add(() => removeTempDir(cacheDir));
    const port = await freePort();
    const outpost = await startProcess(
      process.execPath,
      [...(perf ? ['--perf-basic-prof', '--logfile=/dev/null', '--no-logfile-per-isolate'] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`]), '--import', 'tsx', 'src/main.ts', 'serve'],
      {
        cwd: repoRoot,
        name: 'outpost (profiled)',
        env: {
          ...outpostBenchEnv,
          OUTPOST_HOST: '127.0.0.1',
          OUTPOST_PORT: String(port),
          OUTPOST_UPSTREAM_URL: upstreamUrl,
          OUTPOST_CACHE_DIR: cacheDir,
          OUTPOST_WORKERS: '2',
          OUTPOST_DRAIN_SECONDS: '0',
        },
      },
    );
    cleanup.add(() => outpost.stop({ graceMs: 30_000 }));
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${url}/health`).catch(() => undefined))?.status === 200, { what: 'profiled outpost /health', timeoutMs: 30_000 });
    // /health answers as soon as one worker listens: wait until the whole tree is about idle (under
    // 100 ms of CPU in half a second; idle, the tree uses ~35 ms), so start-up (compiling TypeScript) is not counted.
    let lastSeconds = Number.NEGATIVE_INFINITY;
    await waitFor(
      () => {
        const seconds = [...cpuByProcess(outpost.pid).values()].reduce((sum, p) => sum + p.seconds, 0);
        const idle = seconds - lastSeconds < 0.1;
        lastSeconds = seconds;
        return idle;
      },
      { what: 'outpost to finish starting (idle)', timeoutMs: 30_000, intervalMs: 500 },
    );
    const before = cpuByProcess(outpost.pid);
    const perfData = path.join(profileDir, 'perf.data');
    // --perf: the kernel's view (every thread, kernel time included) with `perf record`, only while the workload runs.
    const recorder = perf ? await startProcess('perf', ['record', '-g', '-o', perfData, '-p', [...before.keys()].join(',')], { name: 'perf record' }) : undefined;
    // perf says nothing when it has attached: give it half a second (only the profile's first samples are at stake).
    if (recorder) await new Promise((resolve) => setTimeout(resolve, 500));
    const result = await runWorkload(workload, url, `127.0.0.1:${port}`, seed, options.durationS, primary);
    const after = cpuByProcess(outpost.pid);
    await recorder?.stop({ graceMs: 30_000 });
    process.stdout.write(`${workload}${wan ? ' (WAN)' : ''}: ${result}\n`);
    for (const [pid, cpu] of after) {
      const role = pid === outpost.pid ? 'primary' : cpu.comm === 'esbuild' ? 'esbuild' : 'worker';
      const seconds = cpu.seconds - (before.get(pid)?.seconds ?? 0);
      const sys = cpu.sysSeconds - (before.get(pid)?.sysSeconds ?? 0);
      process.stdout.write(
        `  pid ${pid} ${role}: ${seconds.toFixed(2)} CPU-s during the workload, ${sys.toFixed(2)} of it in the kernel (threads: ${threadDelta(cpu, before.get(pid))})\n`,
      );
    }
    await outpost.stop({ graceMs: 30_000 });
    if (perf) {
      process.stdout.write(`\nperf: perf report -i ${perfData} --no-children --sort pid,dso,sym -g none\n`);
      return;
    }
    await waitFor(() => profileFiles([profileDir]).length >= 6, { what: 'the .cpuprofile files of the primary and 2 workers', timeoutMs: 10_000 }).catch(() => undefined);
    // Main threads only (…<pid>.0.<seq>.cpuprofile); the loader-hooks threads only compile TypeScript at start.
    for (const file of profileFiles([profileDir]).filter((f) => /\.0\.\d+\.cpuprofile$/.test(f))) {
      process.stdout.write(`\n${formatSummary(summarizeProfile(file, 20))}\n`);
    }
    process.stdout.write(`\nprofiles: ${profileDir}\n`);
  } finally {
    await cleanup.run();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`profile: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
