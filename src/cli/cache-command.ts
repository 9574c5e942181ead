/**
 * `outpost cache ls|stats|purge|pin|unpin|verify` — talks to a running node's admin
 * API.
 *
 * Where and how, later wins: the node's own configuration (`--config FILE`
 * or OUTPOST_CONFIG, then environment variables: server.host/port, HTTPS
 * when server.tlsCert is set, admin.token), then `--url` and `--token`.
 * An unknown option stops the command; a node that cannot be reached is one
 * line naming the URL, the cause and what to check.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { ConfigError, loadConfig } from '../config/load.ts';
import type { Config } from '../config/types.ts';
import { errorCode, transportReason } from '../upstream/upstream-errors.ts';

const usage = `usage: outpost cache <command> [--config FILE] [--url URL] [--token TOKEN]

  stats                          bytes, budget, entries, evictions
  ls [--limit N] [--cursor C]    entries, most recently used first
  purge --digest D | --repository NAME | --all
  pin REFERENCE                  e.g. library/nginx:1.27 (resolved, cached, never evicted)
  unpin REFERENCE
  verify [--interval-ms N]       hash every cached blob against its digest, deleting corrupt ones;
                                 progress on stderr, the result as JSON on stdout; exits 3 when
                                 corrupt files were found, 1 when the scrub could not finish

The node's URL and admin token come from its configuration (--config FILE or
OUTPOST_CONFIG, then OUTPOST_HOST/OUTPOST_PORT/OUTPOST_ADMIN_TOKEN); --url
and --token override them.
`;

export interface CliOutput {
  out(text: string): void;
  err(text: string): void;
}

/** Options that take a value, and flags that do not. */
const valueOptions = new Set(['config', 'url', 'token', 'limit', 'cursor', 'digest', 'repository', 'interval-ms']);
const flagOptions = new Set(['all', 'help']);

interface ParsedArgs {
  options: Map<string, string>;
  flags: Set<string>;
  positionals: string[];
}

class UsageError extends Error {}

function parseArgs(args: readonly string[]): ParsedArgs {
  const parsed: ParsedArgs = { options: new Map(), flags: new Set(), positionals: [] };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      parsed.positionals.push(...args.slice(i + 1));
      break;
    }
    if (arg === '-h') {
      parsed.flags.add('help');
      continue;
    }
    if (!arg.startsWith('-') || arg === '-') {
      parsed.positionals.push(arg);
      continue;
    }
    const equals = arg.indexOf('=');
    const name = arg.startsWith('--') ? arg.slice(2, equals === -1 ? undefined : equals) : '';
    if (flagOptions.has(name) && equals === -1) {
      parsed.flags.add(name);
    } else if (valueOptions.has(name)) {
      const value = equals !== -1 ? arg.slice(equals + 1) : args[++i];
      if (value === undefined || (equals === -1 && value.startsWith('--'))) throw new UsageError(`option --${name} needs a value`);
      parsed.options.set(name, value);
    } else {
      const known = [...valueOptions, ...flagOptions].map((o) => `--${o}`).join(', ');
      throw new UsageError(`unknown option ${arg.split('=')[0]} (options: ${known})`);
    }
  }
  return parsed;
}

/** Exit status of `verify` when corrupt files were found (and deleted). */
export const corruptFoundExitCode = 3;

interface VerifyProgress {
  id: number;
  running: boolean;
  outcome: string | null;
  checked: number;
  total: number;
  bytes: number;
  totalBytes: number;
  corrupt: number;
}

const mib = (bytes: number): string => (bytes / (1024 * 1024)).toFixed(1);

/** Starts a scrub on the node and follows it to the end, printing progress. */
async function verify(
  base: string,
  token: string,
  intervalMs: number,
  out: (text: string) => void,
  progress: (text: string) => void,
): Promise<number> {
  const ask = async (method: 'GET' | 'POST'): Promise<{ ok: boolean; text: string }> => {
    const res = await request(`${base}/api/v0/cache/verify`, { method, headers: { authorization: `Bearer ${token}` } });
    const text = await res.body.text();
    return { ok: res.statusCode >= 200 && res.statusCode < 300, text };
  };
  let answer = await ask('POST');
  if (!answer.ok) {
    out(`${answer.text.trim()}\n`);
    return 1;
  }
  let status = JSON.parse(answer.text) as VerifyProgress;
  const id = status.id;
  let shown = '';
  for (;;) {
    const line = `verify: ${status.checked}/${status.total} files, ${mib(status.bytes)}/${mib(status.totalBytes)} MiB, ${status.corrupt} corrupt\n`;
    if (line !== shown) progress(line);
    shown = line;
    if (!status.running || status.id !== id) break;
    await sleep(intervalMs);
    answer = await ask('GET');
    if (!answer.ok) {
      out(`${answer.text.trim()}\n`);
      return 1;
    }
    status = JSON.parse(answer.text) as VerifyProgress;
  }
  out(`${JSON.stringify(status)}\n`);
  if (status.id !== id || status.outcome !== 'done') return 1;
  return status.corrupt > 0 ? corruptFoundExitCode : 0;
}

