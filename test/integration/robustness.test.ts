/**
 * Misbehaving clients on every route of a real node: bad JSON, bodies too
 * large, cut short or dripped, headers never finished, malformed
 * percent-encoding. Every answer is a 4xx (an OCI error envelope where the
 * API has one), never a 5xx, and no worker dies.
 */
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { makeImage, makeLayer, pushImage, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { waitFor } from '../support/wait.ts';
import { rawExchange, type RawExchange, type RawExchangeOptions } from '../support/raw-http.ts';

const token = 'fuzz-admin-token';
const bodyTimeoutMs = 2_000;
const headersTimeoutMs = 1_000;
const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let outpost: OutpostNode;
let image: Image;
let workers: number[];

function workerPids(): number[] {
  return outpost.logs().filter((l) => l.msg === 'worker listening').map((l) => l.pid as number);
}

beforeAll(async () => {
  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  image = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 100_000, seed: 'fuzz' })] });
  await pushImage(registry.url, 'team/app', 'v1', image);
  outpost = await startOutpost({
    upstreamUrl: registry.url,
    workers: 2,
    env: {
      OUTPOST_ADMIN_TOKEN: token,
      OUTPOST_HEADERS_TIMEOUT: `${headersTimeoutMs}ms`,
      OUTPOST_BODY_TIMEOUT: `${bodyTimeoutMs}ms`,
    },
  });
  cleanup.add(() => outpost.dispose());
  // Warm the cache so the registry routes answer from disk as well as from the primary.
  for (const path of [`/v2/team/app/manifests/v1`, `/v2/team/app/blobs/${image.layers[0]!.digest}`]) {
    const res = await request(`${outpost.url}${path}`, { headers: { accept: image.mediaType } });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
  }
  await waitFor(() => workerPids().length === 2, { what: 'both workers to log that they listen' });
  workers = workerPids();
}, 120_000);
afterAll(() => cleanup.run());

afterEach(async () => {
  // The node still serves, with the workers it started with.
  expect(outpost.logs().filter((l) => l.msg === 'worker died; restarting' || l.msg === 'request handler threw')).toEqual([]);
  expect(workerPids()).toEqual(workers);
  const res = await request(`${outpost.url}/v2/team/app/manifests/v1`, { headers: { accept: image.mediaType } });
  expect(res.statusCode).toBe(200);
  await res.body.dump();
  const metrics = await (await request(`${outpost.url}/metrics`)).body.text();
  expect(metrics).toMatch(/^outpost_worker_restarts_total 0$/m);
});

function routes(): string[] {
  const manifest = image.digest;
  const layer = image.layers[0]!.digest;
  return [
    '/v2/',
    '/v2/_catalog',
    '/v2/team/app/manifests/v1',
    `/v2/team/app/manifests/${manifest}`,
    `/v2/team/app/blobs/${layer}`,
    '/v2/team/app/tags/list?n=1',
    `/v2/team/app/referrers/${manifest}`,
    '/v2/team/app/blobs/uploads/',
    '/health',
    '/metrics',
    '/nginx_status',
    '/api/v0/cache/stats',
    '/api/v0/cache/entries?limit=2',
    `/api/v0/cache/entries/sha256:${'0'.repeat(64)}`,
    '/api/v0/cache/purge',
    '/api/v0/cache/pins',
    '/',
    '/nope',
  ];
}

const methods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

interface Exchange {
  what: string;
  path: string;
  method: string;
  result: RawExchange;
}

function requestHead(method: string, path: string, headers: Record<string, string>, keepAlive = false): string {
  const lines = [`${method} ${path} HTTP/1.1`, `Host: ${outpost.host}`, `Authorization: Bearer ${token}`];
  if (!keepAlive) lines.push('Connection: close');
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

function chunked(totalBytes: number, chunkBytes: number): string {
  let out = '';
  for (let sent = 0; sent < totalBytes; sent += chunkBytes) out += `${chunkBytes.toString(16)}\r\n${'x'.repeat(chunkBytes)}\r\n`;
  return `${out}0\r\n\r\n`;
}

interface BodyCase {
  what: string;
  headers: Record<string, string>;
  body: string;
  options?: RawExchangeOptions;
  /** A response is owed (false: the client went away first, any answer or none is fine). */
  answered: boolean;
}

const oversized = 'x'.repeat(256 * 1024);
const bodyCases: BodyCase[] = [
  { what: 'invalid JSON', headers: { 'content-type': 'application/json', 'content-length': '14' }, body: '{"digest": "sh', answered: true },
  { what: 'JSON that is not an object', headers: { 'content-type': 'application/json', 'content-length': '5' }, body: '[1,2]', answered: true },
  { what: 'oversized body', headers: { 'content-length': String(oversized.length) }, body: oversized, answered: true },
  { what: 'oversized chunked body', headers: { 'transfer-encoding': 'chunked' }, body: chunked(256 * 1024, 16 * 1024), answered: true },
  { what: 'body cut short', headers: { 'content-length': '1000' }, body: '{"all":', options: { end: true }, answered: false },
];

async function inPool<T>(items: readonly T[], concurrency: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await run(items[next++]!);
    }),
  );
}

