import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { formatJobs, isPrefetchJobsCommand, runPrefetchJobsCommand } from '../../../src/cli/prefetch-jobs-command.ts';
import type { PrefetchJobStatus } from '../../../src/prefetch/ports.ts';

const status: PrefetchJobStatus = {
  name: 'nightly',
  schedule: '0 3 * * *',
  timezone: 'Europe/Berlin',
  upstream: 'registry-1.docker.io',
  nextRunAt: '2026-12-01T02:00:00.000Z',
  lastRun: {
    runId: '20261130T020000Z-abcdef',
    startedAt: '2026-11-30T02:00:00.000Z',
    finishedAt: '2026-11-30T02:03:00.000Z',
    result: 'partial',
    counts: { images: 3, warmed: 2, skipped: 0, failed: 1, blobs: 9, bytes: 12_500_000 },
    errors: ['registry-1.docker.io/library/nginx:9: MANIFEST_UNKNOWN'],
  },
};

let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

async function fakeNode(): Promise<{ url: string; seen: string[] }> {
  const seen: string[] = [];
  server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.authorization}`);
    if (req.url === '/api/v0/prefetch/jobs') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jobs: [status] }));
    if (req.url === '/api/v0/prefetch/jobs/nightly/run') return void res.writeHead(202).end(JSON.stringify({ job: 'nightly', runId: 'r-1' }));
    res.writeHead(404).end(JSON.stringify({ errors: [{ code: 'JOB_UNKNOWN', message: 'no prefetch job of that name is configured' }] }));
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server!.address() as AddressInfo).port}`, seen };
}

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, sink: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t) } };
}

describe('outpost prefetch jobs | run', () => {
  it('is chosen for `jobs` and `run`, never for images', () => {
    expect(isPrefetchJobsCommand(['jobs'])).toBe(true);
    expect(isPrefetchJobsCommand(['run', 'nightly'])).toBe(true);
    expect(isPrefetchJobsCommand(['nginx:1.27'])).toBe(false);
  });

  it('lists the jobs as an operator reads them', async () => {
    const node = await fakeNode();
    const o = io();
    expect(await runPrefetchJobsCommand(['jobs', '--url', node.url, '--token', 't0k'], {}, o.sink)).toBe(0);
    expect(node.seen).toEqual(['GET /api/v0/prefetch/jobs Bearer t0k']);
    expect(o.out.join('')).toBe(formatJobs([status]));
    expect(formatJobs([status])).toBe(
      'nightly  0 3 * * * (Europe/Berlin)  upstream registry-1.docker.io  next 2026-12-01T02:00:00.000Z\n' +
        '  last run 20261130T020000Z-abcdef: partial, started 2026-11-30T02:00:00.000Z, finished 2026-11-30T02:03:00.000Z\n' +
        '  2/3 images warmed, 0 skipped, 1 failed, 9 blobs, 12.5 MB\n' +
        '  error: registry-1.docker.io/library/nginx:9: MANIFEST_UNKNOWN\n',
    );
  });

  it('runs a job now and prints its run id; an unknown job is exit 1 with the node\'s code', async () => {
    const node = await fakeNode();
    const ok = io();
    expect(await runPrefetchJobsCommand(['run', 'nightly', '--url', node.url, '--token', 't'], {}, ok.sink)).toBe(0);
    expect(ok.out.join('')).toBe('r-1\n');
    const unknown = io();
    expect(await runPrefetchJobsCommand(['run', 'nope', '--url', node.url, '--token', 't'], {}, unknown.sink)).toBe(1);
    expect(unknown.err.join('')).toBe('outpost prefetch: the node answered HTTP 404: JOB_UNKNOWN: no prefetch job of that name is configured\n');
  });

  it('refuses usage errors with exit 2', async () => {
    const o = io();
    expect(await runPrefetchJobsCommand(['run', '--token', 't'], {}, o.sink)).toBe(2);
    expect(await runPrefetchJobsCommand(['jobs', '--bogus'], {}, o.sink)).toBe(2);
  });
});
