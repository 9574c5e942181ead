/** The `auth:` block as the loader reads it: PRODUCT.md's example, and refusals that name the key. */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/load.ts';
import { writeHtpasswd } from '../../support/htpasswd.ts';

const machine = { hostname: 'outpost-test-host', cpus: 1 };
let dir: string;
let htpasswd: string;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'outpost-auth-config-'));
  htpasswd = path.join(dir, 'htpasswd');
  await writeHtpasswd(htpasswd, [{ username: 'alice', password: 'alice-secret' }]);
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function load(yaml: string, env: Record<string, string> = {}) {
  const file = path.join(dir, 'outpost.yaml');
  await fs.writeFile(file, yaml.replaceAll('HTPASSWD', htpasswd));
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

const product = `
registries:
  - host: ghcr.io
    url: https://ghcr.io
auth:
  mode: basic
  htpasswd: HTPASSWD
  groups: {developers: [alice, bob]}
  anonymous: ["library/*"]
  rules:
    - repositories: ["team-a/*"]
      users: [alice]
      groups: [developers]
      upstreams: [ghcr.io]
  cacheDecisions: 60s
`;

describe('the auth block', () => {
  it('is mode none when absent', async () => {
    const config = await load('server:\n  port: 6000\n');
    expect(config.auth).toMatchObject({ mode: 'none', htpasswd: undefined, rules: [], anonymous: [], cacheDecisionsMs: 60_000 });
  });

  it('reads the example of PRODUCT.md', async () => {
    const config = await load(product);
    expect(config.auth).toEqual({
      mode: 'basic',
      htpasswd,
      groups: { developers: ['alice', 'bob'] },
      anonymous: ['library/*'],
      rules: [{ repositories: ['team-a/*'], users: ['alice'], groups: ['developers'], upstreams: ['ghcr.io'] }],
      cacheDecisionsMs: 60_000,
    });
  });

  it('accepts docker.io in a rule when the default primary is Docker Hub', async () => {
    const config = await load(`auth:\n  mode: basic\n  htpasswd: HTPASSWD\n  rules:\n    - {repositories: ["*"], users: [alice], upstreams: [docker.io]}\n`);
    expect(config.auth.rules[0]?.upstreams).toEqual(['docker.io']);
  });

  it('reads cacheDecisions in basic mode too (how long a verified password is trusted)', async () => {
    const config = await load('auth:\n  mode: basic\n  htpasswd: HTPASSWD\n  cacheDecisions: 30s\n');
    expect(config.auth.cacheDecisionsMs).toBe(30_000);
  });

  it('reads upstream mode', async () => {
    const config = await load('auth:\n  mode: upstream\n  cacheDecisions: 30s\n');
    expect(config.auth).toMatchObject({ mode: 'upstream', cacheDecisionsMs: 30_000 });
  });

  it.each([
    ['an unknown mode', 'auth:\n  mode: ldap\n', /auth\.mode: not an auth mode, got "ldap" \(from config file .*\); allowed: one of none, basic, upstream/],
    ['an unknown key', 'auth:\n  mode: basic\n  htpasswd: HTPASSWD\n  rule: []\n', /auth\.rule: unknown key .*allowed: one of mode, htpasswd, groups, anonymous, rules, cacheDecisions/],
    ['a key mode none ignores', 'auth:\n  htpasswd: HTPASSWD\n', /auth\.htpasswd: set, but auth\.mode is none: nothing would apply it/],
    ['rules in upstream mode', 'auth:\n  mode: upstream\n  rules: [{repositories: ["*"], users: [a]}]\n', /auth\.rules: set, but auth\.mode is upstream/],
    ['basic without htpasswd', 'auth:\n  mode: basic\n', /auth\.htpasswd: required when auth\.mode is basic/],
    ['an undefined group', 'auth:\n  mode: basic\n  htpasswd: HTPASSWD\n  rules: [{repositories: ["*"], groups: [devs]}]\n', /auth\.rules\[0\]\.groups\[0\]: no such group/],
    ['a pattern with a tag', 'auth:\n  mode: basic\n  htpasswd: HTPASSWD\n  anonymous: ["library/*:1.*"]\n', /auth\.anonymous: \[0\]: names a tag|auth\.anonymous\[0\]: names a tag/],
    ['groups that are not a mapping', 'auth:\n  mode: basic\n  htpasswd: HTPASSWD\n  groups: [alice]\n', /auth\.groups: not an object, got \["alice"\]/],
    ['groups written as a string', 'auth:\n  mode: basic\n  htpasswd: HTPASSWD\n  groups: "x"\n', /auth\.groups: not an object, got "x"/],
    ['groups written as a JSON string', 'auth:\n  mode: basic\n  htpasswd: HTPASSWD\n  groups: \'{"ops": ["olga"]}\'\n', /auth\.groups: not an object/],
    ['a block written as a string (convict would JSON.parse it)', 'auth: \'{"mode": "basic"}\'\n', /auth: not a mapping, got .*\(from config file .*\); allowed: an object with keys mode, htpasswd/],
    ['a block written as a list', 'auth: [basic]\n', /auth: not a mapping/],
    ['a bad group member list', 'auth:\n  mode: basic\n  htpasswd: HTPASSWD\n  groups: {ops: {nested: [olga]}}\n', /auth\.groups\.ops: not a list/],
    ['cacheDecisions with mode none', 'auth:\n  cacheDecisions: 30s\n', /auth\.cacheDecisions: set, but auth\.mode is none/],
    ['a bad duration', 'auth:\n  mode: upstream\n  cacheDecisions: soon\n', /auth\.cacheDecisions: /],
    ['an upstream nobody configured', 'auth:\n  mode: basic\n  htpasswd: HTPASSWD\n  rules: [{repositories: ["*"], users: [a], upstreams: [ghrc.io]}]\n', /auth\.rules\[0\]\.upstreams\[0\]: names no configured upstream, got "ghrc\.io" \(from config file .*\); allowed: a configured registry host: registry-1\.docker\.io, docker\.io, index\.docker\.io/],
    ['a missing htpasswd file', 'auth:\n  mode: basic\n  htpasswd: /nonexistent/htpasswd\n', /auth\.htpasswd: file does not exist/],
  ])('refuses %s, naming the key', async (_what, yaml, message) => {
    expect((await refusal(yaml)).message).toMatch(message);
  });

  it('refuses an htpasswd file with a non-bcrypt entry, naming the line but never the hash', async () => {
    await fs.writeFile(htpasswd, 'alice:$apr1$abcdefgh$0123456789abcdefghijkl\n');
    const error = await refusal('auth:\n  mode: basic\n  htpasswd: HTPASSWD\n');
    expect(error.message).toMatch(/auth\.htpasswd: .*line 1: an Apache MD5 \(\$apr1\$\) hash; only bcrypt/);
    expect(error.message).not.toContain('0123456789abcdefghijkl');
  });
});
