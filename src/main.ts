/**
 * Entry point: `outpost serve` (cluster primary or worker), `outpost config check`.
 *
 *   node --import tsx src/main.ts serve [--config FILE] [--port N] ...
 */
import cluster from 'node:cluster';
import { runCacheCommand } from './cli/cache-command.ts';
import { loadConfig } from './config/load.ts';
import { redactedConfig } from './config/redact.ts';
import type { Config } from './config/types.ts';
import { runPrimary } from './process/primary.ts';
import { runWorker } from './process/worker.ts';

const usage = `usage: outpost <command> [options]

commands:
  serve [--config FILE]          run a node (cluster primary + OUTPOST_WORKERS workers)
  config check [--config FILE]   validate and print the effective configuration, secrets redacted
  cache stats|ls|purge|pin|unpin|verify  talk to a running node's admin API (OUTPOST_ADMIN_TOKEN, --url)

options:
  --config FILE   JSON or YAML config file (also OUTPOST_CONFIG)
  --host, --port, --upstream-url, --cache-dir, --workers, --log-level
`;

function load(argv: string[]): Config {
  try {
    return loadConfig({ argv, env: process.env });
  } catch (err) {
    process.stderr.write(`outpost: invalid configuration: ${(err as Error).message}\n`);
    process.exit(2);
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'serve') {
    const config = load(rest);
    if (cluster.isPrimary) await runPrimary(config);
    else await runWorker(config);
    return;
  }
  if (command === 'cache') {
    process.exitCode = await runCacheCommand(
      rest,
      process.env,
      (text) => process.stdout.write(text),
      (text) => process.stderr.write(text),
    );
    return;
  }
  if (command === 'config' && rest[0] === 'check') {
    const config = load(rest.slice(1));
    process.stdout.write(`${JSON.stringify(redactedConfig(config), (_key, value: unknown) => (value === undefined ? null : value), 2)}\n`);
    return;
  }
  process.stderr.write(usage);
  process.exit(command === undefined || command === '--help' || command === 'help' ? 0 : 2);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`outpost: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
