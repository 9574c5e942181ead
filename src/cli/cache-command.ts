/**
 * `outpost cache ls|stats|purge|pin|unpin|verify` — talks to a running node's admin
 * API. The node URL comes from `--url` (default http://127.0.0.1:$OUTPOST_PORT
 * or :5000) and the token from `--token` or OUTPOST_ADMIN_TOKEN.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';

const usage = `usage: outpost cache <command> [--url URL] [--token TOKEN]

  stats                          bytes, budget, entries, evictions
  ls [--limit N] [--cursor C]    entries, most recently used first
  purge --digest D | --repository NAME | --all
  pin REFERENCE                  e.g. library/nginx:1.27 (resolved, cached, never evicted)
  unpin REFERENCE
  verify [--interval-ms N]       hash every cached blob against its digest, deleting corrupt ones;
                                 progress on stderr, the result as JSON on stdout; exits 3 when
                                 corrupt files were found, 1 when the scrub could not finish
`;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  if (i >= 0) return args[i + 1];
  const inline = args.find((a) => a.startsWith(`--${name}=`));
  return inline?.slice(name.length + 3);
}

function positional(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg.startsWith('--')) {
      if (!arg.includes('=') && arg !== '--all') i++;
      continue;
    }
    out.push(arg);
  }
  return out;
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

export async function runCacheCommand(
  args: string[],
  env: NodeJS.ProcessEnv,
  out: (text: string) => void,
  progress: (text: string) => void = () => undefined,
): Promise<number> {
  const [command, ...rest] = args;
  const base = (flag(rest, 'url') ?? `http://127.0.0.1:${env.OUTPOST_PORT ?? '5000'}`).replace(/\/+$/, '');
  const token = flag(rest, 'token') ?? env.OUTPOST_ADMIN_TOKEN;
  if (!token) {
    out('outpost cache: set OUTPOST_ADMIN_TOKEN (or --token) to the node’s admin token\n');
    return 2;
  }
  const call = async (method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<number> => {
    const res = await request(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    out(`${text.trim()}\n`);
    return res.statusCode >= 200 && res.statusCode < 300 ? 0 : 1;
  };
  const [target] = positional(rest);
  switch (command) {
    case 'stats':
      return call('GET', '/api/v0/cache/stats');
    case 'ls':
      return call('GET', `/api/v0/cache/entries?limit=${flag(rest, 'limit') ?? 100}&cursor=${flag(rest, 'cursor') ?? 0}`);
    case 'purge': {
      const digest = flag(rest, 'digest');
      const repository = flag(rest, 'repository');
      if (digest) return call('POST', '/api/v0/cache/purge', { digest });
      if (repository) return call('POST', '/api/v0/cache/purge', { repository });
      if (rest.includes('--all')) return call('POST', '/api/v0/cache/purge', { all: true });
      break;
    }
    case 'pin':
      if (target) return call('POST', '/api/v0/cache/pins', { reference: target });
      break;
    case 'unpin':
      if (target) return call('DELETE', `/api/v0/cache/pins?reference=${encodeURIComponent(target)}`);
      break;
    case 'verify': {
      const intervalMs = Number(flag(rest, 'interval-ms') ?? 1000);
      if (!Number.isFinite(intervalMs) || intervalMs < 10) break;
      return verify(base, token, intervalMs, out, progress);
    }
    default:
      break;
  }
  out(usage);
  return 2;
}
