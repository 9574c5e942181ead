/**
 * What operators see when the primary fails, driven through a whole
 * in-process node (createOutpostApp) against real loopback sockets: a port
 * that refuses, a host name that cannot resolve, a server that never
 * answers, a primary that answers 404.
 */
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { join } from 'node:path';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.ts';
import { createOutpostApp, type OutpostApp } from '../../../src/process/node-app.ts';
import { transportReason } from '../../../src/upstream/upstream-errors.ts';
import { createCleanupStack } from '../../support/cleanup.ts';
import { freePort } from '../../support/ports.ts';
import { makeTempDir, removeTempDir } from '../../support/temp.ts';

const cleanup = createCleanupStack();
afterEach(() => cleanup.run());

const digest = `sha256:${'ab'.repeat(32)}`;
const password = 'hunter2-upstream-secret';

interface Node {
  app: OutpostApp;
  url: string;
  logs: Record<string, unknown>[];
  clock: { now: () => number; advance(ms: number): void };
}

async function startNode(upstreamUrl: string, env: Record<string, string> = {}): Promise<Node> {
  const dir = await makeTempDir('upstream-failures');
  cleanup.add(() => removeTempDir(dir));
  const config = loadConfig({
    env: {
      OUTPOST_UPSTREAM_URL: upstreamUrl,
      OUTPOST_UPSTREAM_USERNAME: 'mirror-bot',
      OUTPOST_UPSTREAM_PASSWORD: password,
      OUTPOST_CACHE_DIR: dir,
      OUTPOST_UPSTREAM_RETRIES: '0',
      OUTPOST_UPSTREAM_CONNECT_TIMEOUT: '2s',
      OUTPOST_UPSTREAM_HEADERS_TIMEOUT: '300ms',
      ...env,
    },
    machine: { hostname: 'unit', cpus: 1 },
  });
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  let now = Date.parse('2026-01-01T00:00:00Z');
  const clock = { now: () => now, advance: (ms: number) => void (now += ms) };
  const app = await createOutpostApp(config, { logger: pino({ level: 'debug' }, sink), clock });
  const port = await app.listen(0, '127.0.0.1');
  cleanup.add(() => app.close());
  return { app, url: `http://127.0.0.1:${port}`, logs, clock };
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await request(url);
  return { status: res.statusCode, body: await res.body.text() };
}

async function upstreamErrors(app: OutpostApp): Promise<Record<string, number>> {
  const metric = await app.metrics.upstreamErrors.get();
  return Object.fromEntries(metric.values.map((v) => [String(v.labels.code), v.value]));
}

async function upstreamRequests(app: OutpostApp): Promise<Record<string, number>> {
  const metric = await app.metrics.upstreamRequests.get();
  return Object.fromEntries(metric.values.map((v) => [`${v.labels.operation} ${v.labels.outcome}`, v.value]));
}

function errorOf(body: string): { code: string; message: string; detail?: { cause?: string } } {
  return (JSON.parse(body) as { errors: Array<{ code: string; message: string; detail?: { cause?: string } }> }).errors[0]!;
}

async function listen<T extends Server | ReturnType<typeof createTcpServer>>(server: T): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.add(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as AddressInfo).port;
}

/** A primary that answers 404 with an OCI error to everything. */
async function notFoundPrimary(): Promise<string> {
  const server = createHttpServer((req, res) => {
    req.resume();
    const body = JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] });
    res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  return `http://127.0.0.1:${await listen(server)}`;
}

/** A primary that accepts connections and never answers. */
async function silentPrimary(): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  const port = await listen(server);
  cleanup.add(() => {
    for (const socket of sockets) socket.destroy();
  });
  return `http://127.0.0.1:${port}`;
}

