/**
 * What the logs say about routing, through a whole in-process node
 * (createOutpostApp) whose default primary is a loopback server declared a
 * Docker Hub mirror: the access log names the `ns` asked for, the primary
 * chosen and the OCI error code, and an `ns` no primary answers to is also
 * a warning, once, naming the configuration to add.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.ts';
import { UnknownNamespaces } from '../../../src/http/unknown-namespaces.ts';
import { createOutpostApp } from '../../../src/process/node-app.ts';
import { createCleanupStack } from '../../support/cleanup.ts';
import { makeTempDir, removeTempDir } from '../../support/temp.ts';

const cleanup = createCleanupStack();
const logs: Record<string, unknown>[] = [];
const upstreamPaths: string[] = [];
let url: string;
let primaryHost: string;

beforeAll(async () => {
  // A primary that has nothing: every manifest is 404 MANIFEST_UNKNOWN.
  const primary: Server = createServer((req, res) => {
    upstreamPaths.push(req.url ?? '');
    const body = JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] });
    res.writeHead(req.url === '/v2/' ? 200 : 404, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' });
    res.end(req.url === '/v2/' ? '{}' : body);
  });
  await new Promise<void>((resolve) => primary.listen(0, '127.0.0.1', resolve));
  cleanup.add(() => new Promise<void>((resolve) => primary.close(() => resolve())));
  primaryHost = `127.0.0.1:${(primary.address() as AddressInfo).port}`;
  const dir = await makeTempDir('routing-log');
  cleanup.add(() => removeTempDir(dir));
  const config = loadConfig({
    env: {
      OUTPOST_UPSTREAM_URL: `http://${primaryHost}`,
      OUTPOST_UPSTREAM_ALIASES: 'docker.io',
      OUTPOST_UPSTREAM_DOCKER_HUB: 'true',
      OUTPOST_UPSTREAM_RETRIES: '0',
      OUTPOST_CACHE_DIR: dir,
    },
    machine: { hostname: 'unit', cpus: 1 },
  });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const app = await createOutpostApp(config, { logger: pino({ level: 'info' }, sink) });
  const port = await app.listen(0, '127.0.0.1');
  cleanup.add(() => app.close());
  url = `http://127.0.0.1:${port}`;
});
afterAll(() => cleanup.run());

async function get(path: string): Promise<{ status: number; code: unknown }> {
  const res = await request(`${url}${path}`);
  const body = (await res.body.json()) as { errors?: Array<{ code: string }> };
  return { status: res.statusCode, code: body.errors?.[0]?.code };
}

/** The access-log line of the last request to `path` (logged when the response closes). */
async function accessLine(reference: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const line = logs.findLast((l) => l.msg === 'request' && l.reference === reference);
    if (line) return line;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`no access-log line for ${reference}`);
}

describe('routing in the logs', () => {
  it('tells an ns no primary answers to apart from a manifest the primary lacks', async () => {
    expect(await get('/v2/nginx/manifests/unknown-ns?ns=quay.io')).toEqual({ status: 404, code: 'NAME_UNKNOWN' });
    const refused = await accessLine('unknown-ns');
    expect(refused).toMatchObject({ ns: 'quay.io', status: 404, code: 'NAME_UNKNOWN' });
    expect(refused.upstream).toBeUndefined();
    expect(refused.upstreamMs).toBeUndefined();

    expect(await get('/v2/nginx/manifests/missing?ns=docker.io')).toEqual({ status: 404, code: 'MANIFEST_UNKNOWN' });
    const missing = await accessLine('missing');
    expect(missing).toMatchObject({ ns: 'docker.io', upstream: primaryHost, status: 404, code: 'MANIFEST_UNKNOWN' });
    // The time the request waited on the primary that answered it.
    expect(missing.upstreamMs).toBeGreaterThan(0);
    expect(missing.upstreamMs).toBeLessThanOrEqual(missing.durationMs as number);
    // docker.io is the primary's alias, and a Docker Hub mirror's names take library/.
    expect(upstreamPaths).toContain('/v2/library/nginx/manifests/missing');
  });

  it('warns once per unknown ns, naming the configuration that would serve it', async () => {
    await get('/v2/org/app/manifests/a?ns=ghcr.io');
    await get('/v2/org/app/manifests/b?ns=ghcr.io');
    const warnings = logs.filter((l) => l.level === 40 && l.ns === 'ghcr.io');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.config).toContain('registries: [{host: ghcr.io');
    expect(warnings[0]!.config).toContain('upstream: {aliases: [ghcr.io]}');
  });

  it('logs the primary chosen without any ns', async () => {
    await get('/v2/team/app/manifests/plain');
    const line = await accessLine('plain');
    expect(line).toMatchObject({ upstream: primaryHost, code: 'MANIFEST_UNKNOWN' });
    expect(line.ns).toBeUndefined();
  });
});

describe('UnknownNamespaces', () => {
  it('remembers a bounded number of names, then says the rest are only in the access log', () => {
    const warned: Array<{ obj: Record<string, unknown>; msg: string }> = [];
    const logger = { debug() {}, info() {}, error() {}, warn: (obj: object, msg: string) => void warned.push({ obj: obj as Record<string, unknown>, msg }) };
    const namespaces = new UnknownNamespaces(logger, 2);
    for (const ns of ['a.io', 'b.io', 'a.io', 'c.io', 'd.io', 'c.io']) namespaces.seen(ns);
    expect(warned.map((w) => w.obj.ns ?? `limit ${String(w.obj.limit)}`)).toEqual(['a.io', 'b.io', 'limit 2']);
  });

  it('suggests dockerHub: true for a Docker Hub name', () => {
    const warned: Array<Record<string, unknown>> = [];
    const logger = { debug() {}, info() {}, error() {}, warn: (obj: object) => void warned.push(obj as Record<string, unknown>) };
    new UnknownNamespaces(logger).seen('docker.io');
    expect(warned[0]!.config).toContain('upstream: {aliases: [docker.io], dockerHub: true}');
  });
});
