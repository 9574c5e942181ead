import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it, expect } from 'vitest';
import { type LoadConfigOptions, loadConfig } from '../../../src/config/load.ts';
import { configError } from './config-error.ts';
import { redactedConfig } from '../../../src/config/redact.ts';
import { configSchema, listSettings } from '../../../src/config/schema.ts';
import { issueServerCert, makeTestCa } from '../../support/tls.ts';

const machine = { hostname: 'outpost-test-host', cpus: 3 };

function load(options: LoadConfigOptions = {}) {
  return loadConfig({ machine, ...options });
}


let dir: string;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'outpost-config-'));
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function writeFile(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await fs.writeFile(file, text);
  return file;
}

describe('defaults', () => {
  it('runs standalone, mirroring Docker Hub on port 5000 with the cache in ./data', () => {
    const config = load();
    expect(config.server).toEqual({
      host: '0.0.0.0',
      port: 5000,
      tlsCert: undefined,
      tlsKey: undefined,
      headersTimeoutMs: 30_000,
      bodyTimeoutMs: 60_000,
      sendTimeoutMs: 60_000,
      maxConnectionsPerWorker: 4096,
    });
    expect(config.upstream.url).toBe('https://registry-1.docker.io');
    expect(config.upstream.insecure).toBe(false);
    expect(config.cache.dir).toBe('./data');
    expect(config.cache.maxBytes).toBe(10 * 1024 ** 3);
    expect(config.tags.ttlMs).toBe(60_000);
    expect(config.etcd).toEqual({ endpoints: [], leaseTtlMs: 5_000 });
    expect(config.cluster).toEqual({ name: 'outpost', peerSecret: undefined });
    expect(config.redis.url).toBeUndefined();
    expect(config.admin.token).toBeUndefined();
    expect(config.drainSeconds).toBe(5);
    expect(config.log.level).toBe('info');
    expect(config.registries).toEqual([]);
  });

  it('uses the timeouts, retries, watermarks and manifest limit of the spec', () => {
    const config = load();
    expect(config.upstream).toMatchObject({
      connectTimeoutMs: 5000,
      headersTimeoutMs: 15_000,
      bodyIdleTimeoutMs: 30_000,
      retries: 2,
      connections: 16,
    });
    expect(config.cache.highWatermark).toBe(0.95);
    expect(config.cache.lowWatermark).toBe(0.85);
    expect(config.manifests.maxBytes).toBe(4 * 1024 ** 2);
    expect(config.tags.revalidateTimeoutMs).toBe(5000);
  });

  it('protects the primary by default: breaker after 5 outages, 10 s cool-down, 404s remembered 30 s, no concurrency cap', () => {
    expect(load().upstreamProtection).toEqual({
      failureThreshold: 5,
      cooldownMs: 10_000,
      maxConcurrent: 0,
      maxQueued: 1000,
      queueTimeoutMs: 30_000,
      notFoundTtlMs: 30_000,
    });
  });

  it('reads the upstream protection settings from the environment', () => {
    const config = load({
      env: {
        OUTPOST_UPSTREAM_FAILURE_THRESHOLD: '3',
        OUTPOST_UPSTREAM_COOLDOWN: '2s',
        OUTPOST_UPSTREAM_MAX_CONCURRENT: '8',
        OUTPOST_UPSTREAM_MAX_QUEUED: '0',
        OUTPOST_UPSTREAM_QUEUE_TIMEOUT: '500ms',
        OUTPOST_UPSTREAM_NOT_FOUND_TTL: '0s',
      },
    });
    expect(config.upstreamProtection).toEqual({ failureThreshold: 3, cooldownMs: 2000, maxConcurrent: 8, maxQueued: 0, queueTimeoutMs: 500, notFoundTtlMs: 0 });
  });

  it('defaults workers to the CPU count and the node id to the host name', () => {
    const config = load();
    expect(config.workers).toBe(3);
    expect(config.node.id).toBe('outpost-test-host');
  });

  it('uses the real machine when none is injected', () => {
    const config = loadConfig();
    expect(config.workers).toBe(os.availableParallelism());
    expect(config.node.id).toBe(os.hostname());
  });

  it('advertises the host name when listening on every address', () => {
    expect(load().node.advertiseUrl).toBe('http://outpost-test-host:5000');
    expect(load({ env: { OUTPOST_HOST: '10.1.2.3', OUTPOST_PORT: '5001' } }).node.advertiseUrl).toBe('http://10.1.2.3:5001');
    expect(load({ env: { OUTPOST_HOST: '::1' } }).node.advertiseUrl).toBe('http://[::1]:5000');
  });

  it('keeps an explicit advertise URL', () => {
    expect(load({ env: { OUTPOST_ADVERTISE_URL: 'https://outpost-1.office:5000/' } }).node.advertiseUrl).toBe(
      'https://outpost-1.office:5000',
    );
  });

  it('does not read process.env', () => {
    process.env['OUTPOST_PORT'] = '4321';
    try {
      expect(load().server.port).toBe(5000);
    } finally {
      delete process.env['OUTPOST_PORT'];
    }
  });
});

