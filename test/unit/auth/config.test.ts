import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { AccessRules } from '../../../src/auth/access-rules.ts';
import { defaultAuthConfig, parseAuthConfig, unknownRuleUpstreams } from '../../../src/auth/config.ts';
import { FormatError } from '../../../src/config/formats.ts';

// The auth block of PRODUCT.md, as a user writes it.
const productExample = parseYaml(`
mode: basic
htpasswd: /etc/outpost/htpasswd
groups: {developers: [alice, bob]}
anonymous: ["library/*"]
rules:
  - repositories: ["team-a/*"]
    users: [alice]
    groups: [developers]
    upstreams: [ghcr.io]
cacheDecisions: 60s
`) as unknown;

/** The message a user reads for a problem inside `auth`, as the loader locates it. */
const authProblemMessage = (error: FormatError): string => error.within('auth').message;

/** The message a user reads for a bad `auth` value. */
function problem(value: unknown): string {
  try {
    parseAuthConfig(value);
  } catch (error) {
    if (error instanceof FormatError) return authProblemMessage(error);
    throw error;
  }
  throw new Error('expected the value to be refused');
}

const basic = (extra: Record<string, unknown>) => ({ mode: 'basic', htpasswd: '/etc/outpost/htpasswd', ...extra });

describe('parseAuthConfig', () => {
  it('reads an unset block as mode none', () => {
    expect(parseAuthConfig(undefined)).toEqual(defaultAuthConfig());
    expect(parseAuthConfig(null)).toEqual(defaultAuthConfig());
    expect(parseAuthConfig({})).toEqual(defaultAuthConfig());
    expect(defaultAuthConfig()).toMatchObject({ mode: 'none', cacheDecisionsMs: 60_000 });
  });

  it('reads the example of PRODUCT.md', () => {
    expect(parseAuthConfig(productExample)).toEqual({
      mode: 'basic',
      htpasswd: '/etc/outpost/htpasswd',
      groups: { developers: ['alice', 'bob'] },
      anonymous: ['library/*'],
      rules: [{ repositories: ['team-a/*'], users: ['alice'], groups: ['developers'], upstreams: ['ghcr.io'] }],
      cacheDecisionsMs: 60_000,
    });
  });

  it('gives access rules something they can decide with', () => {
    const rules = new AccessRules(parseAuthConfig(productExample));
    expect(rules.decide({ user: 'bob', upstream: 'ghcr.io', repository: 'team-a/app' })).toMatchObject({ decision: 'allow' });
    expect(rules.decide({ user: undefined, upstream: 'ghcr.io', repository: 'team-a/app' })).toMatchObject({ status: 401 });
    expect(rules.decide({ user: 'bob', upstream: 'docker.io', repository: 'team-a/app' })).toMatchObject({ status: 403 });
  });

  it('reads upstream mode with its decision cache time', () => {
    expect(parseAuthConfig({ mode: 'upstream', cacheDecisions: '30s' })).toMatchObject({ mode: 'upstream', cacheDecisionsMs: 30_000 });
    expect(parseAuthConfig({ mode: 'upstream', cacheDecisions: 0 })).toMatchObject({ cacheDecisionsMs: 0 });
    expect(parseAuthConfig({ mode: 'upstream' })).toMatchObject({ cacheDecisionsMs: 60_000, htpasswd: undefined, rules: [] });
  });

  it('accepts a rule with users only, groups only, and no upstreams', () => {
    const config = parseAuthConfig(
      basic({
        groups: { ops: ['olga'] },
        rules: [
          { repositories: ['infra/*', '-infra/secrets*'], groups: ['ops'] },
          { repositories: ['tools/*'], users: ['carol'], upstreams: ['Registry.Example.com:5000'] },
        ],
      }),
    );
    expect(config.rules).toEqual([
      { repositories: ['infra/*', '-infra/secrets*'], users: [], groups: ['ops'], upstreams: undefined },
      { repositories: ['tools/*'], users: ['carol'], groups: [], upstreams: ['registry.example.com:5000'] },
    ]);
  });

  it('accepts empty lists where they grant nothing', () => {
    expect(parseAuthConfig(basic({ anonymous: [], rules: [], groups: {} }))).toMatchObject({ anonymous: [], rules: [] });
    expect(parseAuthConfig({ mode: 'none', rules: [], groups: {} }).mode).toBe('none');
  });

  it.each([
    ['a value that is not an object', 'basic', /^auth: not an object, got "basic"; allowed: an object with keys mode, /],
    ['an unknown key, without its value', { mode: 'basic', htpasswd: '/x', rule: [{ secret: 'x' }] }, /^auth\.rule: unknown key; allowed: one of mode, htpasswd, /],
    ['an unknown mode', { mode: 'ldap' }, /^auth\.mode: not an auth mode, got "ldap"; allowed: one of none, basic, upstream$/],
    ['basic without htpasswd', { mode: 'basic' }, /^auth\.htpasswd: required when auth\.mode is basic, got nothing; /],
    ['an empty htpasswd path', basic({ htpasswd: ' ' }), /^auth\.htpasswd: must not be empty/],
    ['htpasswd with mode none', { htpasswd: '/etc/outpost/htpasswd' }, /^auth\.htpasswd: set, but auth\.mode is none: nothing would apply it/],
    ['rules with mode upstream', { mode: 'upstream', rules: [{ repositories: ['*'], users: ['a'] }] }, /^auth\.rules: set, but auth\.mode is upstream/],
    ['anonymous with mode none', { anonymous: ['library/*'] }, /^auth\.anonymous: set, but auth\.mode is none/],
    ['a bad cacheDecisions', { mode: 'upstream', cacheDecisions: 'soon' }, /^auth\.cacheDecisions: not a duration, got "soon"/],
    [
      'a bad repository pattern, with its full key',
      basic({
        rules: [
          { repositories: ['a/*'], users: ['alice'] },
          { repositories: ['b/*'], users: ['alice'] },
          { repositories: ['Team-C/*'], users: ['alice'] },
        ],
      }),
      /^auth\.rules\[2\]\.repositories\[0\]: repository names are lower case, got "Team-C\/\*"; allowed: an image pattern/,
    ],
    ['a pattern that names a tag', basic({ rules: [{ repositories: ['team-a/*:v1'], users: ['a'] }] }), /^auth\.rules\[0\]\.repositories\[0\]: names a tag, but access is granted per repository/],
    ['an anonymous pattern that names a tag', basic({ anonymous: ['library/*', '-*:*-rc*'] }), /^auth\.anonymous\[1\]: names a tag/],
    ['repositories of exclusions only', basic({ rules: [{ repositories: ['-secret/*'], users: ['a'] }] }), /^auth\.rules\[0\]\.repositories: only exclusions: grants nothing/],
    ['empty repositories', basic({ rules: [{ repositories: [], users: ['a'] }] }), /^auth\.rules\[0\]\.repositories: must not be empty/],
    ['a rule without repositories', basic({ rules: [{ users: ['a'] }] }), /^auth\.rules\[0\]\.repositories: required/],
    ['repositories as a string', basic({ rules: [{ repositories: 'team-a/*', users: ['a'] }] }), /^auth\.rules\[0\]\.repositories: not a list/],
    ['a rule that names nobody', basic({ rules: [{ repositories: ['*'] }] }), /^auth\.rules\[0\]: grants nobody: names no users and no groups/],
    ['a rule with an unknown key', basic({ rules: [{ repositories: ['*'], user: ['a'] }] }), /^auth\.rules\[0\]\.user: unknown key; allowed: one of repositories, users, groups, upstreams$/],
    ['a rule naming an undefined group', basic({ groups: { ops: ['olga'] }, rules: [{ repositories: ['*'], groups: ['devs'] }] }), /^auth\.rules\[0\]\.groups\[0\]: no such group, got "devs"; allowed: names of groups defined under auth\.groups: ops$/],
    ['a user name with a colon', basic({ rules: [{ repositories: ['*'], users: ['alice', 'bob:x'] }] }), /^auth\.rules\[0\]\.users\[1\]: not a valid user name, got "bob:x"/],
    ['a user name that is not a string', basic({ rules: [{ repositories: ['*'], users: [7] }] }), /^auth\.rules\[0\]\.users\[0\]: not a string, got 7/],
    ['a bad upstream host', basic({ rules: [{ repositories: ['*'], users: ['a'], upstreams: ['https://ghcr.io'] }] }), /^auth\.rules\[0\]\.upstreams\[0\]: not a registry host/],
    ['an empty upstreams list', basic({ rules: [{ repositories: ['*'], users: ['a'], upstreams: [] }] }), /^auth\.rules\[0\]\.upstreams: must not be empty/],
    ['a bad group name', basic({ groups: { 'dev ops': ['a'] } }), /^auth\.groups\.dev ops: not a valid group name/],
    ['a bad group member', basic({ groups: { ops: ['olga', ''] } }), /^auth\.groups\.ops\[1\]: not a valid user name/],
    ['groups as a list', basic({ groups: ['ops'] }), /^auth\.groups: not an object/],
    ['a rule that is not an object', basic({ rules: ['team-a/*'] }), /^auth\.rules\[0\]: not an object/],
  ])('refuses %s, naming the key', (_case, value, message) => {
    expect(problem(value)).toMatch(message);
  });

  it('does not show the value of an unknown key', () => {
    expect(problem({ mode: 'basic', htpasswd: '/x', password: 'hunter2' })).not.toContain('hunter2');
  });

  it('refuses more rules than it can check cheaply', () => {
    const rules = Array.from({ length: 1001 }, () => ({ repositories: ['*'], users: ['a'] }));
    expect(problem(basic({ rules }))).toMatch(/^auth\.rules: more than 1000 entries/);
  });
});

describe('unknownRuleUpstreams', () => {
  it('names each rule upstream that is not a configured primary', () => {
    const config = parseAuthConfig(
      basic({
        rules: [
          { repositories: ['*'], users: ['a'], upstreams: ['docker.io', 'ghrc.io'] },
          { repositories: ['*'], users: ['b'] },
          { repositories: ['*'], users: ['c'], upstreams: ['quay.io'] },
        ],
      }),
    );
    const problems = unknownRuleUpstreams(config, ['docker.io', 'registry-1.docker.io', 'GHCR.io']);
    expect(problems.map((p) => authProblemMessage(p))).toEqual([
      'auth.rules[0].upstreams[1]: names no configured upstream, got "ghrc.io"; allowed: a configured registry host: docker.io, registry-1.docker.io, ghcr.io',
      'auth.rules[2].upstreams[0]: names no configured upstream, got "quay.io"; allowed: a configured registry host: docker.io, registry-1.docker.io, ghcr.io',
    ]);
  });
});