describe('outpost_upstream_errors_total', () => {
  it('counts a refused manifest GET once', async () => {
    const node = await startNode(`http://127.0.0.1:${await freePort()}`);
    const res = await get(`${node.url}/v2/library/alpine/manifests/3.20`);
    expect(res.status).toBe(502);
    expect(await upstreamErrors(node.app)).toEqual({ UPSTREAM_UNREACHABLE: 1 });
    expect(await upstreamRequests(node.app)).toEqual({ 'get_manifest UPSTREAM_UNREACHABLE': 1 });
  });

  it('counts a refused blob GET once', async () => {
    const node = await startNode(`http://127.0.0.1:${await freePort()}`);
    const res = await get(`${node.url}/v2/library/alpine/blobs/${digest}`);
    expect(res.status).toBe(502);
    expect(await upstreamErrors(node.app)).toEqual({ UPSTREAM_UNREACHABLE: 1 });
  });

  it('counts a refused tag list once', async () => {
    const node = await startNode(`http://127.0.0.1:${await freePort()}`);
    expect((await get(`${node.url}/v2/library/alpine/tags/list`)).status).toBe(502);
    expect(await upstreamErrors(node.app)).toEqual({ UPSTREAM_UNREACHABLE: 1 });
  });

  it('does not count a 404 from the primary as an error, and the primary stays healthy', async () => {
    const node = await startNode(await notFoundPrimary());
    expect((await get(`${node.url}/v2/library/alpine/manifests/3.20`)).status).toBe(404);
    expect((await get(`${node.url}/v2/library/alpine/blobs/${digest}`)).status).toBe(404);
    expect((await get(`${node.url}/v2/library/alpine/tags/list`)).status).toBe(404);
    expect(await upstreamErrors(node.app)).toEqual({});
    expect(await upstreamRequests(node.app)).toMatchObject({ 'get_manifest UPSTREAM_NOT_FOUND': 1, 'get_blob UPSTREAM_NOT_FOUND': 1 });
    const health = JSON.parse((await get(`${node.url}/health`)).body) as { checks: { primary: { status: string } } };
    expect(health.checks.primary.status).toBe('ok');
  });
});

describe('a 502/504 names the cause', () => {
  it('connection refused: ECONNREFUSED in the detail, the log and /health', async () => {
    const node = await startNode(`http://127.0.0.1:${await freePort()}`);
    const res = await get(`${node.url}/v2/library/alpine/manifests/3.20`);
    expect(res.status).toBe(502);
    expect(errorOf(res.body)).toMatchObject({ code: 'UPSTREAM_UNAVAILABLE', detail: { cause: 'connection refused (ECONNREFUSED)' } });
    const warning = node.logs.find((l) => l.msg === 'primary unavailable; only cached content can be served');
    expect(warning).toMatchObject({ level: 40, code: 'UPSTREAM_UNREACHABLE', cause: 'connection refused (ECONNREFUSED)' });
    const health = JSON.parse((await get(`${node.url}/health`)).body) as { status: string; checks: { primary: { status: string; detail: string } } };
    expect(health.status).toBe('degraded');
    expect(health.checks.primary.detail).toContain('connection refused (ECONNREFUSED)');
  });

  it('a host name that does not resolve: a DNS failure', async () => {
    const node = await startNode('http://nonexistent.invalid:5000');
    const res = await get(`${node.url}/v2/library/alpine/blobs/${digest}`);
    expect(res.status).toBe(502);
    expect(errorOf(res.body).detail?.cause).toMatch(/^DNS lookup failed \((ENOTFOUND|EAI_AGAIN)\)$/);
  });

  it('a primary that never answers: a 504 naming the timeout', async () => {
    const node = await startNode(await silentPrimary());
    const res = await get(`${node.url}/v2/library/alpine/manifests/3.20`);
    expect(res.status).toBe(504);
    expect(errorOf(res.body)).toMatchObject({
      code: 'UPSTREAM_TIMEOUT',
      detail: { cause: 'timeout waiting for response headers (UND_ERR_HEADERS_TIMEOUT)' },
    });
    expect(await upstreamErrors(node.app)).toEqual({ UPSTREAM_TIMEOUT: 1 });
  });

  it('a primary whose certificate is not trusted: a TLS error', async () => {
    const dir = await makeTempDir('tls');
    cleanup.add(() => removeTempDir(dir));
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '1',
        '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
      { stdio: 'ignore' },
    );
    const server = createHttpsServer({ key: await readFile(join(dir, 'k.pem')), cert: await readFile(join(dir, 'c.pem')) }, (_req, res) => res.end());
    const node = await startNode(`https://127.0.0.1:${await listen(server)}`);
    const res = await get(`${node.url}/v2/library/alpine/manifests/3.20`);
    expect(res.status).toBe(502);
    expect(errorOf(res.body).detail?.cause).toBe('TLS error (DEPTH_ZERO_SELF_SIGNED_CERT)');
  });

  it('names the cause on every route and never shows credentials', async () => {
    const node = await startNode(`http://127.0.0.1:${await freePort()}`);
    const bodies = [
      (await get(`${node.url}/v2/library/alpine/manifests/3.20`)).body,
      (await get(`${node.url}/v2/library/alpine/blobs/${digest}`)).body,
      (await get(`${node.url}/v2/library/alpine/tags/list`)).body,
    ];
    for (const body of bodies) expect(errorOf(body).detail?.cause).toBe('connection refused (ECONNREFUSED)');
    const everything = [...bodies, ...node.logs.map((l) => JSON.stringify(l))].join('\n');
    expect(everything).not.toContain(password);
    expect(everything).not.toContain('mirror-bot');
  });
});