describe('environment variables', () => {
  it('override the defaults', () => {
    const config = load({
      env: {
        OUTPOST_HOST: '127.0.0.1',
        OUTPOST_PORT: '5001',
        OUTPOST_UPSTREAM_URL: 'https://registry.example.com/',
        OUTPOST_UPSTREAM_USERNAME: 'mirror',
        OUTPOST_UPSTREAM_PASSWORD: 'hunter2',
        OUTPOST_UPSTREAM_INSECURE: 'true',
        OUTPOST_CACHE_DIR: '/var/cache/outpost',
        OUTPOST_WORKERS: '4',
        OUTPOST_NODE_ID: 'outpost-1',
        OUTPOST_ETCD_ENDPOINTS: 'http://etcd-1:2379, http://etcd-2:2379',
        OUTPOST_ETCD_LEASE_TTL: '3s',
        OUTPOST_CLUSTER_NAME: 'office-berlin',
        OUTPOST_PEER_SECRET: 'a-long-shared-peer-secret',
        OUTPOST_REDIS_URL: 'redis://redis:6379',
        OUTPOST_ADMIN_TOKEN: 'admin-secret',
        OUTPOST_DRAIN_SECONDS: '10',
        OUTPOST_LOG_LEVEL: 'debug',
        OUTPOST_UPSTREAM_CONNECT_TIMEOUT: '1s',
        OUTPOST_UPSTREAM_RETRIES: '0',
      },
    });
    expect(config.server.host).toBe('127.0.0.1');
    expect(config.server.port).toBe(5001);
    expect(config.upstream).toMatchObject({
      url: 'https://registry.example.com',
      username: 'mirror',
      password: 'hunter2',
      insecure: true,
      connectTimeoutMs: 1000,
      retries: 0,
    });
    expect(config.cache.dir).toBe('/var/cache/outpost');
    expect(config.workers).toBe(4);
    expect(config.node.id).toBe('outpost-1');
    expect(config.etcd).toEqual({ endpoints: ['http://etcd-1:2379', 'http://etcd-2:2379'], leaseTtlMs: 3000 });
    expect(config.cluster).toEqual({ name: 'office-berlin', peerSecret: 'a-long-shared-peer-secret' });
    expect(config.redis.url).toBe('redis://redis:6379');
    expect(config.admin.token).toBe('admin-secret');
    expect(config.drainSeconds).toBe(10);
    expect(config.log.level).toBe('debug');
  });

  it('read OUTPOST_CACHE_MAX_BYTES=10GB as ten billion bytes, not truncated to 10', () => {
    expect(load({ env: { OUTPOST_CACHE_MAX_BYTES: '10GB' } }).cache.maxBytes).toBe(10_000_000_000);
  });

  it('set the client limits', () => {
    const { server } = load({
      env: {
        OUTPOST_HEADERS_TIMEOUT: '2s',
        OUTPOST_BODY_TIMEOUT: '3s',
        OUTPOST_SEND_TIMEOUT: '500ms',
        OUTPOST_MAX_CONNECTIONS_PER_WORKER: '64',
      },
    });
    expect(server).toMatchObject({ headersTimeoutMs: 2_000, bodyTimeoutMs: 3_000, sendTimeoutMs: 500, maxConnectionsPerWorker: 64 });
  });

  it('read OUTPOST_TAG_TTL=2s as 2000 ms and a bare number as seconds', () => {
    expect(load({ env: { OUTPOST_TAG_TTL: '2s' } }).tags.ttlMs).toBe(2000);
    expect(load({ env: { OUTPOST_TAG_TTL: '30' } }).tags.ttlMs).toBe(30_000);
  });

  it('treat an empty optional variable as unset', () => {
    const config = load({ env: { OUTPOST_REDIS_URL: '', OUTPOST_ADMIN_TOKEN: '', OUTPOST_ETCD_ENDPOINTS: '' } });
    expect(config.redis.url).toBeUndefined();
    expect(config.admin.token).toBeUndefined();
    expect(config.etcd.endpoints).toEqual([]);
  });

  it('do not read "false"-like words as true', () => {
    expect(load({ env: { OUTPOST_UPSTREAM_INSECURE: 'no' } }).upstream.insecure).toBe(false);
  });
});

