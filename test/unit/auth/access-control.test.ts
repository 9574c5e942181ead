import { describe, expect, it } from 'vitest';
import { anonymousClient, basicAccess, openAccess, verdictError } from '../../../src/auth/access-control.ts';
import { AccessRules } from '../../../src/auth/access-rules.ts';
import type { Upstream } from '../../../src/cache/ports.ts';
import type { RepositoryTarget } from '../../../src/cache/repository-target.ts';
import { RegistryError } from '../../../src/registry/errors.ts';

const signal = new AbortController().signal;
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const target = (name: string, upstreamKey = 'registry.test'): RepositoryTarget => ({ upstream: {} as Upstream, upstreamKey, name });

function access() {
  const users = new Map([['alice', 'alice-pw'], ['bob', 'bob-pw']]);
  let closed = false;
  const control = basicAccess({
    users: { verify: async (user, password) => users.get(user) === password, close: () => void (closed = true) },
    rules: new AccessRules({
      anonymous: ['library/*'],
      groups: { ops: ['bob'] },
      rules: [
        { repositories: ['team-a/*'], users: ['alice'] },
        { repositories: ['infra/*'], groups: ['ops'], upstreams: ['ghcr.io'] },
      ],
    }),
  });
  return { control, closed: () => closed };
}

describe('basic access', () => {
  it('treats a request without usable credentials as anonymous', async () => {
    const { control } = access();
    for (const header of [undefined, 'Bearer abc', 'Basic !!!', basic('', '')]) {
      expect(await control.authenticate(header, signal)).toEqual(anonymousClient);
    }
  });

  it('refuses credentials that do not verify with 401 and the Basic challenge, without saying why', async () => {
    const { control } = access();
    const error = await control.authenticate(basic('alice', 'nope'), signal).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(RegistryError);
    expect(error).toMatchObject({ code: 'UNAUTHORIZED', status: 401, headers: { 'www-authenticate': 'Basic realm="outpost"' } });
    expect(JSON.stringify(error)).not.toContain('nope');
    await expect(control.authenticate(basic('mallory', 'x'), signal)).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
  });

  it('knows the user and keeps no credential once verified', async () => {
    const { control } = access();
    expect(await control.authenticate(basic('alice', 'alice-pw'), signal)).toEqual({ user: 'alice', credentials: undefined });
  });

  it('asks for credentials on /v2/', async () => {
    const { control } = access();
    expect(await control.login(anonymousClient, undefined, signal)).toMatchObject({ decision: 'deny', code: 'UNAUTHORIZED' });
    expect(await control.login({ user: 'alice', credentials: undefined }, undefined, signal)).toMatchObject({ decision: 'allow' });
  });

  it('decides per repository and upstream, with reasons for the audit log', async () => {
    const { control } = access();
    const alice = { user: 'alice', credentials: undefined };
    const bob = { user: 'bob', credentials: undefined };
    expect(await control.authorize(alice, target('team-a/app'), signal)).toEqual({ decision: 'allow', reason: 'rules[0] grants pull to the user' });
    expect(await control.authorize(bob, target('team-a/app'), signal)).toEqual({ decision: 'deny', code: 'DENIED', reason: 'no rule grants pull on this repository' });
    expect(await control.authorize(anonymousClient, target('team-a/app'), signal)).toMatchObject({ decision: 'deny', code: 'UNAUTHORIZED' });
    expect(await control.authorize(anonymousClient, target('library/alpine'), signal)).toEqual({ decision: 'allow', reason: 'anonymous access' });
    expect(await control.authorize(bob, target('infra/db', 'ghcr.io'), signal)).toMatchObject({ decision: 'allow', reason: 'rules[1] grants pull through group ops' });
    expect(await control.authorize(bob, target('infra/db'), signal)).toMatchObject({ decision: 'deny', code: 'DENIED' });
    expect(control.lists(alice, 'registry.test', 'team-a/app')).toBe(true);
    expect(control.lists(alice, 'registry.test', 'infra/db')).toBe(false);
    expect(control.lists(anonymousClient, 'registry.test', 'library/alpine')).toBe(true);
  });

  it('leaves the repository target as it is and closes the user file', () => {
    const { control, closed } = access();
    const t = target('team-a/app');
    expect(control.scope(anonymousClient, t)).toBe(t);
    control.close();
    expect(closed()).toBe(true);
  });
});

describe('open access (auth.mode none)', () => {
  it('ignores credentials and allows everything', async () => {
    const control = openAccess();
    expect(await control.authenticate(basic('alice', 'whatever'), signal)).toEqual(anonymousClient);
    expect(await control.login(anonymousClient, undefined, signal)).toMatchObject({ decision: 'allow' });
    expect(await control.authorize(anonymousClient, target('any/thing'), signal)).toEqual({ decision: 'allow', reason: 'auth.mode none' });
    expect(control.lists(anonymousClient, 'registry.test', 'any/thing')).toBe(true);
  });
});

describe('verdictError', () => {
  it('challenges only on 401', () => {
    expect(verdictError({ decision: 'deny', code: 'UNAUTHORIZED', reason: 'credentials required' }).headers).toEqual({ 'www-authenticate': 'Basic realm="outpost"' });
    expect(verdictError({ decision: 'deny', code: 'DENIED', reason: 'no rule' })).toMatchObject({ status: 403, headers: {} });
  });
});
