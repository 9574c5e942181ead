/**
 * Entry point: `outpost serve` (cluster primary or worker), `outpost config
 * check`, `outpost cache ...`.
 *
 *   node --import tsx src/main.ts serve [--config FILE] [--port N] ...
 *   npx outpost serve ...            (from the checkout: the package's bin, bin/outpost.js)
 */
import cluster from 'node:cluster';
import { ConfigError, loadConfig } from './config/load.ts';
import { redactedConfig } from './config/redact.ts';
import type { Config } from './config/types.ts';

// Each command imports what it runs, when it runs: the cluster primary never loads the
// request path (undici, the HTTP server; ~15 MiB of RSS), nor a CLI command the server.

const usage = `usage: outpost <command> [options]

commands:
  serve [--config FILE]          run a node (cluster primary + OUTPOST_WORKERS workers)
  config check [--config FILE]   validate and print the effective configuration, secrets redacted
  cache stats|ls|purge|pin|unpin|verify  talk to a running node's admin API (outpost cache --help)
  prefetch IMAGE... [--platform os/arch]  warm images in a running node's cache (outpost prefetch --help)
  prefetch jobs | prefetch run NAME       the prefetch jobs: next and last runs; run one now

options (serve, config check):
  --config FILE   JSON or YAML config file (also OUTPOST_CONFIG)
  --host, --port, --upstream-url, --cache-dir, --cache-max-bytes, --workers, --node-id, --advertise-url, --log-level
  Every other setting: its environment variable or the config file (README, "Configuration").
  An unknown option stops the command.
`;

function load(argv: string[]): Config {
  try {
    return loadConfig({ argv, env: process.env, positionals: 'reject' });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // "Invalid configuration: ..." → "outpost: invalid configuration: ..."
    process.stderr.write(`outpost: ${err.message.replace(/^Invalid/, 'invalid')}\n`);
    process.exit(2);
  }
}

const wantsHelp = (args: readonly string[]): boolean => args.includes('--help') || args.includes('-h');

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'serve') {
    if (wantsHelp(rest)) return void process.stdout.write(usage);
    const config = load(rest);
    if (cluster.isPrimary) await (await import('./process/primary.ts')).runPrimary(config);
    else throw new Error('a worker runs src/process/worker-entry.cjs, which the primary sets as cluster exec');
    return;
  }
  if (command === 'cache') {
    const { runCacheCommand } = await import('./cli/cache-command.ts');
    process.exitCode = await runCacheCommand(rest, process.env, {
      out: (text) => process.stdout.write(text),
      err: (text) => process.stderr.write(text),
    });
    return;
  }
  if (command === 'prefetch') {
    const jobs = await import('./cli/prefetch-jobs-command.ts');
    if (jobs.isPrefetchJobsCommand(rest)) {
      process.exitCode = await jobs.runPrefetchJobsCommand(rest, process.env, {
        out: (text) => process.stdout.write(text),
        err: (text) => process.stderr.write(text),
      });
      return;
    }
    const { runPrefetchCommand } = await import('./cli/prefetch-command.ts');
    process.exitCode = await runPrefetchCommand(rest, process.env, {
      tty: process.stdout.isTTY === true,
      ...(process.stdout.isTTY === true ? { columns: process.stdout.columns } : {}),
      out: (text) => process.stdout.write(text),
      err: (text) => process.stderr.write(text),
    });
    return;
  }
  if (command === 'config' && rest[0] === 'check') {
    if (wantsHelp(rest)) return void process.stdout.write(usage);
    const config = load(rest.slice(1));
    process.stdout.write(`${JSON.stringify(redactedConfig(config), (_key, value: unknown) => (value === undefined ? null : value), 2)}\n`);
    return;
  }
  const help = command === undefined || command === '--help' || command === '-h' || command === 'help';
  if (help) {
    process.stdout.write(usage);
    return;
  }
  process.stderr.write(`outpost: unknown command "${argv.join(' ')}"\n\n${usage}`);
  process.exit(2);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`outpost: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