describe('transportReason', () => {
  it('puts DNS, refused, reset, TLS and timeout failures in words, with the code', () => {
    expect(transportReason('EAI_AGAIN', 'x')).toBe('DNS lookup failed (EAI_AGAIN)');
    expect(transportReason('ECONNRESET', 'x')).toBe('connection reset (ECONNRESET)');
    expect(transportReason('UND_ERR_SOCKET', 'x')).toBe('connection closed by the primary (UND_ERR_SOCKET)');
    expect(transportReason('EHOSTUNREACH', 'x')).toBe('network unreachable (EHOSTUNREACH)');
    expect(transportReason('UND_ERR_CONNECT_TIMEOUT', 'x')).toBe('connect timeout (UND_ERR_CONNECT_TIMEOUT)');
    expect(transportReason('CERT_HAS_EXPIRED', 'x')).toBe('TLS error (CERT_HAS_EXPIRED)');
    expect(transportReason('ERR_SSL_WRONG_VERSION_NUMBER', 'x')).toBe('TLS error (ERR_SSL_WRONG_VERSION_NUMBER)');
    expect(transportReason('ERR_TLS_CERT_ALTNAME_INVALID', 'x')).toBe('TLS error (ERR_TLS_CERT_ALTNAME_INVALID)');
    expect(transportReason(undefined, 'TypeError')).toBe('transport error (TypeError)');
  });
});

describe('the outage warning', () => {
  it('is logged at most once per primary and cause per 30 s, with the count of what it stood for', async () => {
    // Every request must reach the (dead) primary here: the circuit breaker stays out of the way.
    const node = await startNode(`http://127.0.0.1:${await freePort()}`, { OUTPOST_UPSTREAM_FAILURE_THRESHOLD: '100' });
    const warnings = () => node.logs.filter((l) => l.msg === 'primary unavailable; only cached content can be served');
    for (let i = 0; i < 5; i++) expect((await get(`${node.url}/v2/library/app${i}/manifests/v1`)).status).toBe(502);
    expect(warnings()).toHaveLength(1);
    node.clock.advance(29_000);
    expect((await get(`${node.url}/v2/library/other/manifests/v1`)).status).toBe(502);
    expect(warnings()).toHaveLength(1);
    node.clock.advance(1_500);
    expect((await get(`${node.url}/v2/library/last/manifests/v1`)).status).toBe(502);
    expect(warnings()).toHaveLength(2);
    expect(warnings()[1]).toMatchObject({ cause: 'connection refused (ECONNREFUSED)', suppressed: 5 });
  });
});
