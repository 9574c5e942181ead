/**
 * What a worker process runs (through worker-entry.cjs): the configuration
 * the primary sends (worker-config.ts), then the worker. Only static imports
 * from here down: a dynamic `import()` of a .ts file needs tsx's ESM loader,
 * which workers do not load.
 */
import { runWorker } from './worker.ts';
import { receiveWorkerConfig } from './worker-config.ts';

const CONFIG_TIMEOUT_MS = 30_000;

receiveWorkerConfig(CONFIG_TIMEOUT_MS)
  .then(runWorker)
  .catch((err: unknown) => {
    process.stderr.write(`outpost: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
