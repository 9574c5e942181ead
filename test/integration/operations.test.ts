/** /health, /livez, /nginx_status and /metrics of a real two-worker node, checked against real traffic, real nginx's stub_status output and promtool. */
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForCachedBlobs } from '../support/cache-dir.ts';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { makeImage, makeLayer, pushImage, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { freePort } from '../support/ports.ts';
import { requireBinary, runProcess, startProcess } from '../support/process.ts';
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
    expect(body).toMatchObject({ healthy: true, checks: { cache_dir: { status: 'ok' }, workers: { status: 'ok' }, primary: { status: 'ok' } } });
  });
});

describe('/health primary check, host-wide', () => {
  let proxy: FaultProxy;
  let node: OutpostNode;

  beforeAll(async () => {
    proxy = await startFaultProxy({ target: registry.url });
    cleanup.add(() => proxy.stop());
    // Every failure below must reach the dead primary (it is what the check reports): the circuit breaker stays out of the way.
    node = await startOutpost({ upstreamUrl: proxy.url, workers: 2, env: { OUTPOST_UPSTREAM_FAILURE_THRESHOLD: '1000' } });
    cleanup.add(() => node.dispose());
  }, 60_000);

  /** The `primary` check of 20 /health answers, each on a fresh connection: the cluster spreads them over both workers. */
  async function primaryChecks(): Promise<string[]> {
    const statuses: string[] = [];
    for (let i = 0; i < 20; i++) {
      const res = await request(`${node.url}/health`, { reset: true });
      const body = (await res.body.json()) as { checks: { primary: { status: string; detail?: string } } };
      statuses.push(`${body.checks.primary.status}${body.checks.primary.detail === undefined ? '' : `: ${body.checks.primary.detail}`}`);
    }
    return statuses;
  }

  async function allAgree(expected: (status: string) => boolean, what: string): Promise<void> {
    let last: string[] = [];
    await waitFor(
      async () => {
        last = await primaryChecks();
        return last.every(expected);
      },
      { what, timeoutMs: 15_000, intervalMs: 100 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last answers: ${JSON.stringify(last)}`);
    });
  }

  it('shows an outage one worker saw on every answer, and the recovery too, with one warning line', async () => {
    await allAgree((s) => s === 'ok', 'every /health to report the primary ok');
    await proxy.refuse();
    // One failed pull: whichever worker takes it, every worker's /health must say so.
    const failed = await request(`${node.url}/v2/team/ops/manifests/v1`, { reset: true });
    expect(failed.statusCode).toBe(502);
    const failure = await failed.body.text();
    await allAgree((s) => s.startsWith('degraded'), 'every /health to report the primary degraded');
    const answers = new Set(await primaryChecks());
    expect(answers.size).toBe(1);
    expect([...answers][0]).toContain(`${proxy.host}: connection refused (ECONNREFUSED)`);
    expect(JSON.parse(failure).errors[0].detail).toEqual({ cause: 'connection refused (ECONNREFUSED)' });

    // More failures on both workers: still one warning line for this primary and cause.
    for (let i = 0; i < 6; i++) await (await request(`${node.url}/v2/team/ops/manifests/v${i + 2}`, { reset: true })).body.dump();
    const warnings = node.logs().filter((l) => l.msg === 'primary unavailable; only cached content can be served');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ role: 'primary', upstream: proxy.host, code: 'UPSTREAM_UNREACHABLE', cause: 'connection refused (ECONNREFUSED)' });

    await proxy.restore();
    const ok = await request(`${node.url}/v2/team/ops/manifests/v1`, { reset: true });
    expect(ok.statusCode).toBe(200);
    await ok.body.dump();
    await allAgree((s) => s === 'ok', 'every /health to report the primary ok again');
    expect(node.logs().filter((l) => l.msg === 'primary reachable again')).toHaveLength(1);
  });
});

describe('/livez', () => {
  it('answers 200 {"alive":true}', async () => {
    const res = await text(`${outpost.url}/livez`);
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^application\/json/);
    expect(JSON.parse(res.body)).toEqual({ alive: true });
  });

  it('stays 200 while the node drains and /health answers 503', async () => {
    const node = await startOutpost({ upstreamUrl: registry.url, workers: 1, env: { OUTPOST_DRAIN_SECONDS: '4' } });
    cleanup.add(() => node.dispose());
    process.kill(node.pid!, 'SIGTERM');
    await waitFor(async () => (await request(`${node.url}/health`, { reset: true }).then(async (r) => (await r.body.dump(), r.statusCode))) === 503, {
      what: 'the draining node to fail /health',
      timeoutMs: 3_000,
      intervalMs: 20,
    });
    const live = await request(`${node.url}/livez`, { reset: true });
    expect(live.statusCode).toBe(200);
    expect(await live.body.json()).toEqual({ alive: true });
    expect((await node.exited()).code).toBe(0);
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

/** Resident set size of a process and its children (the node's primary and workers), from /proc. */
async function treeRssBytes(pid: number): Promise<number> {
  const rss = async (p: number): Promise<number> => {
    const status = await readFile(`/proc/${p}/status`, 'utf8').catch(() => '');
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
  };
  const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => n > 0);
  let total = await rss(pid);
  for (const child of children) total += await rss(child);
  return total;
}

describe('/metrics', () => {
  it('exports process metrics and outpost_ samples, with cache hits after a warm pull', async () => {
    await pull(); // cold
    await waitForCachedBlobs(outpost.cacheDir, image.blobs.map((b) => b.digest));
    await pull(); // warm
    const { status, body, type } = await text(`${outpost.url}/metrics`);
    expect(status).toBe(200);
    expect(type).toMatch(/^text\/plain/);
    const samples = body.split('\n').filter((line) => line.startsWith('outpost_'));
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

  it('has the default process metrics under their standard names, once each, for the whole node', async () => {
    const { body } = await text(`${outpost.url}/metrics`);
    expect(body).not.toMatch(/^(# (HELP|TYPE) )?outpost_(process|nodejs)_/m);
    for (const name of [
      'process_resident_memory_bytes',
      'process_cpu_seconds_total',
      'process_start_time_seconds',
      'process_open_fds',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
      'nodejs_version_info',
    ]) {
      expect(body.match(new RegExp(`^# TYPE ${name} `, 'gm')), name).toHaveLength(1);
      expect(body.match(new RegExp(`^${name}(\\{[^}]*\\})? `, 'gm')), name).toHaveLength(1);
    }
    // Summed over the primary and both workers: the node's RSS, about what /proc says for the process tree.
    const rss = sample(body, 'process_resident_memory_bytes');
    const tree = await treeRssBytes(outpost.pid!);
    expect(rss).toBeGreaterThan(tree * 0.6);
    expect(rss).toBeLessThan(tree * 1.6);
    expect(sample(body, 'nodejs_version_info')).toBe(1);
    // The node started when its primary did (not the sum of three start times).
    expect(sample(body, 'process_start_time_seconds')).toBeLessThanOrEqual(Date.now() / 1000);
    expect(sample(body, 'process_start_time_seconds')).toBeGreaterThan(Date.now() / 1000 - 3600);
  });

  it('is valid Prometheus text: promtool check metrics finds no error, and lints only prom-client\'s own stock names', async () => {
    const promtool = requireBinary('promtool');
    const { body } = await text(`${outpost.url}/metrics`);
    const dir = await makeTempDir('metrics');
    cleanup.add(() => removeTempDir(dir));
    await writeFile(path.join(dir, 'metrics.txt'), body);
    const result = await runProcess('sh', ['-c', `"${promtool}" check metrics < metrics.txt`], { cwd: dir, timeoutMs: 30_000 });
    // 0: clean; 3: lint findings only; 1: the text does not parse (e.g. a metric family twice).
    expect([0, 3], result.output).toContain(result.exitCode);
    const findings = result.output.split('\n').filter((l) => l.trim() !== '');
    // prom-client names these gauges `..._total`; they are the standard names stock dashboards use.
    const stock = /^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/;
    expect(findings.filter((l) => !stock.test(l))).toEqual([]);
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