/** The URL a client on this machine uses to reach a node listening on `server`. */
export function nodeUrl(server: Pick<Config['server'], 'host' | 'port' | 'tlsCert' | 'tlsKey'>): string {
  const scheme = server.tlsCert !== undefined ? 'https' : 'http';
  let host = server.host;
  if (host === '0.0.0.0' || host === '*') host = '127.0.0.1';
  else if (host === '::' || host === '[::]') host = '[::1]';
  else if (host.includes(':') && !host.startsWith('[')) host = `[${host}]`;
  return `${scheme}://${host}:${server.port}`;
}

export async function runCacheCommand(args: string[], env: NodeJS.ProcessEnv, io: CliOutput): Promise<number> {
  const [command, ...rest] = args;
  let parsed: ParsedArgs;
  try {
    parsed = parseArgs(rest);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`outpost cache: ${err.message}\n\n${usage}`);
    return 2;
  }
  if (command === undefined || command === 'help' || command === '--help' || command === '-h' || parsed.flags.has('help')) {
    io.out(usage);
    return command === undefined ? 2 : 0;
  }

  let config: Config;
  try {
    config = loadConfig({ env, ...(parsed.options.has('config') ? { file: parsed.options.get('config')! } : {}) });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.err(`outpost cache: ${err.message.replace(/^Invalid/, 'invalid')}\n`);
    return 2;
  }
  const base = (parsed.options.get('url') ?? nodeUrl(config.server)).replace(/\/+$/, '');
  const token = parsed.options.get('token') ?? config.admin.token;
  if (!token) {
    io.err('outpost cache: no admin token: pass --token, set OUTPOST_ADMIN_TOKEN, or point --config at the node’s config file (admin.token)\n');
    return 2;
  }

  const call = async (method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<number> => {
    let res;
    try {
      res = await request(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: 120_000,
      });
    } catch (err) {
      const code = errorCode(err);
      const cause = transportReason(code, err instanceof Error ? err.name : 'error');
      io.err(
        `outpost cache: cannot reach the node at ${base}: ${cause}. Is it running, and is that its address? ` +
          'Check --url, or server.host/server.port (OUTPOST_HOST/OUTPOST_PORT) in the config given with --config.\n',
      );
      return 1;
    }
    const text = await res.body.text();
    io.out(`${text.trim()}\n`);
    if (res.statusCode === 401) io.err('outpost cache: the node refused the admin token: check --token, OUTPOST_ADMIN_TOKEN or admin.token\n');
    if (res.statusCode === 405) io.err('outpost cache: the node’s admin API is off: it has no admin token configured\n');
    return res.statusCode >= 200 && res.statusCode < 300 ? 0 : 1;
  };

  const [target] = parsed.positionals;
  const option = (name: string): string | undefined => parsed.options.get(name);
  switch (command) {
    case 'stats':
      return call('GET', '/api/v0/cache/stats');
    case 'ls':
      return call('GET', `/api/v0/cache/entries?limit=${encodeURIComponent(option('limit') ?? '100')}&cursor=${encodeURIComponent(option('cursor') ?? '0')}`);
    case 'purge': {
      const digest = option('digest');
      const repository = option('repository');
      if (digest) return call('POST', '/api/v0/cache/purge', { digest });
      if (repository) return call('POST', '/api/v0/cache/purge', { repository });
      if (parsed.flags.has('all')) return call('POST', '/api/v0/cache/purge', { all: true });
      break;
    }
    case 'pin':
      if (target) return call('POST', '/api/v0/cache/pins', { reference: target });
      break;
    case 'unpin':
      if (target) return call('DELETE', `/api/v0/cache/pins?reference=${encodeURIComponent(target)}`);
      break;
    case 'verify': {
      const intervalMs = Number(option('interval-ms') ?? 1000);
      if (!Number.isFinite(intervalMs) || intervalMs < 10) break;
      return verify(base, token, intervalMs, (text) => io.out(text), (text) => io.err(text));
    }
    default:
      io.err(`outpost cache: unknown command "${command}"\n\n`);
      break;
  }
  io.err(usage);
  return 2;
}
