/**
 * What each module costs a process at start (issue 12, item 5: the 150 MiB
 * per-worker ceiling for the tsx entry point). Each module is imported alone
 * in a fresh `node --import tsx` process, after a full GC its RSS and V8
 * heap are read, and the figures are printed against bare node and an empty
 * tsx process. Imports share dependencies, so the rows do not add up to a
 * worker; the last rows import the worker's and the primary's entry modules.
 * Workers load through tsx's require hook (src/process/worker-exec.ts), so
 * an empty process with it and the worker's module through it are measured
 * too.
 *
 *   node --import tsx bench/module-cost.ts [--repeat 3] [module ...]
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { summarize } from './stats.ts';
import { formatNumber, markdownTable } from './table.ts';

const run = promisify(execFile);
const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));

/** The worker's direct npm dependencies, then Outpost's layers, then the entry modules. */
const defaultModules = [
  'undici',
  'pino',
  'prom-client',
  'ioredis',
  'etcd3',
  'convict',
  'yaml',
  'lru-cache',
  'cockatiel',
  'bcryptjs',
  'croner',
  './src/config/load.ts',
  './src/observability/metrics.ts',
  './src/upstream/registry-client.ts',
  './src/cache/blob-service.ts',
  './src/http/registry-routes.ts',
  './src/coordination/etcd-replica-set.ts',
  './src/coordination/redis-connection.ts',
  './src/process/primary.ts',
  './src/process/worker.ts',
];

interface Reading {
  rssMiB: number;
  heapUsedMiB: number;
  externalMiB: number;
}

const report = `
const m = process.memoryUsage();
process.stdout.write(JSON.stringify({ rssMiB: m.rss / 2 ** 20, heapUsedMiB: m.heapUsed / 2 ** 20, externalMiB: m.external / 2 ** 20 }));
`;
const fullGc = 'for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 50)); }';
const esmProbe = `
const target = process.argv[1];
if (target) await import(target.startsWith('./') ? new URL(target, 'file://' + process.cwd() + '/').href : target);
${fullGc}
${report}`;
const cjsProbe = `
const target = process.argv[1];
if (target) require(target.startsWith('./') ? require('node:path').resolve(target) : target);
(async () => { ${fullGc} ${report} })();
`;

/** How a process loads TypeScript: not at all, tsx's ESM loader (the primary, the CLI), tsx's require hook (workers). */
type Loader = 'none' | 'esm' | 'cjs';

async function measure(module: string | undefined, loader: Loader): Promise<Reading> {
  const flags = { none: ['--input-type=module', '-e', esmProbe], esm: ['--import', 'tsx', '--input-type=module', '-e', esmProbe], cjs: ['--require', 'tsx/cjs', '-e', cjsProbe] }[loader];
  const args = ['--expose-gc', ...flags, module ?? ''];
  const { stdout } = await run(process.execPath, args, { cwd: repoRoot, timeout: 60_000, maxBuffer: 1024 * 1024 });
  return JSON.parse(stdout) as Reading;
}

async function median(repeat: number, module: string | undefined, loader: Loader): Promise<Reading> {
  const readings: Reading[] = [];
  for (let i = 0; i < repeat; i++) readings.push(await measure(module, loader));
  const of = (key: keyof Reading): number => summarize(readings.map((r) => r[key])).median;
  return { rssMiB: of('rssMiB'), heapUsedMiB: of('heapUsedMiB'), externalMiB: of('externalMiB') };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const repeatAt = argv.indexOf('--repeat');
  const repeat = repeatAt >= 0 ? Number(argv.splice(repeatAt, 2)[1]) : 3;
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error('--repeat must be a positive integer');
  const modules = argv.length > 0 ? argv : defaultModules;
  const bare = await median(repeat, undefined, 'none');
  const empty = await median(repeat, undefined, 'esm');
  const emptyCjs = await median(repeat, undefined, 'cjs');
  const row = (name: string, r: Reading, over: Reading | undefined): string[] =>
    [name, formatNumber(r.rssMiB), over === undefined ? '' : formatNumber(r.rssMiB - over.rssMiB), formatNumber(r.heapUsedMiB), formatNumber(r.externalMiB)];
  const rows: string[][] = [row('node (no tsx)', bare, undefined), row('node --import tsx', empty, bare), row('node --require tsx/cjs (workers)', emptyCjs, bare)];
  for (const module of modules) {
    rows.push(row(module, await median(repeat, module, 'esm'), empty));
    process.stderr.write('.');
  }
  if (argv.length === 0) rows.push(row('./src/process/worker.ts, --require tsx/cjs (over that empty process)', await median(repeat, './src/process/worker.ts', 'cjs'), emptyCjs));
  process.stderr.write('\n');
  process.stdout.write(`RSS after import and a full GC, MiB (median of ${repeat} fresh processes); "+ over" is against bare node for the loaders, an empty process with the same loader for modules\n\n`);
  process.stdout.write(`${markdownTable(['module', 'RSS', '+ over', 'V8 heap used', 'external'], rows)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`module-cost: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
