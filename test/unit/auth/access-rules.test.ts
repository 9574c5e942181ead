import { describe, expect, it } from 'vitest';
import { AccessRules, type AccessRulesConfig } from '../../../src/auth/access-rules.ts';
import { ImagePatternError } from '../../../src/registry/image-pattern.ts';

// The example of PRODUCT.md, plus a rule limited to one upstream and one with an exclusion.
const config: AccessRulesConfig = {
  anonymous: ['library/*'],
  groups: { developers: ['alice', 'bob'], ops: ['olga'] },
  rules: [
    { repositories: ['team-a/*'], users: ['alice'], groups: ['developers'], upstreams: ['ghcr.io'] },
    { repositories: ['infra/*', '-infra/secrets*'], groups: ['ops'] },
    { repositories: ['tools/*'], users: ['carol'] },
  ],
};

const rules = new AccessRules(config);
const decide = (user: string | undefined, upstream: string, repository: string) =>
  rules.decide({ user, upstream, repository });

describe('AccessRules.decide', () => {
  it('allows anyone, without credentials, to pull a repository matching an anonymous pattern', () => {
    expect(decide(undefined, 'docker.io', 'library/nginx')).toEqual({ decision: 'allow', reason: 'anonymous access' });
    expect(decide(undefined, 'ghcr.io', 'library/sub/image')).toMatchObject({ decision: 'allow' });
  });

  it('allows a user without any rule to pull anonymous repositories too', () => {
    expect(decide('mallory', 'docker.io', 'library/alpine')).toMatchObject({ decision: 'allow' });
  });

  it('asks for credentials (401 UNAUTHORIZED) when a client without them asks for anything else', () => {
    expect(decide(undefined, 'ghcr.io', 'team-a/app')).toEqual({
      decision: 'deny',
      status: 401,
      code: 'UNAUTHORIZED',
      reason: 'credentials required',
    });
    expect(decide(undefined, 'docker.io', 'library')).toMatchObject({ status: 401 });
  });

  it('allows a user a rule names', () => {
    expect(decide('carol', 'docker.io', 'tools/jq')).toEqual({ decision: 'allow', reason: 'rules[2] grants pull to the user' });
  });

  it('allows a member of a group a rule names', () => {
    expect(decide('bob', 'ghcr.io', 'team-a/app')).toEqual({
      decision: 'allow',
      reason: 'rules[0] grants pull through group developers',
    });
    expect(decide('olga', 'docker.io', 'infra/terraform')).toMatchObject({ decision: 'allow' });
  });

  it('applies a rule limited to some upstreams only on those', () => {
    expect(decide('alice', 'ghcr.io', 'team-a/app')).toMatchObject({ decision: 'allow' });
    expect(decide('alice', 'GHCR.io', 'team-a/app')).toMatchObject({ decision: 'allow' });
    expect(decide('alice', 'docker.io', 'team-a/app')).toMatchObject({ decision: 'deny', status: 403 });
  });

  it('applies a rule without upstreams on every upstream', () => {
    expect(decide('carol', 'ghcr.io', 'tools/jq')).toMatchObject({ decision: 'allow' });
    expect(decide('carol', 'registry.example.com:5000', 'tools/jq')).toMatchObject({ decision: 'allow' });
  });

  it('refuses (403 DENIED) a user no rule grants the repository', () => {
    expect(decide('carol', 'ghcr.io', 'team-a/app')).toEqual({
      decision: 'deny',
      status: 403,
      code: 'DENIED',
      reason: 'no rule grants pull on this repository',
    });
    expect(decide('mallory', 'docker.io', 'tools/jq')).toMatchObject({ status: 403, code: 'DENIED' });
  });

  it('honours an exclusion inside a rule', () => {
    expect(decide('olga', 'docker.io', 'infra/secrets-vault')).toMatchObject({ status: 403 });
  });

  it('does not grant a group rule to a user outside the group', () => {
    expect(decide('carol', 'docker.io', 'infra/terraform')).toMatchObject({ status: 403 });
  });

  it('lets any matching rule grant, whatever its position', () => {
    const layered = new AccessRules({
      anonymous: [],
      groups: {},
      rules: [
        { repositories: ['*', '-private/*'], users: ['dana'] },
        { repositories: ['private/dana'], users: ['dana'] },
      ],
    });
    expect(layered.decide({ user: 'dana', upstream: 'docker.io', repository: 'private/dana' })).toMatchObject({
      decision: 'allow',
      reason: 'rules[1] grants pull to the user',
    });
    expect(layered.decide({ user: 'dana', upstream: 'docker.io', repository: 'private/erin' })).toMatchObject({ status: 403 });
  });

  it('with no rules and no anonymous patterns, asks anonymous clients for credentials and refuses users', () => {
    const closed = new AccessRules({ anonymous: [], groups: {}, rules: [] });
    expect(closed.decide({ user: undefined, upstream: 'docker.io', repository: 'library/nginx' })).toMatchObject({ status: 401 });
    expect(closed.decide({ user: 'alice', upstream: 'docker.io', repository: 'library/nginx' })).toMatchObject({ status: 403 });
  });

  it('matches user and group names exactly', () => {
    expect(decide('Carol', 'docker.io', 'tools/jq')).toMatchObject({ status: 403 });
  });

  it('refuses to build from a malformed pattern', () => {
    expect(() => new AccessRules({ anonymous: ['Library/*'], groups: {}, rules: [] })).toThrow(ImagePatternError);
  });
});
