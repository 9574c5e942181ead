/** `prefetch:` jobs, `cache.retentionSchedule` and `cache.retentionRules` as the loader reads them. */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/load.ts';

const machine = { hostname: 'outpost-test-host', cpus: 1 };
let dir: string;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'outpost-prefetch-config-'));
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function load(yaml: string, env: Record<string, string> = {}) {
  const file = path.join(dir, 'outpost.yaml');
  await fs.writeFile(file, yaml);
  return loadConfig({ machine, file, env });
}

async function refusal(yaml: string, env: Record<string, string> = {}): Promise<ConfigError> {
  try {
    await load(yaml, env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

const registries = `
registries:
  - host: ghcr.io
    url: https://ghcr.io
    aliases: [ghcr.example.com]
`;

/** PRODUCT.md's example job. */
const product = `
prefetch:
  - name: nightly-base
    schedule: "0 3 * * *"
    timezone: Europe/Berlin
    upstream: docker.io
    images: ["library/nginx:1.*", "library/alpine:*", "-*:*-rc*"]
    updatedWithinDays: 30
    platforms: [linux/amd64]
    replicas: all
    runOnStart: false
`;

/** One job: name, schedule and images, overridden or extended by `extra` (one `key: value` a line). */
function job(extra: string, name = 'nightly-base'): string {
  const lines = new Map([
    ['schedule', 'schedule: "0 3 * * *"'],
    ['images', 'images: ["library/nginx:1.*"]'],
  ]);
  for (const line of extra.split('\n').filter((l) => l.trim() !== '')) lines.set(line.trim().split(':')[0]!, line.trim());
  return `${registries}
prefetch:
  - name: ${name}
${[...lines.values()].map((line) => `    ${line}`).join('\n')}
`;
}

describe('prefetch jobs', () => {
  it('reads PRODUCT.md example, the upstream normalised to the primary host', async () => {
    const config = await load(product);
    expect(config.prefetch).toEqual([
      {
        name: 'nightly-base',
        schedule: '0 3 * * *',
        timezone: 'Europe/Berlin',
        upstream: 'registry-1.docker.io',
        images: ['library/nginx:1.*', 'library/alpine:*', '-*:*-rc*'],
        updatedWithinDays: 30,
        platforms: ['linux/amd64'],
        replicas: 'all',
        runOnStart: false,
        concurrency: 2,
        requestsPerSecond: 10,
      },
    ]);
  });

  it('has no jobs by default', async () => {
    expect((await load('')).prefetch).toEqual([]);
  });

  it('fills the defaults: UTC, the default primary, any age, every platform, all replicas, 2 at once, 10 requests/s', async () => {
    const [only] = (await load(job(''))).prefetch;
    expect(only).toEqual({
      name: 'nightly-base',
      schedule: '0 3 * * *',
      timezone: 'UTC',
      upstream: 'registry-1.docker.io',
      images: ['library/nginx:1.*'],
      updatedWithinDays: undefined,
      platforms: [],
      replicas: 'all',
      runOnStart: false,
      concurrency: 2,
      requestsPerSecond: 10,
    });
  });

  it('resolves an alias of an extra primary to its host, and keeps the jobs in order', async () => {
    const config = await load(`${job('upstream: ghcr.example.com\nreplicas: one\nrunOnStart: true\nconcurrency: 64\nrequestsPerSecond: 0.5\nplatforms: [linux/arm64/v8, windows/amd64]')}
  - name: second.job_2
    schedule: "*/15 * * * 1-5"
    upstream: GHCR.IO
    images: ["*"]
`);
    expect(config.prefetch.map((j) => [j.name, j.upstream])).toEqual([
      ['nightly-base', 'ghcr.io'],
      ['second.job_2', 'ghcr.io'],
    ]);
    expect(config.prefetch[0]).toMatchObject({ replicas: 'one', runOnStart: true, concurrency: 64, requestsPerSecond: 0.5, platforms: ['linux/arm64/v8', 'windows/amd64'] });
  });

  it.each([
    ['a 6-field (seconds) schedule', 'schedule: "0 0 3 * * *"', 'prefetch[0].schedule', /has 6 fields, not 5/],
    ['a nickname', 'schedule: "@daily"', 'prefetch[0].schedule', /has 1 field, not 5/],
    ['a minute out of range', 'schedule: "61 * * * *"', 'prefetch[0].schedule', /not a valid cron expression/],
    ['an unknown time zone', 'timezone: Mars/Phobos', 'prefetch[0].timezone', /not a time zone/],
    ['an unknown upstream', 'upstream: quay.io', 'prefetch[0].upstream', /names no configured primary/],
    ['only exclusions', 'images: ["-*:*-rc*"]', 'prefetch[0].images', /can never include anything/],
    ['no images', 'images: []', 'prefetch[0].images', /must not be empty/],
    ['a bad pattern', 'images: ["library/nginx", "Library/Nginx"]', 'prefetch[0].images[1]', /lower case/],
    ['zero days', 'updatedWithinDays: 0', 'prefetch[0].updatedWithinDays', /out of range/],
    ['fractional days', 'updatedWithinDays: 1.5', 'prefetch[0].updatedWithinDays', /not a whole number/],
    ['a bad platform', 'platforms: [amd64]', 'prefetch[0].platforms[0]', /not a platform/],
    ['an unknown replica mode', 'replicas: some', 'prefetch[0].replicas', /not a replica mode/],
    ['a non-boolean runOnStart', 'runOnStart: maybe', 'prefetch[0].runOnStart', /not a boolean/],
    ['concurrency 0', 'concurrency: 0', 'prefetch[0].concurrency', /out of range/],
    ['concurrency above 64', 'concurrency: 65', 'prefetch[0].concurrency', /out of range/],
    ['requestsPerSecond 0', 'requestsPerSecond: 0', 'prefetch[0].requestsPerSecond', /out of range/],
    ['an unknown key', 'retries: 3', 'prefetch[0].retries', /unknown key/],
  ])('refuses %s, naming the job and the key', async (_what, extra, key, reason) => {
    const error = await refusal(job(extra));
    expect(error.key).toBe(key);
    expect(error.message).toMatch(reason);
    expect(error.message).toContain('job "nightly-base"');
    expect(error.message).toContain(`(from config file ${path.join(dir, 'outpost.yaml')})`);
    expect(error.allowed).toBeTruthy();
  });

  it('refuses a missing schedule, a bad name and a duplicate name', async () => {
    const missing = await refusal('prefetch:\n  - name: a\n    images: ["*"]\n');
    expect(missing.key).toBe('prefetch[0].schedule');
    expect(missing.message).toMatch(/required \(job "a"\)/);

    const badName = await refusal(job('', 'Nightly'));
    expect(badName.key).toBe('prefetch[0].name');
    expect(badName.message).toMatch(/not a valid job name/);

    const duplicate = await refusal(`${job('')}
  - name: nightly-base
    schedule: "0 4 * * *"
    images: ["*"]
`);
    expect(duplicate.key).toBe('prefetch[1].name');
    expect(duplicate.message).toMatch(/duplicate job name \(job "nightly-base"\)/);
  });

  it('lists the known primaries when the upstream is unknown', async () => {
    const error = await refusal(job('upstream: quay.io'));
    expect(error.allowed).toContain('ghcr.io');
    expect(error.allowed).toContain('docker.io');
    expect(error.value).toBe('quay.io');
  });

  it('does not show the value of an unknown job key (it might be a secret)', async () => {
    const error = await refusal(job('password: hunter2-secret'));
    expect(error.message).not.toContain('hunter2-secret');
  });
});

describe('retention schedule and rules', () => {
  it('are unset by default', async () => {
    const config = await load('');
    expect(config.cache.retentionSchedule).toBeUndefined();
    expect(config.cache.retentionRules).toEqual([]);
  });

  it('reads a schedule and rules, durations in milliseconds', async () => {
    const config = await load(`
cache:
  retentionSchedule: "30 4 * * *"
  retentionRules:
    - repositories: ["ci/*", "-ci/keep"]
      unusedFor: 168h
    - repositories: ["library/*"]
      unusedFor: 30
`);
    expect(config.cache.retentionSchedule).toBe('30 4 * * *');
    expect(config.cache.retentionRules).toEqual([
      { repositories: ['ci/*', '-ci/keep'], unusedForMs: 168 * 3_600_000 },
      { repositories: ['library/*'], unusedForMs: 30_000 },
    ]);
  });

  it('takes the schedule from OUTPOST_CACHE_RETENTION_SCHEDULE', async () => {
    const config = await load('', { OUTPOST_CACHE_RETENTION_SCHEDULE: '0 * * * *' });
    expect(config.cache.retentionSchedule).toBe('0 * * * *');
  });

  it.each([
    ['a 6-field schedule', 'cache:\n  retentionSchedule: "0 0 4 * * *"', 'cache.retentionSchedule', /has 6 fields, not 5/],
    ['a bad schedule', 'cache:\n  retentionSchedule: "0 25 * * *"', 'cache.retentionSchedule', /not a valid cron expression/],
    ['a rule without repositories', 'cache:\n  retentionRules:\n    - unusedFor: 1h', 'cache.retentionRules[0].repositories', /must not be empty|not a list/],
    ['a rule naming a tag', 'cache:\n  retentionRules:\n    - {repositories: ["ci/*:v1"], unusedFor: 1h}', 'cache.retentionRules[0].repositories[0]', /names a tag/],
    ['a rule of exclusions only', 'cache:\n  retentionRules:\n    - {repositories: ["-ci/*"], unusedFor: 1h}', 'cache.retentionRules[0].repositories', /only exclusions/],
    ['a rule without unusedFor', 'cache:\n  retentionRules:\n    - {repositories: ["ci/*"]}', 'cache.retentionRules[0].unusedFor', /required/],
    ['a zero unusedFor', 'cache:\n  retentionRules:\n    - {repositories: ["ci/*"], unusedFor: 0}', 'cache.retentionRules[0].unusedFor', /greater than 0/],
    ['an unknown rule key', 'cache:\n  retentionRules:\n    - {repositories: ["ci/*"], unusedFor: 1h, tags: ["*"]}', 'cache.retentionRules[0].tags', /unknown key/],
  ])('refuse %s, naming the key', async (_what, yaml, key, reason) => {
    const error = await refusal(yaml);
    expect(error.key).toBe(key);
    expect(error.message).toMatch(reason);
    expect(error.allowed).toBeTruthy();
  });

  it('names the env var as the source of a bad schedule from the environment', async () => {
    const error = await refusal('', { OUTPOST_CACHE_RETENTION_SCHEDULE: '* * *' });
    expect(error.key).toBe('cache.retentionSchedule');
    expect(error.message).toContain('from env OUTPOST_CACHE_RETENTION_SCHEDULE');
  });
});
