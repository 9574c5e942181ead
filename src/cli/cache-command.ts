/**
 * `outpost cache ls|stats|purge|pin|unpin` — talks to a running node's admin
 * API. The node URL comes from `--url` (default http://127.0.0.1:$OUTPOST_PORT
 * or :5000) and the token from `--token` or OUTPOST_ADMIN_TOKEN.
 */
import { request } from 'undici';

const usage = `usage: outpost cache <command> [--url URL] [--token TOKEN]

  stats                          bytes, budget, entries, evictions
  ls [--limit N] [--cursor C]    entries, most recently used first
  purge --digest D | --repository NAME | --all
  pin REFERENCE                  e.g. library/nginx:1.27 (resolved, cached, never evicted)
  unpin REFERENCE
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

export async function runCacheCommand(args: string[], env: NodeJS.ProcessEnv, out: (text: string) => void): Promise<number> {
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
    default:
      break;
  }
  out(usage);
  return 2;
}
