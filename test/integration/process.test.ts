/** The process model: cluster workers restarted when they die, clean SIGTERM with drain, config errors that stop the start. */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { pushBlob } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { runProcess } from '../support/process.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';
import { waitFor } from '../support/wait.ts';

const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let proxy: FaultProxy;

beforeAll(async () => {
  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  proxy = await startFaultProxy({ target: registry.url });
  cleanup.add(() => proxy.stop());
}, 60_000);
afterAll(() => cleanup.run());

function workerPids(logs: Record<string, unknown>[]): number[] {
  return logs.filter((l) => l.msg === 'worker listening').map((l) => l.pid as number);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function serves(outpost: OutpostNode): Promise<boolean> {
  const res = await request(`${outpost.url}/v2/`, { reset: true }).catch(() => undefined);
  if (!res) return false;
  await res.body.dump();
  return res.statusCode === 200;
}

async function restartsCounted(outpost: OutpostNode): Promise<number> {
  const res = await request(`${outpost.url}/metrics`);
  const line = (await res.body.text()).split('\n').find((l) => l.startsWith('outpost_worker_restarts_total '));
  return Number(line?.split(' ')[1]);
}

describe('process model', () => {
  it('restarts a worker that dies and keeps serving', async () => {
    const outpost = await startOutpost({ upstreamUrl: registry.url, workers: 2 });
    cleanup.add(() => outpost.dispose());
    await waitFor(() => workerPids(outpost.logs()).length === 2, { what: 'two workers listening' });
    const [victim] = workerPids(outpost.logs());
    process.kill(victim!, 'SIGKILL');
    await waitFor(() => workerPids(outpost.logs()).filter(isAlive).length === 2 && !isAlive(victim!), {
      what: 'a replacement worker',
      timeoutMs: 20_000,
    });
    expect(outpost.logs().some((l) => l.msg === 'worker died; restarting')).toBe(true);
    const res = await request(`${outpost.url}/v2/`);
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    // The replacement too runs with glibc's mmap threshold fixed (worker-exec.ts, workerEnv).
    const environs = await Promise.all(workerPids(outpost.logs()).filter(isAlive).map((pid) => fs.readFile(`/proc/${pid}/environ`, 'latin1')));
    expect(environs.map((env) => env.split('\0').find((entry) => entry.startsWith('MALLOC_MMAP_THRESHOLD_=')))).toEqual([
      'MALLOC_MMAP_THRESHOLD_=131072',
      'MALLOC_MMAP_THRESHOLD_=131072',
    ]);
  });

  it('restarts a worker with the configuration the node started with, even after the config file broke', async () => {
    const dir = await makeTempDir('worker-config');
    cleanup.add(() => removeTempDir(dir));
    const file = path.join(dir, 'outpost.yaml');
    await fs.writeFile(file, 'tags:\n  ttl: 45s\n');
    const outpost = await startOutpost({ upstreamUrl: registry.url, workers: 2, env: { OUTPOST_CONFIG: file } });
    cleanup.add(() => outpost.dispose());
    await waitFor(() => workerPids(outpost.logs()).length === 2, { what: 'two workers listening' });
    // An operator's edit in progress: the node keeps running what it validated at start.
    await fs.writeFile(file, 'tags:\n  ttl: soon\n');
    const [victim] = workerPids(outpost.logs());
    process.kill(victim!, 'SIGKILL');
    await waitFor(() => workerPids(outpost.logs()).filter(isAlive).length === 2 && !isAlive(victim!), {
      what: 'a replacement worker listening',
      timeoutMs: 20_000,
    });
    expect(outpost.output()).not.toContain('invalid configuration');
    expect(await serves(outpost)).toBe(true);
  });

  it('with a single worker, serves again within seconds after it is killed, and the primary stays up', async () => {
    const outpost = await startOutpost({ upstreamUrl: registry.url, workers: 1 });
    cleanup.add(() => outpost.dispose());
    await waitFor(() => workerPids(outpost.logs()).length === 1, { what: 'the worker listening' });
    const [victim] = workerPids(outpost.logs());
    const killedAt = Date.now();
    process.kill(victim!, 'SIGKILL');
    await waitFor(async () => !isAlive(victim!) && (await serves(outpost)), {
      what: 'the node to serve again',
      timeoutMs: 15_000,
      intervalMs: 25,
    });
    expect(Date.now() - killedAt).toBeLessThan(10_000); // about 1 s on an idle machine: 100 ms backoff, then a worker start
    expect(isAlive(outpost.pid!)).toBe(true);
    expect(outpost.logs().find((l) => l.msg === 'worker died; restarting')).toMatchObject({
      pid: victim,
      signal: 'SIGKILL',
      cause: 'killed by SIGKILL',
      restartInMs: 100,
    });
    expect(await restartsCounted(outpost)).toBe(1);
  });

  it('serves again when every worker is killed at once, the primary never exiting', async () => {
    const outpost = await startOutpost({ upstreamUrl: registry.url, workers: 2 });
    cleanup.add(() => outpost.dispose());
    await waitFor(() => workerPids(outpost.logs()).length === 2, { what: 'two workers listening' });
    const victims = workerPids(outpost.logs());
    const killedAt = Date.now();
    for (const pid of victims) process.kill(pid, 'SIGKILL');
    await waitFor(async () => victims.every((pid) => !isAlive(pid)) && (await serves(outpost)), {
      what: 'the node to serve again',
      timeoutMs: 15_000,
      intervalMs: 25,
    });
    expect(Date.now() - killedAt).toBeLessThan(10_000); // about 1 s on an idle machine: 100 ms backoff, then a worker start
    await waitFor(() => workerPids(outpost.logs()).filter(isAlive).length === 2, { what: 'both workers replaced', timeoutMs: 15_000 });
    expect(isAlive(outpost.pid!)).toBe(true);
    const restarts = outpost.logs().filter((l) => l.msg === 'worker died; restarting');
    expect(restarts.map((l) => l.pid).sort()).toEqual([...victims].sort());
    expect(await restartsCounted(outpost)).toBe(2);
    // Still the same primary, which stops cleanly when asked.
    const pid = outpost.pid;
    await outpost.stop();
    expect(pid).toBe(outpost.pid);
    const exit = await outpost.exited();
    const notJson = outpost.output().split('\n').filter((line) => line.trim() !== '' && !line.startsWith('{')).slice(-20);
    const fatal = outpost.logs().filter((l) => Number(l.level) >= 40 && l.msg !== 'worker died; restarting');
    expect(exit.code, `warnings: ${JSON.stringify(fatal)}; other output: ${notJson.join('\n')}`).toBe(0);
  });

  it('exits 3 at once with one clear line when its port is taken', async () => {
    const blocker = createNetServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    cleanup.add(() => new Promise((resolve) => blocker.close(resolve)));
    const port = (blocker.address() as { port: number }).port;
    const cacheDir = await makeTempDir('port-taken');
    cleanup.add(() => removeTempDir(cacheDir));
    const result = await runProcess(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve'], {
      env: { OUTPOST_HOST: '127.0.0.1', OUTPOST_PORT: String(port), OUTPOST_CACHE_DIR: cacheDir, OUTPOST_WORKERS: '2', OUTPOST_UPSTREAM_URL: registry.url },
      timeoutMs: 30_000,
    });
    expect(result.timedOut).toBe(false);
    expect(result.exitCode).toBe(3);
    expect(result.stderr.trim()).toBe(
      `outpost: cannot listen on 127.0.0.1:${port}: the address is already in use (another process listens on it) [EADDRINUSE]`,
    );
  });

  it('exits 3 when a restarted worker cannot listen because another process took the port meanwhile', async () => {
    const outpost = await startOutpost({ upstreamUrl: registry.url, workers: 1 });
    cleanup.add(() => outpost.dispose());
    await waitFor(() => workerPids(outpost.logs()).length === 1, { what: 'the worker listening' });
    const [victim] = workerPids(outpost.logs());
    process.kill(victim!, 'SIGKILL');
    // With its last worker gone the primary releases the port; take it before the replacement (100 ms, then a start) listens.
    const thief = createNetServer();
    cleanup.add(() => new Promise((resolve) => thief.close(resolve)));
    await waitFor(
      () =>
        new Promise<boolean>((resolve) => {
          thief.once('error', () => resolve(false));
          thief.listen(outpost.port, '127.0.0.1', () => resolve(true));
        }),
      { what: 'the port to be free', timeoutMs: 5_000, intervalMs: 5 },
    );
    const exit = await outpost.exited();
    expect(exit.code).toBe(3);
    expect(outpost.output()).toContain(`outpost: cannot listen on 127.0.0.1:${outpost.port}: the address is already in use`);
  });

  it('on SIGTERM fails /health at once, finishes a slow download with the right bytes, and exits 0', async () => {
    const bytes = randomBytes(3 * 1024 * 1024);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    await pushBlob(registry.url, 'team/slow', { bytes, digest, size: bytes.length, mediaType: 'application/octet-stream' });
    proxy.addFault({ mode: 'slowBlob', bytesPerSecond: 1024 * 1024 }, { when: { kind: 'blob', pathIncludes: digest } });
    const outpost = await startOutpost({ upstreamUrl: proxy.url, workers: 2, env: { OUTPOST_DRAIN_SECONDS: '1' } });
    cleanup.add(() => outpost.dispose());
    const res = await request(`${outpost.url}/v2/team/slow/blobs/${digest}`);
    const hash = createHash('sha256');
    let size = 0;
    const download = (async () => {
      for await (const chunk of res.body) {
        hash.update(chunk as Buffer);
        size += (chunk as Buffer).length;
      }
    })();
    await waitFor(() => size > 0, { what: 'the download to start' });
    process.kill(outpost.pid!, 'SIGTERM');
    await waitFor(
      async () => {
        const health = await request(`${outpost.url}/health`).catch(() => undefined);
        if (!health) return false;
        await health.body.dump();
        return health.statusCode === 503;
      },
      { what: '/health to answer 503', timeoutMs: 1_000, intervalMs: 20 },
    );
    await download;
    expect(size).toBe(bytes.length);
    expect(`sha256:${hash.digest('hex')}`).toBe(digest);
    await waitFor(() => !isAlive(outpost.pid!), { what: 'outpost to exit', timeoutMs: 15_000 }).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${outpost.output().slice(-4000)}`);
    });
    const exit = await outpost.exited();
    if (exit.code !== 0) throw new Error(`exit ${exit.code}:\n${outpost.output().split('\n').filter((l) => !l.includes('"request"')).join('\n').slice(-5000)}`);
    expect(outpost.output()).toContain('outpost stopped');
  });

  it('stops at once on a second SIGTERM, even with a download in flight', async () => {
    const bytes = randomBytes(8 * 1024 * 1024);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    await pushBlob(registry.url, 'team/slow', { bytes, digest, size: bytes.length, mediaType: 'application/octet-stream' });
    proxy.addFault({ mode: 'slowBlob', bytesPerSecond: 512 * 1024 }, { when: { kind: 'blob', pathIncludes: digest } });
    const outpost = await startOutpost({ upstreamUrl: proxy.url, workers: 2, env: { OUTPOST_DRAIN_SECONDS: '30' } });
    cleanup.add(() => outpost.dispose());
    const res = await request(`${outpost.url}/v2/team/slow/blobs/${digest}`);
    let size = 0;
    const download = (async () => {
      for await (const chunk of res.body) size += (chunk as Buffer).length;
    })().catch(() => 'broken');
    await waitFor(() => size > 0, { what: 'the download to start' });
    process.kill(outpost.pid!, 'SIGTERM');
    await waitFor(() => outpost.output().includes('shutting down'), { what: 'the first SIGTERM to be handled' });
    process.kill(outpost.pid!, 'SIGTERM');
    const exit = await outpost.exited();
    expect(exit.code).toBe(1);
    expect(await download).toBe('broken'); // cut, not completed with missing bytes
    expect(size).toBeLessThan(bytes.length);
  });

  it('refuses to start on a bad value, naming the key, the value and what is allowed', async () => {
    const result = await runProcess(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve'], {
      env: { OUTPOST_TAG_TTL: 'soon', OUTPOST_CACHE_DIR: '/tmp/outpost-never-created' },
      timeoutMs: 30_000,
    });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/tags\.ttl/);
    expect(result.stderr).toMatch(/"soon"/);
    expect(result.stderr).toMatch(/OUTPOST_TAG_TTL/);
  });

  it('prints the effective configuration with secrets redacted', async () => {
    const result = await runProcess(process.execPath, ['--import', 'tsx', 'src/main.ts', 'config', 'check'], {
      env: { OUTPOST_UPSTREAM_PASSWORD: 's3cret-value', OUTPOST_CACHE_MAX_BYTES: '10GB' },
      timeoutMs: 30_000,
    });
    expect(result.exitCode).toBe(0);
    const printed = JSON.parse(result.stdout.toString('utf8'));
    expect(printed.upstream.password).toBe('[redacted]');
    expect(printed.cache.maxBytes).toBe(10_000_000_000);
    expect(result.output).not.toContain('s3cret-value');
  });
});
