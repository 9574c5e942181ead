/**
 * `outpost prefetch jobs` and `outpost prefetch run NAME` — the prefetch jobs
 * of a running node's replica set, through the admin API
 * (`GET /api/v0/prefetch/jobs`, `POST /api/v0/prefetch/jobs/<name>/run`).
 *
 * The node's URL and admin token are found as for `outpost cache`: its
 * configuration (`--config FILE` or OUTPOST_CONFIG, then the environment),
 * then `--url` and `--token`. Exit status: 0 done, 1 the node refused or
 * could not be asked (409 while a run is in progress, 404 unknown job), 2 usage.
 */
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { ConfigError, loadConfig } from '../config/load.ts';
import type { Config } from '../config/types.ts';
import type { PrefetchJobStatus } from '../prefetch/ports.ts';
import { errorCode, transportReason } from '../upstream/upstream-errors.ts';
import { nodeUrl, type CliOutput } from './cache-command.ts';

export const prefetchJobsUsage = `usage: outpost prefetch jobs [--json] [--config FILE] [--url URL] [--token TOKEN]
       outpost prefetch run NAME [--config FILE] [--url URL] [--token TOKEN]

  jobs       the configured prefetch jobs: schedule, next run, last run and its counts
  run NAME   asks the leader to run job NAME now; prints the run id

The node's URL and admin token come from its configuration (--config FILE or
OUTPOST_CONFIG, then OUTPOST_HOST/OUTPOST_PORT/OUTPOST_ADMIN_TOKEN); --url
and --token override them.
`;

/** Whether `args` (after `prefetch`) is one of these subcommands rather than images to warm. */
export function isPrefetchJobsCommand(args: readonly string[]): boolean {
  return args[0] === 'jobs' || args[0] === 'run';
}

const mb = (bytes: number): string => `${(bytes / 1_000_000).toFixed(1)} MB`;

/** One block per job, as an operator reads it. */
export function formatJobs(jobs: readonly PrefetchJobStatus[]): string {
  if (jobs.length === 0) return 'no prefetch jobs are configured\n';
  return jobs
    .map((job) => {
      const lines = [`${job.name}  ${job.schedule} (${job.timezone})  upstream ${job.upstream}  next ${job.nextRunAt ?? 'unknown'}`];
      const last = job.lastRun;
      if (last === undefined) lines.push('  never run');
      else {
        const c = last.counts;
        lines.push(
          `  last run ${last.runId}: ${last.result}, started ${last.startedAt}${last.finishedAt ? `, finished ${last.finishedAt}` : ''}`,
          `  ${c.warmed}/${c.images} images warmed, ${c.skipped} skipped, ${c.failed} failed, ${c.blobs} blobs, ${mb(c.bytes)}`,
          ...last.errors.map((error) => `  error: ${error}`),
        );
      }
      return `${lines.join('\n')}\n`;
    })
    .join('');
}

export async function runPrefetchJobsCommand(args: string[], env: NodeJS.ProcessEnv, io: CliOutput): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  const parse = (argv: string[]) =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: { config: { type: 'string' }, url: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
  try {
    parsed = parse(args);
  } catch (err) {
    io.err(`outpost prefetch: ${(err as Error).message}\n\n${prefetchJobsUsage}`);
    return 2;
  }
  const [command, name, ...extra] = parsed.positionals;
  if (parsed.values.help) {
    io.out(prefetchJobsUsage);
    return 0;
  }
  if ((command === 'jobs' && name !== undefined) || (command === 'run' && (name === undefined || extra.length > 0))) {
    io.err(prefetchJobsUsage);
    return 2;
  }
  let config: Config;
  try {
    config = loadConfig({ env, ...(parsed.values.config === undefined ? {} : { file: parsed.values.config }) });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.err(`outpost prefetch: ${err.message.replace(/^Invalid/, 'invalid')}\n`);
    return 2;
  }
  const base = (parsed.values.url ?? nodeUrl(config.server)).replace(/\/+$/, '');
  const token = parsed.values.token ?? config.admin.token;
  if (!token) {
    io.err('outpost prefetch: no admin token: pass --token, set OUTPOST_ADMIN_TOKEN, or point --config at the node’s config file (admin.token)\n');
    return 2;
  }
  const path = command === 'jobs' ? '/api/v0/prefetch/jobs' : `/api/v0/prefetch/jobs/${encodeURIComponent(name!)}/run`;
  let status: number;
  let text: string;
  try {
    const res = await request(`${base}${path}`, {
      method: command === 'jobs' ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${token}` },
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    status = res.statusCode;
    text = await res.body.text();
  } catch (err) {
    io.err(`outpost prefetch: cannot reach the node at ${base}: ${transportReason(errorCode(err), err instanceof Error ? err.name : 'error')}. Is it running, and is that its address?\n`);
    return 1;
  }
  if (status < 200 || status >= 300) {
    let message = text.trim().slice(0, 500);
    try {
      const first = (JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> }).errors?.[0];
      if (first !== undefined) message = `${first.code ?? ''}: ${first.message ?? ''}`;
    } catch {
      // not the OCI envelope: shown as it is
    }
    io.err(`outpost prefetch: the node answered HTTP ${status}: ${message}\n`);
    return 1;
  }
  if (command === 'run') {
    const { runId } = JSON.parse(text) as { runId: string };
    io.out(`${runId}\n`);
    return 0;
  }
  const jobs = (JSON.parse(text) as { jobs: PrefetchJobStatus[] }).jobs;
  io.out(parsed.values.json ? `${JSON.stringify(jobs, null, 2)}\n` : formatJobs(jobs));
  return 0;
}
