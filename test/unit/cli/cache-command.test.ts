/** `outpost cache ...`: where it connects, with which token, and what it says when it cannot. */
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeUrl, runCacheCommand } from '../../../src/cli/cache-command.ts';
import { createCleanupStack } from '../../support/cleanup.ts';
import { freePort } from '../../support/ports.ts';
import { runProcess } from '../../support/process.ts';
import { makeTempDir, removeTempDir } from '../../support/temp.ts';

const root = resolve(import.meta.dirname, '../../..');
const cleanup = createCleanupStack();
afterEach(() => cleanup.run());

async function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCacheCommand(args, env, { out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err };
}

/** A stand-in admin API that records what it was asked. */
async function adminApi(): Promise<{ port: number; seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders }> }> {
  const seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders }> = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"bytes":0}');
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  cleanup.add(() => new Promise<void>((ok) => server.close(() => ok())));
  return { port: (server.address() as AddressInfo).port, seen };
}

async function configFile(text: string): Promise<string> {
  const dir = await makeTempDir('cli');
  cleanup.add(() => removeTempDir(dir));
  const file = join(dir, 'outpost.yaml');
  await writeFile(file, text);
  return file;
}

describe('outpost cache', () => {
  it('takes the node address and admin token from --config', async () => {
    const api = await adminApi();
    const file = await configFile(`server:\n  host: 0.0.0.0\n  port: ${api.port}\nadmin:\n  token: from-the-file\n`);
    const result = await run(['stats', '--config', file]);
    expect(result).toMatchObject({ code: 0, out: '{"bytes":0}\n', err: '' });
    expect(api.seen).toHaveLength(1);
    expect(api.seen[0]).toMatchObject({ method: 'GET', url: '/api/v0/cache/stats' });
    expect(api.seen[0]!.headers.authorization).toBe('Bearer from-the-file');
  });

  it('lets the environment, then --url and --token, override the file', async () => {
    const api = await adminApi();
    const file = await configFile(`server:\n  port: 1\nadmin:\n  token: from-the-file\n`);
    expect((await run(['stats', '--config', file], { OUTPOST_PORT: String(api.port) })).code).toBe(0);
    expect(api.seen.at(-1)!.headers.authorization).toBe('Bearer from-the-file');
    expect((await run(['ls', '--limit', '5', `--config=${file}`, '--url', `http://127.0.0.1:${api.port}/`, '--token', 'flag'])).code).toBe(0);
    expect(api.seen.at(-1)).toMatchObject({ url: '/api/v0/cache/entries?limit=5&cursor=0' });
    expect(api.seen.at(-1)!.headers.authorization).toBe('Bearer flag');
  });

  it('uses OUTPOST_CONFIG like the node does', async () => {
    const api = await adminApi();
    const file = await configFile(`server:\n  port: ${api.port}\nadmin:\n  token: t\n`);
    expect((await run(['pin', 'library/nginx:1.27'], { OUTPOST_CONFIG: file })).code).toBe(0);
    expect(api.seen[0]).toMatchObject({ method: 'POST', url: '/api/v0/cache/pins' });
  });

  it('says in one line which URL refused the connection and what to check', async () => {
    const port = await freePort();
    const result = await run(['stats', '--token', 't'], { OUTPOST_PORT: String(port) });
    expect(result.code).toBe(1);
    expect(result.out).toBe('');
    expect(result.err).toBe(
      `outpost cache: cannot reach the node at http://127.0.0.1:${port}: connection refused (ECONNREFUSED). Is it running, and is that its address? ` +
        'Check --url, or server.host/server.port (OUTPOST_HOST/OUTPOST_PORT) in the config given with --config.\n',
    );
  });

  it('stops at an unknown option', async () => {
    const result = await run(['purge', '--repo', 'library/nginx', '--token', 't']);
    expect(result.code).toBe(2);
    expect(result.err).toMatch(/^outpost cache: unknown option --repo \(options: --config, --url, --token, /);
  });

  it('names what is missing without a token, and a config file that is wrong', async () => {
    expect((await run(['stats'])).err).toMatch(/^outpost cache: no admin token: pass --token, set OUTPOST_ADMIN_TOKEN, or point --config/);
    const bad = await run(['stats', '--config', await configFile('server:\n  port: lots\n')]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/^outpost cache: invalid configuration: server\.port: /);
  });

  it('reaches a node listening on every address through loopback', () => {
    const server = { host: '0.0.0.0', port: 5000, tlsCert: undefined, tlsKey: undefined };
    expect(nodeUrl(server)).toBe('http://127.0.0.1:5000');
    expect(nodeUrl({ ...server, host: '::' })).toBe('http://[::1]:5000');
    expect(nodeUrl({ ...server, host: 'fd00::1' })).toBe('http://[fd00::1]:5000');
    expect(nodeUrl({ ...server, host: 'outpost.office', tlsCert: 'c.pem', tlsKey: 'k.pem' })).toBe('https://outpost.office:5000');
  });
});

describe('the outpost bin', () => {
  it('runs through a symlink elsewhere (npm link, npm install -g .) and stops at unknown options', async () => {
    const dir = await makeTempDir('bin');
    cleanup.add(() => removeTempDir(dir));
    await mkdir(join(dir, 'bin'));
    await symlink(join(root, 'bin/outpost.js'), join(dir, 'bin/outpost'));
    const ok = await runProcess(join(dir, 'bin/outpost'), ['config', 'check', '--port', '5123'], { cwd: dir, timeoutMs: 30_000, env: { OUTPOST_CONFIG: '' } });
    expect(ok.exitCode, ok.output).toBe(0);
    expect(JSON.parse(ok.stdout.toString('utf8'))).toMatchObject({ server: { port: 5123 } });
    const bad = await runProcess(join(dir, 'bin/outpost'), ['serve', '--tag-ttl', '5s'], { cwd: dir, timeoutMs: 30_000 });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('outpost: invalid configuration: unknown option --tag-ttl');
  });
});