describe('the config file', () => {
  it('overrides the defaults from YAML, with units', async () => {
    const file = await writeFile(
      'outpost.yaml',
      [
        'server:',
        '  port: 6000',
        'cache:',
        '  maxBytes: 50GiB',
        '  highWatermark: 0.9',
        '  lowWatermark: 0.8',
        'tags:',
        '  ttl: 5m',
        'upstream:',
        '  url: https://primary.example.com',
        '  headersTimeout: 20',
        'etcd:',
        '  endpoints: [http://etcd-1:2379, http://etcd-2:2379]',
        '  leaseTtl: 10s',
        'cluster:',
        '  name: region-eu',
        '  peerSecret: shared-secret-from-a-file',
        'drainSeconds: 1.5',
      ].join('\n'),
    );
    const config = load({ file });
    expect(config.server.port).toBe(6000);
    expect(config.cache.maxBytes).toBe(50 * 1024 ** 3);
    expect(config.cache.highWatermark).toBe(0.9);
    expect(config.tags.ttlMs).toBe(300_000);
    expect(config.upstream.url).toBe('https://primary.example.com');
    expect(config.upstream.headersTimeoutMs).toBe(20_000);
    expect(config.etcd.endpoints).toEqual(['http://etcd-1:2379', 'http://etcd-2:2379']);
    expect(config.etcd.leaseTtlMs).toBe(10_000);
    expect(config.cluster).toEqual({ name: 'region-eu', peerSecret: 'shared-secret-from-a-file' });
    expect(config.drainSeconds).toBe(1.5);
  });

  it('overrides the defaults from JSON', async () => {
    const file = await writeFile('outpost.json', JSON.stringify({ server: { port: 6001 }, cache: { maxBytes: 1073741824 } }));
    const config = load({ file });
    expect(config.server.port).toBe(6001);
    expect(config.cache.maxBytes).toBe(1073741824);
  });

  it('is found through --config or OUTPOST_CONFIG, --config first', async () => {
    const fromFlag = await writeFile('flag.yml', 'server:\n  port: 6002\n');
    const fromEnv = await writeFile('env.yml', 'server:\n  port: 6003\n');
    expect(load({ argv: ['serve', '--config', fromFlag] }).server.port).toBe(6002);
    expect(load({ argv: [`--config=${fromFlag}`] }).server.port).toBe(6002);
    expect(load({ env: { OUTPOST_CONFIG: fromEnv } }).server.port).toBe(6003);
    expect(load({ argv: ['--config', fromFlag], env: { OUTPOST_CONFIG: fromEnv } }).server.port).toBe(6002);
  });

  it('gives way to environment variables', async () => {
    const file = await writeFile('outpost.yaml', 'server:\n  port: 6000\ncache:\n  maxBytes: 1GiB\n');
    const config = load({ file, env: { OUTPOST_PORT: '7000' } });
    expect(config.server.port).toBe(7000);
    expect(config.cache.maxBytes).toBe(1024 ** 3);
  });

  it('accepts an empty file and empty sections', async () => {
    expect(load({ file: await writeFile('empty.yaml', '') }).server.port).toBe(5000);
    expect(load({ file: await writeFile('sections.yaml', 'server:\ncache:\n') }).server.port).toBe(5000);
  });

  it('defines extra registries that inherit upstream timeouts but never its credentials', async () => {
    const file = await writeFile(
      'registries.yaml',
      [
        'upstream:',
        '  username: hub-user',
        '  password: hub-secret',
        '  retries: 4',
        '  insecure: true',
        'registries:',
        '  - host: ghcr.io',
        '    url: https://ghcr.io/',
        '    headersTimeout: 10s',
        '  - host: registry.corp:5000',
        '    url: https://registry.corp:5000',
        '    username: corp',
        '    password: corp-secret',
      ].join('\n'),
    );
    const [ghcr, corp] = load({ file }).registries;
    expect(ghcr).toEqual({
      host: 'ghcr.io',
      aliases: [],
      dockerHub: false,
      url: 'https://ghcr.io',
      username: undefined,
      password: undefined,
      caFile: undefined,
      insecure: false,
      connectTimeoutMs: 5000,
      headersTimeoutMs: 10_000,
      bodyIdleTimeoutMs: 30_000,
      retries: 4,
      connections: 16,
    });
    expect(corp).toMatchObject({ host: 'registry.corp:5000', username: 'corp', password: 'corp-secret' });
  });
});

