/**
 * `outpost prefetch IMAGE... [--platform os/arch]... [--url URL] [--token TOKEN] [--config FILE]`
 * — asks a running node to warm images (`POST /api/v0/prefetch`) and shows
 * its progress (cli/prefetch-display.ts).
 *
 * The node's URL and admin token are found as for `outpost cache`
 * (cli/cache-command.ts): its configuration, then `--url` and `--token`.
 * Exit status: 0 when every image was warmed (or had nothing to warm on the
 * platforms asked), 1 when any failed or the node could not be asked, 2 for
 * a usage error (including an image reference the node refuses as malformed).
 */
import { request } from 'undici';
import { ConfigError, loadConfig } from '../config/load.ts';
import type { Config } from '../config/types.ts';
import { ndjsonLines } from '../prefetch/ndjson-lines.ts';
import { parsePlatform, PlatformError } from '../prefetch/platform-filter.ts';
import { parseWarmLine } from '../prefetch/warm-lines.ts';
import { errorCode, transportReason } from '../upstream/upstream-errors.ts';
import { nodeUrl } from './cache-command.ts';
import { PrefetchDisplay, type DisplayOutput, type PrefetchTotals } from './prefetch-display.ts';

const usage = `usage: outpost prefetch IMAGE... [--platform os/arch]... [--config FILE] [--url URL] [--token TOKEN]

  Warms images in a running node's cache: every blob of every platform (or
  only those given with --platform, repeatable), as a pull would.
  IMAGE is named as for docker pull: nginx:1.27, ghcr.io/org/app:v1,
  team/app@sha256:...; a registry host prefix picks that configured primary.

  Exit status: 0 all warmed, 1 some image failed (each is named), 2 usage error.

The node's URL and admin token come from its configuration (--config FILE or
OUTPOST_CONFIG, then OUTPOST_HOST/OUTPOST_PORT/OUTPOST_ADMIN_TOKEN); --url
and --token override them.
`;

/** Longest NDJSON line read from the node. */
const maxLineBytes = 64 * 1024;
/** Longest silence of the node's stream (it repeats progress every 10 s). */
const idleTimeoutMs = 60_000;

class UsageError extends Error {}

interface PrefetchArgs {
  images: string[];
  platforms: string[];
  config?: string;
  url?: string;
  token?: string;
  help: boolean;
}

function parseArgs(args: readonly string[]): PrefetchArgs {
  const parsed: PrefetchArgs = { images: [], platforms: [], help: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      parsed.images.push(...args.slice(i + 1));
      break;
    }
    if (arg === '-h' || arg === '--help') {
      parsed.help = true;
      continue;
    }
    if (!arg.startsWith('-')) {
      parsed.images.push(arg);
      continue;
    }
    const equals = arg.indexOf('=');
    const name = arg.slice(2, equals === -1 ? undefined : equals);
    if (!arg.startsWith('--') || !['platform', 'config', 'url', 'token'].includes(name)) {
      throw new UsageError(`unknown option ${arg.split('=')[0]} (options: --platform, --config, --url, --token)`);
    }
    const value = equals !== -1 ? arg.slice(equals + 1) : args[++i];
    if (value === undefined || value === '' || (equals === -1 && value.startsWith('--'))) throw new UsageError(`option --${name} needs a value`);
    if (name === 'platform') {
      try {
        parsed.platforms.push(parsePlatform(value));
      } catch (err) {
        if (err instanceof PlatformError) throw new UsageError(err.message);
        throw err;
      }
    } else parsed[name as 'config' | 'url' | 'token'] = value;
  }
  return parsed;
}

/**
 * Reads the node's NDJSON answer into the display. Resolves with the
 * node's summary, or undefined when the stream ended without one (the node
 * went away); rejects on a line that is not part of the protocol.
 */
