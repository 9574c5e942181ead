import { describe, expect, it } from 'vitest';
import { anonymousClient, type Verdict } from '../../../src/auth/access-control.ts';
import type { BasicCredentials } from '../../../src/auth/basic-credentials.ts';
import { DecisionCache } from '../../../src/auth/decision-cache.ts';
import { upstreamAccess, type PrimaryAnswer, type PrimaryForClients } from '../../../src/auth/upstream-access.ts';
import { UpstreamError, type Upstream } from '../../../src/cache/ports.ts';
import type { RepositoryTarget } from '../../../src/cache/repository-target.ts';

const signal = new AbortController().signal;
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

function setup(answer: (credentials: BasicCredentials | undefined, repo: string) => PrimaryAnswer | Promise<PrimaryAnswer>) {
  let now = 0;
  const asked: string[] = [];
  const as: (BasicCredentials | undefined)[] = [];
  const primary: PrimaryForClients = {
    asClient: (credentials) => {
      as.push(credentials);
      return { host: 'registry.test', client: credentials?.username } as unknown as Upstream;
    },
    checkPull: async (credentials, repo) => {
      asked.push(`${credentials?.username ?? '-'} ${repo}`);
      return answer(credentials, repo);
    },
    checkLogin: async (credentials) => {
      asked.push(`${credentials?.username ?? '-'} login`);
      return credentials?.password === 'pw' ? 'allow' : 'unauthorized';
    },
  };
  const decisions = new DecisionCache<Verdict>({ ttlMs: 60_000 }, { clock: { now: () => now } });
  const access = upstreamAccess({ primaries: new Map([['registry.test', primary]]), defaultUpstream: 'registry.test', decisions });
  const target: RepositoryTarget = { upstream: {} as Upstream, upstreamKey: 'registry.test', name: 'team/app' };
  return { access, asked, as, target, advance: (ms: number) => (now += ms) };
}

describe('upstream access', () => {
  it('takes the credentials the client sent, unverified, and anonymous without any', async () => {
    const { access } = setup(() => 'allow');
    expect(await access.authenticate(basic('alice', 'pw'), signal)).toEqual({ user: 'alice', credentials: { username: 'alice', password: 'pw' } });
    expect(await access.authenticate(undefined, signal)).toEqual(anonymousClient);
    expect(await access.authenticate(basic('', ''), signal)).toEqual(anonymousClient);
  });

  it("turns the primary's answer into the verdict", async () => {
    const answers: Record<string, PrimaryAnswer> = { alice: 'allow', bob: 'denied', carol: 'not-found', '-': 'unauthorized' };
    const { access, target } = setup((credentials) => answers[credentials?.username ?? '-']!);
    const client = async (user?: string) => access.authenticate(user === undefined ? undefined : basic(user, 'pw'), signal);
    expect(await access.authorize(await client('alice'), target, signal)).toEqual({ decision: 'allow', reason: 'the primary lets these credentials pull' });
    expect(await access.authorize(await client('bob'), target, signal)).toMatchObject({ decision: 'deny', code: 'DENIED' });
    expect(await access.authorize(await client('carol'), target, signal)).toMatchObject({ decision: 'deny', code: 'NAME_UNKNOWN' });
    expect(await access.authorize(await client(), target, signal)).toMatchObject({ decision: 'deny', code: 'UNAUTHORIZED' });
  });

  it('asks once per credential and repository while the decision lasts, then again', async () => {
    const { access, asked, target, advance } = setup(() => 'allow');
    const alice = await access.authenticate(basic('alice', 'pw'), signal);
    const wrong = await access.authenticate(basic('alice', 'other'), signal);
    await Promise.all([access.authorize(alice, target, signal), access.authorize(alice, target, signal)]);
    await access.authorize(alice, target, signal);
    await access.authorize(wrong, target, signal);
    await access.authorize(alice, { ...target, name: 'team/other' }, signal);
    expect(asked).toEqual(['alice team/app', 'alice team/app', 'alice team/other']);
    advance(60_000);
    await access.authorize(alice, target, signal);
    expect(asked).toHaveLength(4);
  });

  it('does not decide when the primary cannot be asked, and asks again next time', async () => {
    let down = true;
    const { access, target } = setup(() => {
      if (down) throw new UpstreamError('UPSTREAM_UNREACHABLE', 'refused', { reason: 'connection refused (ECONNREFUSED)' });
      return 'allow';
    });
    const alice = await access.authenticate(basic('alice', 'pw'), signal);
    await expect(access.authorize(alice, target, signal)).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE', status: 502 });
    down = false;
    expect(await access.authorize(alice, target, signal)).toMatchObject({ decision: 'allow' });
  });

  it('checks /v2/ against the default primary, and asks anonymous clients for credentials', async () => {
    const { access } = setup(() => 'allow');
    expect(await access.login(anonymousClient, undefined, signal)).toMatchObject({ decision: 'deny', code: 'UNAUTHORIZED' });
    expect(await access.login(await access.authenticate(basic('alice', 'pw'), signal), undefined, signal)).toMatchObject({ decision: 'allow' });
    expect(await access.login(await access.authenticate(basic('alice', 'no'), signal), undefined, signal)).toMatchObject({ decision: 'deny', code: 'UNAUTHORIZED' });
  });

  it("reaches the primary with the client's own credentials, and lists only what it was allowed", async () => {
    const { access, as, target } = setup((credentials) => (credentials?.username === 'alice' ? 'allow' : 'denied'));
    const alice = await access.authenticate(basic('alice', 'pw'), signal);
    const bob = await access.authenticate(basic('bob', 'pw'), signal);
    expect(access.scope(alice, target)).toMatchObject({ upstreamKey: 'registry.test', name: 'team/app', upstream: { client: 'alice' } });
    expect(as).toEqual([{ username: 'alice', password: 'pw' }]);
    expect(access.lists(alice, 'registry.test', 'team/app')).toBe(false);
    await access.authorize(alice, target, signal);
    await access.authorize(bob, target, signal);
    expect(access.lists(alice, 'registry.test', 'team/app')).toBe(true);
    expect(access.lists(bob, 'registry.test', 'team/app')).toBe(false);
  });

  it('checks /v2/?ns= against the primary it names', async () => {
    const primary = (password: string): PrimaryForClients => ({
      asClient: () => ({}) as Upstream,
      checkPull: async () => 'allow',
      checkLogin: async (credentials) => (credentials?.password === password ? 'allow' : 'unauthorized'),
    });
    const access = upstreamAccess({
      primaries: new Map([['registry.test', primary('hub')], ['ghcr.io', primary('ghcr')]]),
      defaultUpstream: 'registry.test',
      decisions: new DecisionCache<Verdict>({ ttlMs: 60_000 }, { clock: { now: () => 0 } }),
    });
    const ghcrUser = await access.authenticate(basic('alice', 'ghcr'), signal);
    expect(await access.login(ghcrUser, 'ghcr.io', signal)).toMatchObject({ decision: 'allow' });
    expect(await access.login(ghcrUser, undefined, signal)).toMatchObject({ decision: 'deny', code: 'UNAUTHORIZED' });
  });
});