describe('command-line flags', () => {
  it('override environment variables and the file', async () => {
    const file = await writeFile('outpost.yaml', 'server:\n  port: 6000\n');
    const config = load({
      file,
      env: { OUTPOST_PORT: '7000', OUTPOST_LOG_LEVEL: 'warn', OUTPOST_WORKERS: '8' },
      argv: [
        'serve',
        '--port',
        '8000',
        '--host=127.0.0.1',
        '--upstream-url',
        'http://localhost:5005',
        '--cache-dir',
        '/tmp/outpost',
        '--workers',
        '2',
        '--log-level',
        'trace',
      ],
    });
    expect(config.server.port).toBe(8000);
    expect(config.server.host).toBe('127.0.0.1');
    expect(config.upstream.url).toBe('http://localhost:5005');
    expect(config.cache.dir).toBe('/tmp/outpost');
    expect(config.workers).toBe(2);
    expect(config.log.level).toBe('trace');
  });

  it('leave positional arguments to the CLI', () => {
    expect(load({ argv: ['prefetch', 'library/nginx:1.27', '--port', '5001'] }).server.port).toBe(5001);
  });

  it('reject positional arguments when asked to', () => {
    const error = configError(() => load({ argv: ['--port', '5001', 'extra'], positionals: 'reject' }));
    expect(error.message).toContain('unexpected argument "extra"');
  });

  it('stop at an unknown option instead of ignoring it, naming the flag meant', () => {
    const error = configError(() => load({ argv: ['serve', '--upstream_url', 'http://primary:5000'] }));
    expect(error.message).toContain('unknown option --upstream_url (did you mean --upstream-url?)');
    expect(error.message).toContain('--upstream-url');
    // Its value is not reported as a stray argument.
    expect(error.problems).toHaveLength(1);
    expect(configError(() => load({ argv: ['--Port=5001'] })).message).toContain('did you mean --port?');
  });

  it('stop at a flag for a setting that has none, naming its environment variable and key', () => {
    const error = configError(() => load({ argv: ['serve', '--tag-ttl', '5s'] }));
    expect(error.message).toContain('unknown option --tag-ttl (tags.ttl has no command-line flag: set OUTPOST_TAG_TTL or tags.ttl in the config file)');
  });

  it('stop at a secret given as a flag, without echoing it', () => {
    const error = configError(() => load({ argv: ['serve', '--admin-token', 's3cret-admin'] }));
    expect(error.message).toContain('unknown option --admin-token (admin.token has no command-line flag: set OUTPOST_ADMIN_TOKEN');
    expect(error.message).toContain('keep it off the command line');
    expect(error.message).not.toContain('s3cret-admin');
    expect(configError(() => load({ argv: ['--admin-token=s3cret-admin'] })).message).not.toContain('s3cret-admin');
  });

  it('stop at single-dash and unknown options, every one of them reported', () => {
    const error = configError(() => load({ argv: ['-p', '5001', '--verbose', '--port', '5002'] }));
    expect(error.problems.map((p) => p.reason)).toEqual(['unknown option -p', 'unknown option --verbose']);
    expect(error.message).toContain('allowed: --config, --host, --port');
  });

  it('report a short option with its value run together once, as written', () => {
    const error = configError(() => load({ argv: ['-p5001'] }));
    expect(error.problems.map((p) => p.reason)).toEqual(['unknown option -p5001']);
  });

  it('stop at --', () => {
    expect(load({ argv: ['--', '--port', '5001'] }).server.port).toBe(5000);
  });

  it('reject a flag without a value', () => {
    const error = configError(() => load({ argv: ['serve', '--port'] }));
    expect(error.key).toBe('server.port');
    expect(error.message).toContain('--port needs a value');
  });
});

