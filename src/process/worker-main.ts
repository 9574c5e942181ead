/**
 * What a worker process runs (through worker-entry.cjs): the configuration,
 * read from the same argv and environment as the primary's, then the worker.
 * Only static imports from here down: a dynamic `import()` of a .ts file
 * needs tsx's ESM loader, which workers do not load.
 */
import { configOrExit } from './config-or-exit.ts';
import { runWorker } from './worker.ts';

runWorker(configOrExit(process.argv.slice(3))).catch((err: unknown) => {
  process.stderr.write(`outpost: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