export async function followPrefetchStream(body: AsyncIterable<Uint8Array | string>, display: PrefetchDisplay): Promise<PrefetchTotals | undefined> {
  for await (const value of ndjsonLines(body, maxLineBytes)) {
    if (typeof value === 'object' && value !== null && 'summary' in value) return parseTotals((value as { summary: unknown }).summary);
    const line = parseWarmLine(value);
    if ('progress' in line) display.progress(line.progress);
    else display.result(line.result);
  }
  return undefined;
}

function parseTotals(value: unknown): PrefetchTotals {
  const v = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const n = (key: string): number => {
    const x = v[key];
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) throw new Error(`the node sent a summary without ${key}`);
    return x;
  };
  return { images: n('images'), warmed: n('warmed'), skipped: n('skipped'), failed: n('failed'), blobs: n('blobs'), bytes: n('bytes') };
}

export async function runPrefetchCommand(args: string[], env: NodeJS.ProcessEnv, io: DisplayOutput): Promise<number> {
  let parsed: PrefetchArgs;
  try {
    parsed = parseArgs(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`outpost prefetch: ${err.message}\n\n${usage}`);
    return 2;
  }
  if (parsed.help) {
    io.out(usage);
    return 0;
  }
  if (parsed.images.length === 0) {
    io.err(`outpost prefetch: name at least one image\n\n${usage}`);
    return 2;
  }
  let config: Config;
  try {
    config = loadConfig({ env, ...(parsed.config !== undefined ? { file: parsed.config } : {}) });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.err(`outpost prefetch: ${err.message.replace(/^Invalid/, 'invalid')}\n`);
    return 2;
  }
  const base = (parsed.url ?? nodeUrl(config.server)).replace(/\/+$/, '');
  const token = parsed.token ?? config.admin.token;
  if (!token) {
    io.err('outpost prefetch: no admin token: pass --token, set OUTPOST_ADMIN_TOKEN, or point --config at the node’s config file (admin.token)\n');
    return 2;
  }
  let res;
  try {
    res = await request(`${base}/api/v0/prefetch`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ images: parsed.images, platforms: parsed.platforms }),
      headersTimeout: 120_000,
      bodyTimeout: idleTimeoutMs,
    });
  } catch (err) {
    const cause = transportReason(errorCode(err), err instanceof Error ? err.name : 'error');
    io.err(
      `outpost prefetch: cannot reach the node at ${base}: ${cause}. Is it running, and is that its address? ` +
        'Check --url, or server.host/server.port (OUTPOST_HOST/OUTPOST_PORT) in the config given with --config.\n',
    );
    return 1;
  }
  if (res.statusCode !== 200) {
    const text = (await res.body.text().catch(() => '')).slice(0, 4_000);
    io.err(`outpost prefetch: the node answered ${res.statusCode}: ${messageOf(text)}\n`);
    if (res.statusCode === 401) io.err('outpost prefetch: the node refused the admin token: check --token, OUTPOST_ADMIN_TOKEN or admin.token\n');
    if (res.statusCode === 405) io.err('outpost prefetch: the node’s admin API is off (no admin token configured), or it has no prefetch endpoint\n');
    return res.statusCode === 400 || res.statusCode === 404 ? 2 : 1;
  }
  const display = new PrefetchDisplay(io);
  let totals: PrefetchTotals | undefined;
  try {
    totals = await followPrefetchStream(res.body, display);
  } catch (err) {
    res.body.destroy();
    io.err(`outpost prefetch: the node's answer broke off: ${(err as Error)?.message ?? String(err)}\n`);
    return 1;
  }
  if (totals === undefined) {
    io.err('outpost prefetch: the node ended its answer before the summary (restarted?); some images may not be warm\n');
    return 1;
  }
  display.summary(totals);
  return totals.failed === 0 ? 0 : 1;
}

/** The first OCI error's code and message, or the text as is. */
function messageOf(text: string): string {
  try {
    const first = (JSON.parse(text) as { errors?: { code?: string; message?: string }[] }).errors?.[0];
    if (first?.code !== undefined) return `${first.code}: ${first.message ?? ''}`.trim();
  } catch {
    // Not an envelope.
  }
  return text.trim() || '(no body)';
}