function isOciEnvelope(body: string): boolean {
  try {
    const parsed = JSON.parse(body) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    return typeof parsed.errors?.[0]?.code === 'string' && typeof parsed.errors[0].message === 'string';
  } catch {
    return false;
  }
}

function hasErrorEnvelope(path: string): boolean {
  return path.startsWith('/v2/') || path.startsWith('/api/v0/');
}

/** What is wrong with an answer, or undefined. */
function problemWith(exchange: Exchange, answered: boolean): string | undefined {
  const { result, method, path } = exchange;
  if (result.status === undefined) return answered ? 'no response' : undefined;
  if (result.status >= 500) return `status ${result.status}: ${result.body.slice(0, 200)}`;
  if (result.status >= 400 && method !== 'HEAD' && result.status !== 408 && hasErrorEnvelope(path) && answered && !isOciEnvelope(result.body)) {
    return `status ${result.status} without an OCI error envelope: ${result.body.slice(0, 200)}`;
  }
  return undefined;
}

describe('bad request bodies', () => {
  it('never answer 5xx or take a worker down, on any route and method', async () => {
    // Keep-alive and Connection: close take different paths through Node's server (a crash hid in one of them).
    const cases = routes().flatMap((path) =>
      methods.flatMap((method) => bodyCases.flatMap((body) => [true, false].map((keepAlive) => ({ path, method, body, keepAlive })))),
    );
    const problems: string[] = [];
    await inPool(cases, 16, async ({ path, method, body, keepAlive }) => {
      const result = await rawExchange('127.0.0.1', outpost.port, requestHead(method, path, body.headers, keepAlive) + body.body, {
        timeoutMs: 10_000,
        untilResponse: true,
        head: method === 'HEAD',
        ...body.options,
      });
      const problem = problemWith({ what: body.what, path, method, result }, body.answered);
      if (problem) problems.push(`${method} ${path} with ${body.what}${keepAlive ? ' (keep-alive)' : ''}: ${problem}`);
    });
    expect(problems).toEqual([]);
    expect(cases.length).toBeGreaterThan(1_000);
  });

  it('answer the admin API with 400 BODY_INVALID for bad JSON and 413 BODY_TOO_LARGE for too large a body', async () => {
    const post = async (path: string, headers: Record<string, string>, body: string): Promise<{ status?: number; code?: string }> => {
      const result = await rawExchange('127.0.0.1', outpost.port, requestHead('POST', path, headers, true) + body, { untilResponse: true });
      const code = isOciEnvelope(result.body) ? (JSON.parse(result.body) as { errors: Array<{ code: string }> }).errors[0]!.code : undefined;
      return { status: result.status, code };
    };
    const json = (body: string): Record<string, string> => ({ 'content-type': 'application/json', 'content-length': String(body.length) });
    expect(await post('/api/v0/cache/purge', json('{bad'), '{bad')).toEqual({ status: 400, code: 'BODY_INVALID' });
    expect(await post('/api/v0/cache/pins', json('[1]'), '[1]')).toEqual({ status: 400, code: 'BODY_INVALID' });
    expect(await post('/api/v0/cache/purge', json('{"nothing":1}'), '{"nothing":1}')).toEqual({ status: 400, code: 'BODY_INVALID' });
    expect(await post('/api/v0/cache/pins', json('{"reference":7}'), '{"reference":7}')).toEqual({ status: 400, code: 'BODY_INVALID' });
    expect(await post('/api/v0/cache/purge', { 'content-length': String(oversized.length) }, oversized)).toEqual({ status: 413, code: 'BODY_TOO_LARGE' });
    expect(await post('/api/v0/cache/purge', { 'transfer-encoding': 'chunked' }, chunked(128 * 1024, 8 * 1024))).toEqual({
      status: 413,
      code: 'BODY_TOO_LARGE',
    });
    // Four in a row took a node down once (each crashed a worker): now the same connection-less burst is harmless.
    for (let i = 0; i < 8; i++) {
      expect((await post('/api/v0/cache/purge', { 'content-length': String(70 * 1024) }, 'x'.repeat(70 * 1024))).status).toBe(413);
    }
  });

  it('are cut after the body timeout when they drip in, on every route', async () => {
    const results = await Promise.all(
      routes().map(async (path) => ({
        path,
        result: await rawExchange('127.0.0.1', outpost.port, requestHead('POST', path, { 'content-length': '100' }), {
          drip: { bytes: 'x', everyMs: 200 },
          timeoutMs: bodyTimeoutMs + 8_000,
        }),
      })),
    );
    for (const { path, result } of results) {
      expect(result.closedByServer, path).toBe(true);
      expect(result.ms, path).toBeLessThan(bodyTimeoutMs + 5_000);
      expect(result.status ?? 0, path).toBeLessThan(500);
    }
  });

  it('are cut after the headers timeout when the headers never end', async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        rawExchange('127.0.0.1', outpost.port, 'GET /v2/ HTTP/1.1\r\nHost: x\r\n', { drip: { bytes: 'X-Slow: 1\r\n', everyMs: 100 }, timeoutMs: 10_000 }),
      ),
    );
    for (const result of results) {
      expect(result.closedByServer).toBe(true);
      expect(result.status).toBe(408);
      expect(result.ms).toBeLessThan(headersTimeoutMs + 4_000);
    }
  });
});

