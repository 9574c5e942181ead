/** /health, /nginx_status and /metrics of a real two-worker node, checked against real traffic and real nginx's stub_status output. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { makeImage, makeLayer, pushImage, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { freePort } from '../support/ports.ts';
import { requireBinary, startProcess } from '../support/process.ts';
import { ociLayoutManifestDigests, skopeoCopy } from '../support/skopeo.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';
import { waitFor } from '../support/wait.ts';

const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let outpost: OutpostNode;
let image: Image;

beforeAll(async () => {
  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  image = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 200_000, seed: 'ops' })] });
  await pushImage(registry.url, 'team/ops', 'v1', image);
  outpost = await startOutpost({ upstreamUrl: registry.url, workers: 2 });
  cleanup.add(() => outpost.dispose());
}, 60_000);
afterAll(() => cleanup.run());

async function text(url: string): Promise<{ status: number; body: string; type: string | undefined }> {
  const res = await request(url);
  return { status: res.statusCode, body: await res.body.text(), type: res.headers['content-type'] as string | undefined };
}

async function pull(): Promise<void> {
  const dir = await makeTempDir('ops-pull');
  cleanup.add(() => removeTempDir(dir));
  await skopeoCopy(`docker://${outpost.host}/team/ops:v1`, `oci:${dir}:v1`);
  expect(await ociLayoutManifestDigests(dir)).toEqual([image.digest]);
}

function sample(metrics: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** Real nginx's stub_status page, with numbers replaced, as the reference format. */
async function nginxStubStatusShape(): Promise<string> {
  const nginx = requireBinary('nginx');
  const dir = await makeTempDir('nginx-stub');
  cleanup.add(() => removeTempDir(dir));
  const port = await freePort();
  await mkdir(path.join(dir, 'tmp'), { recursive: true });
  const conf = path.join(dir, 'nginx.conf');
  await writeFile(
    conf,
    `daemon off; master_process off; user root; error_log ${dir}/error.log; pid ${dir}/nginx.pid;
events {}
http { access_log off; client_body_temp_path ${dir}/tmp; proxy_temp_path ${dir}/tmp; fastcgi_temp_path ${dir}/tmp; uwsgi_temp_path ${dir}/tmp; scgi_temp_path ${dir}/tmp;
  server { listen 127.0.0.1:${port}; location = /nginx_status { stub_status; } } }
`,
  );
  const proc = await startProcess(nginx, ['-c', conf, '-p', dir], { name: 'nginx' });
  cleanup.add(() => proc.stop());
  let body = '';
  await waitFor(
    async () => {
      const res = await text(`http://127.0.0.1:${port}/nginx_status`).catch(() => undefined);
      body = res?.body ?? '';
      return res?.status === 200;
    },
    { what: 'nginx stub_status', timeoutMs: 10_000 },
  );
  return body.replace(/\d+/g, 'N');
}

describe('/health', () => {
  it('answers 200 healthy with its checks', async () => {
    const res = await text(`${outpost.url}/health`);
    expect(res.status).toBe(200);
    const body = JSON.parse(res.body);
    expect(body).toMatchObject({ healthy: true, checks: { cache_dir: { status: 'ok' }, workers: { status: 'ok' } } });
  });
});

describe('/nginx_status', () => {
  it('has exactly the format of nginx stub_status', async () => {
    const ours = (await text(`${outpost.url}/nginx_status`)).body.replace(/\d+/g, 'N');
    expect(ours).toBe(await nginxStubStatusShape());
  });

  it('counts requests across all workers', async () => {
    const parse = (body: string) => {
      const [, accepts, handled, requests] = /\n (\d+) (\d+) (\d+) \n/.exec(body) ?? [];
      return { accepts: Number(accepts), handled: Number(handled), requests: Number(requests) };
    };
    const before = parse((await text(`${outpost.url}/nginx_status`)).body);
    // 20 requests on fresh connections: the cluster spreads them over both workers.
    for (let i = 0; i < 20; i++) {
      const res = await request(`${outpost.url}/v2/`, { reset: true });
      await res.body.dump();
    }
    const after = parse((await text(`${outpost.url}/nginx_status`)).body);
    expect(after.requests - before.requests).toBeGreaterThanOrEqual(21);
    expect(after.accepts - before.accepts).toBeGreaterThanOrEqual(19); // the first may reuse the status request's connection
    expect(after.handled).toBe(after.accepts);
  });
});

describe('/metrics', () => {
  it('exports process metrics and outpost_ samples, with cache hits after a warm pull', async () => {
    await pull(); // cold
    await pull(); // warm
    const { status, body, type } = await text(`${outpost.url}/metrics`);
    expect(status).toBe(200);
    expect(type).toMatch(/^text\/plain/);
    expect(body).toMatch(/^outpost_process_resident_memory_bytes /m);
    const samples = body.split('\n').filter((line) => line.startsWith('outpost_') && !/^outpost_(process|nodejs)_/.test(line));
    expect(samples.length).toBeGreaterThanOrEqual(10);
    expect(sample(body, 'outpost_cache_requests_total', { kind: 'blob', result: 'hit' })).toBeGreaterThanOrEqual(2);
    expect(sample(body, 'outpost_cache_requests_total', { kind: 'tag', result: 'hit' })).toBeGreaterThanOrEqual(1);
    expect(sample(body, 'outpost_served_bytes_total', { source: 'cache' })).toBeGreaterThanOrEqual(image.layers[0]!.size);
    expect(sample(body, 'outpost_upstream_fetched_bytes_total')).toBeGreaterThanOrEqual(image.layers[0]!.size);
    expect(sample(body, 'outpost_http_requests_total', { route: 'blob', status: '200' })).toBeGreaterThanOrEqual(4);
    expect(sample(body, 'outpost_workers_up')).toBe(2);
    // Bounded labels: no digest or repository ever appears.
    expect(body).not.toMatch(/sha256:|team\/ops/);
  });
});

describe('access log', () => {
  it('writes one JSON line per registry request with its details', async () => {
    await pull();
    const lines = outpost.logs().filter((l) => l.msg === 'request' && l.route === 'blob');
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.at(-1)).toMatchObject({
      method: 'GET',
      repository: 'team/ops',
      status: 200,
      cache: expect.any(String),
      reqId: expect.any(String),
      durationMs: expect.any(Number),
      bytes: expect.any(Number),
    });
  });
});
