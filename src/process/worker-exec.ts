/**
 * How the cluster primary forks its workers: they run worker-entry.cjs with
 * tsx's require hook (`--require tsx/cjs`), not with its ESM loader
 * (`--import tsx`). On Node 20 an ESM loader's hooks run on a thread of
 * their own, with its own V8 heap and tsx's compiler loaded, for as long as
 * the process lives: ~20–25 MiB of every worker's RSS (an idle worker
 * 83 MiB instead of 104–109: README, Performance, "Peak worker RSS"). The require
 * hook compiles each module in the worker's own thread, once, at start.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const LOADER_FLAGS = ['--import', '--require', '-r', '--loader', '--experimental-loader'];

/** tsx by package name (`tsx`, `tsx/esm`) or by a path into its package (what the tsx CLI passes). */
const isTsx = (module: string): boolean => module === 'tsx' || module.startsWith('tsx/') || /[\\/]node_modules[\\/]tsx[\\/]/.test(module);

/** `cluster.setupPrimary` settings for the workers of a primary started with `primaryExecArgv`. */
export function workerForkSettings(primaryExecArgv: readonly string[]): { exec: string; execArgv: string[] } {
  return { exec: fileURLToPath(new URL('./worker-entry.cjs', import.meta.url)), execArgv: workerExecArgv(primaryExecArgv) };
}

/**
 * The workers' Node flags: the primary's (an operator's `--max-old-space-size`,
 * the bench's `--cpu-prof`) without the ones that load tsx, then tsx's
 * require hook and a small young generation, which keeps worker RSS low under
 * load (measured in bench/: peaks drop by ~30 MiB).
 */
export function workerExecArgv(primary: readonly string[]): string[] {
  const flags: string[] = [];
  for (let i = 0; i < primary.length; i += 1) {
    const arg = primary[i] ?? '';
    const [flag = '', inline] = arg.split(/=(.*)/s);
    const loadsTsx = LOADER_FLAGS.includes(flag) && isTsx(inline ?? primary[i + 1] ?? '');
    if (loadsTsx && inline === undefined) i += 1;
    if (!loadsTsx) flags.push(arg);
  }
  return [...flags, '--require', createRequire(import.meta.url).resolve('tsx/cjs'), '--max-semi-space-size=2'];
}

/**
 * Added to the workers' environment: glibc's malloc serves allocations of
 * 128 KiB and more (send buffers, a fill's chunks) from mmap, so freeing one
 * returns it to the kernel. Left to itself, glibc raises that threshold each
 * time such a block is freed, and the heap then keeps what the buffers of
 * 200 clients took, long after they are gone (bench `cold-200`). An
 * operator's own setting wins; other C libraries ignore it.
 */
export function workerEnv(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  return { MALLOC_MMAP_THRESHOLD_: env['MALLOC_MMAP_THRESHOLD_'] ?? String(128 * 1024) };
}