describe('malformed percent-encoding', () => {
  it('is 400 with an OCI error in registry and admin paths and queries', async () => {
    const cases: Array<[method: string, path: string, statuses: number[]]> = [
      ['GET', '/v2/foo/manifests/%E0%A4%A', [400, 404]], // a malformed reference: 400, or 404 MANIFEST_UNKNOWN for a tag
      ['HEAD', '/v2/foo/manifests/%', [400, 404]],
      ['GET', '/v2/team/app/blobs/%', [400]],
      ['GET', '/v2/team/app/blobs/sha256%3A%ZZ', [400]],
      ['GET', '/v2/foo%ZZ/tags/list', [400]],
      ['GET', '/v2/team/app/referrers/%E0%A4%A', [400]],
      ['GET', '/v2/_catalog?n=%', [400]],
      ['GET', '/v2/team/app/tags/list?n=%', [400]],
      ['DELETE', '/api/v0/cache/entries/%ZZ', [400]],
      ['DELETE', '/api/v0/cache/entries/%E0%A4%A', [400]],
    ];
    for (const [method, path, statuses] of cases) {
      const result = await rawExchange('127.0.0.1', outpost.port, requestHead(method, path, {}), { untilResponse: true, head: method === 'HEAD' });
      expect(statuses, `${method} ${path} answered ${result.status}`).toContain(result.status);
      if (method !== 'HEAD') expect(isOciEnvelope(result.body), `${method} ${path}: ${result.body}`).toBe(true);
    }
  });

  it('never answers 5xx anywhere', async () => {
    const junk = ['%', '%ZZ', '%E0%A4%A', '%00', '%2F..%2F', '%%', '%C0%AF'];
    const paths = junk.flatMap((j) => [
      `/v2/${j}/manifests/v1`,
      `/v2/team/app/manifests/${j}`,
      `/v2/team/app/blobs/${j}`,
      `/v2/_catalog?n=1&last=${j}`,
      `/v2/team/app/tags/list?last=${j}&ns=${j}`,
      `/v2/team/app/manifests/v1?ns=${j}`,
      `/api/v0/cache/entries?limit=${j}&cursor=${j}`,
      `/api/v0/cache/entries/${j}`,
      `/api/v0/cache/pins?reference=${j}`,
      `/health?${j}`,
      `/nginx_status?${j}=${j}`,
      `/metrics?${j}`,
      `/${j}`,
    ]);
    const problems: string[] = [];
    await inPool(
      paths.flatMap((path) => ['GET', 'DELETE'].map((method) => ({ path, method }))),
      8,
      async ({ path, method }) => {
        const result = await rawExchange('127.0.0.1', outpost.port, requestHead(method, path, {}), { untilResponse: true });
        const problem = problemWith({ what: 'junk', path, method, result }, true);
        if (problem) problems.push(`${method} ${path}: ${problem}`);
      },
    );
    expect(problems).toEqual([]);
  });
});