describe('validation', () => {
  it('rejects an unknown key in the file, naming it and the keys allowed there', async () => {
    const file = await writeFile('outpost.yaml', 'cache:\n  maxSize: 10GiB\n');
    const error = configError(() => load({ file }));
    expect(error.key).toBe('cache.maxSize');
    expect(error.message).toContain('cache.maxSize');
    expect(error.message).toContain('unknown key');
    expect(error.message).toContain('maxBytes');
    expect(error.message).toContain(file);
  });

  it('rejects an unknown top-level key in a JSON file', async () => {
    const file = await writeFile('outpost.json', JSON.stringify({ serverr: { port: 1 } }));
    expect(configError(() => load({ file })).key).toBe('serverr');
  });

  it('does not show the value of a misspelt key, which may be a secret', async () => {
    const file = await writeFile('outpost.yaml', 'upstream:\n  pasword: hunter2\n');
    const error = configError(() => load({ file }));
    expect(error.key).toBe('upstream.pasword');
    expect(error.message).not.toContain('hunter2');
    expect(JSON.stringify(error.problems)).not.toContain('hunter2');
  });

  it('rejects a bad env value, naming the key, the value, the variable and the allowed form', () => {
    const error = configError(() => load({ env: { OUTPOST_CACHE_MAX_BYTES: 'lots' } }));
    expect(error.key).toBe('cache.maxBytes');
    expect(error.value).toBe('lots');
    expect(error.allowed).toMatch(/GiB/);
    expect(error.message).toContain('cache.maxBytes');
    expect(error.message).toContain('"lots"');
    expect(error.message).toContain('OUTPOST_CACHE_MAX_BYTES');
    expect(error.message).toMatch(/allowed: .*10GiB/);
  });

  it('reports every bad value at once', () => {
    const error = configError(() => load({ env: { OUTPOST_PORT: 'http', OUTPOST_TAG_TTL: 'soon', OUTPOST_LOG_LEVEL: 'loud' } }));
    expect(error.problems.map((problem) => problem.key)).toEqual(['server.port', 'tags.ttl', 'log.level']);
  });

  it('names the config file as the source of a bad file value', async () => {
    const file = await writeFile('outpost.yaml', 'tags:\n  ttl: -5s\n');
    const error = configError(() => load({ file }));
    expect(error.key).toBe('tags.ttl');
    expect(error.problems[0]?.source).toBe(`config file ${file}`);
  });

  it('locates a bad registry field', async () => {
    const file = await writeFile('outpost.yaml', 'registries:\n  - host: ghcr.io\n    url: ftp://ghcr.io\n');
    expect(configError(() => load({ file })).key).toBe('registries[0].url');
  });

  it('rejects a section written as a value', async () => {
    const file = await writeFile('outpost.yaml', 'server: 5000\n');
    expect(configError(() => load({ file })).key).toBe('server');
  });

  it('rejects a setting written as a section', async () => {
    const file = await writeFile('outpost.yaml', 'server:\n  port:\n    number: 5000\n');
    expect(configError(() => load({ file })).key).toBe('server.port');
  });

  it('rejects a file it cannot parse without echoing its content', async () => {
    const file = await writeFile('outpost.yaml', 'upstream:\n  password: "hunter2\n');
    const error = configError(() => load({ file }));
    expect(error.message).toContain(file);
    expect(error.message).toMatch(/invalid YAML/);
    expect(error.message).not.toContain('hunter2');
  });

  it('rejects a missing file and an unsupported extension', async () => {
    expect(configError(() => load({ file: path.join(dir, 'missing.yaml') })).message).toMatch(/does not exist/);
    const toml = await writeFile('outpost.toml', 'port = 1');
    expect(configError(() => load({ file: toml })).message).toMatch(/unsupported extension/);
  });

  it('requires TLS certificate and key together', () => {
    const { cert, key } = issueServerCert(makeTestCa(dir), 'server');
    expect(configError(() => load({ env: { OUTPOST_TLS_CERT: cert } })).key).toBe('server.tlsKey');
    expect(configError(() => load({ env: { OUTPOST_TLS_KEY: key } })).key).toBe('server.tlsCert');
    const config = load({ env: { OUTPOST_TLS_CERT: cert, OUTPOST_TLS_KEY: key } });
    expect(config.server.tlsCert).toBe(cert);
    expect(config.node.advertiseUrl).toBe('https://outpost-test-host:5000');
  });

  it('rejects a TLS key that is not the certificate\'s, naming the key and its file', () => {
    const ca = makeTestCa(dir);
    const one = issueServerCert(ca, 'one');
    const two = issueServerCert(ca, 'two');
    const error = configError(() => load({ env: { OUTPOST_TLS_CERT: one.cert, OUTPOST_TLS_KEY: two.key } }));
    expect(error.key).toBe('server.tlsKey');
    expect(error.message).toContain('server.tlsKey: is not the key of the certificate in server.tlsCert');
    expect(error.message).toContain(two.key);
  });

  it('rejects an encrypted TLS key (no passphrase setting)', () => {
    const { cert, key } = issueServerCert(makeTestCa(dir), 'server');
    const encrypted = path.join(dir, 'encrypted.key');
    execFileSync('openssl', ['pkey', '-in', key, '-out', encrypted, '-aes256', '-passout', 'pass:secret'], { stdio: 'ignore' });
    const error = configError(() => load({ env: { OUTPOST_TLS_CERT: cert, OUTPOST_TLS_KEY: encrypted } }));
    expect(error.key).toBe('server.tlsKey');
    expect(error.message).toContain('server.tlsKey: is an encrypted key (a passphrase is not supported)');
  });

  it('rejects TLS files that are not PEM', async () => {
    const { cert, key } = issueServerCert(makeTestCa(dir), 'server');
    const garbage = await writeFile('garbage.pem', 'not a certificate');
    const badCert = configError(() => load({ env: { OUTPOST_TLS_CERT: garbage, OUTPOST_TLS_KEY: key } }));
    expect(badCert.key).toBe('server.tlsCert');
    expect(badCert.message).toMatch(/server\.tlsCert: is not a PEM certificate/);
    const badKey = configError(() => load({ env: { OUTPOST_TLS_CERT: cert, OUTPOST_TLS_KEY: garbage } }));
    expect(badKey.key).toBe('server.tlsKey');
    expect(badKey.message).toMatch(/server\.tlsKey: is not a PEM private key/);
  });

  it('rejects a TLS or CA file that cannot be read', () => {
    const error = configError(() => load({ env: { OUTPOST_UPSTREAM_CA_FILE: path.join(dir, 'missing-ca.pem') } }));
    expect(error.key).toBe('upstream.caFile');
    expect(error.message).toMatch(/does not exist/);
  });

  it('requires the low watermark below the high one', () => {
    const error = configError(() => load({ env: { OUTPOST_CACHE_LOW_WATERMARK: '0.96' } }));
    expect(error.key).toBe('cache.lowWatermark');
    expect(error.message).toContain('cache.highWatermark');
  });

  it('requires the body timeout to cover the headers timeout', () => {
    const error = configError(() => load({ env: { OUTPOST_HEADERS_TIMEOUT: '90s', OUTPOST_BODY_TIMEOUT: '1m' } }));
    expect(error.key).toBe('server.bodyTimeout');
    expect(error.message).toContain('server.headersTimeout');
    expect(error.message).toContain('OUTPOST_BODY_TIMEOUT');
  });

  it('requires at least one worker and a non-zero cache budget and manifest limit', () => {
    expect(configError(() => load({ env: { OUTPOST_WORKERS: '0' } })).key).toBe('workers');
    expect(configError(() => load({ env: { OUTPOST_CACHE_MAX_BYTES: '0' } })).key).toBe('cache.maxBytes');
    const manifests = configError(() => load({ env: { OUTPOST_MANIFEST_MAX_BYTES: '0' } }));
    expect(manifests.key).toBe('manifests.maxBytes');
    expect(manifests.message).toContain('manifests.maxBytes: must be greater than 0, got 0 (from env OUTPOST_MANIFEST_MAX_BYTES)');
  });

  it('shows a duration of digits from the environment as the number of seconds it means', () => {
    expect(configError(() => load({ env: { OUTPOST_SHUTDOWN_TIMEOUT: '0' } })).message).toContain('shutdownTimeout: must be greater than 0, got 0 (from env OUTPOST_SHUTDOWN_TIMEOUT)');
  });

  it('rejects an extra registry whose CA file cannot be read, naming the entry', async () => {
    const file = await writeFile('outpost.yaml', `registries:\n  - host: ghcr.io\n    url: https://ghcr.io\n    caFile: ${path.join(dir, 'missing-ca.pem')}\n`);
    const error = configError(() => load({ file }));
    expect(error.key).toBe('registries[0].caFile');
    expect(error.message).toMatch(/registries\[0\]\.caFile: file does not exist, got ".*missing-ca\.pem" \(from config file /);
  });

  it('rejects a log level pino does not have', () => {
    expect(configError(() => load({ argv: ['--log-level', 'verbose'] })).key).toBe('log.level');
  });

  it('redacts a sensitive value it rejects', async () => {
    const file = await writeFile('outpost.yaml', 'admin:\n  token: 123456789\n');
    const error = configError(() => load({ file }));
    expect(error.key).toBe('admin.token');
    expect(error.value).toBe('[redacted]');
    expect(error.message).not.toContain('123456789');
  });

  it('refuses etcd without a peer secret, naming the variable to set', () => {
    const error = configError(() => load({ env: { OUTPOST_ETCD_ENDPOINTS: 'http://etcd:2379' } }));
    expect(error.key).toBe('cluster.peerSecret');
    expect(error.message).toContain('must be set because etcd.endpoints is set (from env OUTPOST_ETCD_ENDPOINTS)');
    expect(error.message).toContain('OUTPOST_PEER_SECRET');
  });

  it('refuses a short peer secret without printing it', () => {
    const error = configError(() => load({ env: { OUTPOST_ETCD_ENDPOINTS: 'http://etcd:2379', OUTPOST_PEER_SECRET: 'short-secret' } }));
    expect(error.key).toBe('cluster.peerSecret');
    expect(error.message).toContain('too short (12 characters)');
    expect(error.message).not.toContain('short-secret');
  });

  it('takes a lease TTL in whole seconds only', () => {
    expect(load({ env: { OUTPOST_ETCD_LEASE_TTL: '2' } }).etcd.leaseTtlMs).toBe(2_000);
    expect(configError(() => load({ env: { OUTPOST_ETCD_LEASE_TTL: '1500ms' } })).key).toBe('etcd.leaseTtl');
    expect(configError(() => load({ env: { OUTPOST_ETCD_LEASE_TTL: '0s' } })).key).toBe('etcd.leaseTtl');
    expect(configError(() => load({ env: { OUTPOST_ETCD_LEASE_TTL: '1h' } })).key).toBe('etcd.leaseTtl');
  });

  it('takes a cluster name that can prefix etcd and Redis keys', () => {
    expect(configError(() => load({ env: { OUTPOST_CLUSTER_NAME: 'office/berlin' } })).message).toContain('not a valid cluster name');
  });

  it('strips credentials from a rejected URL', () => {
    const error = configError(() => load({ env: { OUTPOST_REDIS_URL: 'http://:s3cret@redis:6379' } }));
    expect(error.key).toBe('redis.url');
    expect(error.message).not.toContain('s3cret');
  });
});

describe('redactedConfig', () => {
  const secrets = {
    OUTPOST_UPSTREAM_USERNAME: 'mirror',
    OUTPOST_UPSTREAM_PASSWORD: 'upstream-secret',
    OUTPOST_ADMIN_TOKEN: 'admin-secret',
    OUTPOST_REDIS_URL: 'redis://default:redis-secret@redis:6379/0',
    OUTPOST_ETCD_ENDPOINTS: 'http://root:etcd-secret@etcd-1:2379,http://etcd-2:2379',
    OUTPOST_PEER_SECRET: 'peer-secret-0123456789',
  };

  it('hides every secret and never prints one', async () => {
    const file = await writeFile(
      'outpost.yaml',
      'registries:\n  - host: ghcr.io\n    url: https://ghcr.io\n    username: bot\n    password: registry-secret\n',
    );
    const config = load({ file, env: secrets });
    const printed = JSON.stringify(redactedConfig(config));
    for (const secret of ['upstream-secret', 'admin-secret', 'redis-secret', 'etcd-secret', 'registry-secret', 'peer-secret-0123456789']) {
      expect(printed).not.toContain(secret);
    }
    const redacted = redactedConfig(config);
    expect(redacted.upstream.password).toBe('[redacted]');
    expect(redacted.upstream.username).toBe('mirror');
    expect(redacted.admin.token).toBe('[redacted]');
    expect(redacted.cluster.peerSecret).toBe('[redacted]');
    expect(redacted.registries[0]?.password).toBe('[redacted]');
    expect(redacted.registries[0]?.username).toBe('bot');
    expect(redacted.redis.url).toBe('redis://[redacted]@redis:6379/0');
    expect(redacted.etcd.endpoints).toEqual(['http://[redacted]@etcd-1:2379', 'http://etcd-2:2379']);
  });

  it('leaves unset secrets unset', () => {
    const redacted = redactedConfig(load());
    expect(redacted.upstream.password).toBeUndefined();
    expect(redacted.admin.token).toBeUndefined();
    expect(redacted.redis.url).toBeUndefined();
  });

  it('does not change the configuration it copies', () => {
    const config = load({ env: secrets });
    redactedConfig(config);
    expect(config.upstream.password).toBe('upstream-secret');
    expect(config.redis.url).toBe('redis://default:redis-secret@redis:6379/0');
  });
});

describe('the schema', () => {
  it('documents every setting and marks secrets sensitive', () => {
    const settings = listSettings(configSchema(machine));
    for (const { key, setting } of settings) {
      expect(setting.doc.length, key).toBeGreaterThan(10);
      expect(Object.hasOwn(setting, 'default'), key).toBe(true);
    }
    const sensitive = settings.filter(({ setting }) => setting.sensitive).map(({ key }) => key);
    expect(sensitive).toEqual(['upstream.password', 'cluster.peerSecret', 'admin.token']);
  });

  it('maps every environment variable of the product contract', () => {
    const envs = listSettings(configSchema(machine)).map(({ setting }) => setting.env);
    for (const name of [
      'OUTPOST_HOST',
      'OUTPOST_PORT',
      'OUTPOST_TLS_CERT',
      'OUTPOST_TLS_KEY',
      'OUTPOST_UPSTREAM_URL',
      'OUTPOST_UPSTREAM_USERNAME',
      'OUTPOST_UPSTREAM_PASSWORD',
      'OUTPOST_UPSTREAM_CA_FILE',
      'OUTPOST_UPSTREAM_INSECURE',
      'OUTPOST_CACHE_DIR',
      'OUTPOST_CACHE_MAX_BYTES',
      'OUTPOST_TAG_TTL',
      'OUTPOST_WORKERS',
      'OUTPOST_NODE_ID',
      'OUTPOST_ADVERTISE_URL',
      'OUTPOST_ETCD_ENDPOINTS',
      'OUTPOST_REDIS_URL',
      'OUTPOST_CLUSTER_NAME',
      'OUTPOST_ETCD_LEASE_TTL',
      'OUTPOST_PEER_SECRET',
      'OUTPOST_ADMIN_TOKEN',
      'OUTPOST_DRAIN_SECONDS',
      'OUTPOST_LOG_LEVEL',
    ]) {
      expect(envs).toContain(name);
    }
  });
});
