import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAuthConfig } from '../../../src/auth/config.ts';
import { systemClock } from '../../../src/cache/ports.ts';
import { RepositoryResolver, type UpstreamEntry } from '../../../src/cache/repository-resolver.ts';
import { createAccessControl } from '../../../src/process/access.ts';
import { FakeUpstream } from '../../support/fake-upstream.ts';
import { writeHtpasswd } from '../../support/htpasswd.ts';

const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const signal = new AbortController().signal;

function entry(host: string, dockerHub = false, aliases: string[] = []): UpstreamEntry {
  return { host, aliases, upstream: new FakeUpstream(), dockerHub };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outpost-access-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('createAccessControl', () => {
  it('decides rules written with a registry alias against the primary that answers to it', async () => {
    const htpasswd = join(dir, 'htpasswd');
    await writeHtpasswd(htpasswd, [{ username: 'alice', password: 'pw' }]);
    const resolver = new RepositoryResolver(entry('registry-1.docker.io', true, ['docker.io', 'index.docker.io']), [entry('ghcr.io')]);
    const auth = parseAuthConfig({ mode: 'basic', htpasswd, rules: [{ repositories: ['library/*'], users: ['alice'], upstreams: ['docker.io'] }] });
    const access = await createAccessControl(auth, { resolver, primaries: new Map(), defaultUpstream: 'registry.test', clock: systemClock, logger: silent });
    try {
      const alice = await access.authenticate(`Basic ${Buffer.from('alice:pw').toString('base64')}`, signal);
      expect(await access.authorize(alice, resolver.resolve('nginx', undefined), signal)).toMatchObject({ decision: 'allow' });
      expect(await access.authorize(alice, resolver.resolve('nginx', 'docker.io'), signal)).toMatchObject({ decision: 'allow' });
      expect(await access.authorize(alice, resolver.resolve('ghcr.io/library/nginx', undefined), signal)).toMatchObject({ decision: 'deny', code: 'DENIED' });
    } finally {
      access.close();
    }
  });

  it('is open access in mode none', async () => {
    const resolver = new RepositoryResolver(entry('registry.test'), []);
    const access = await createAccessControl(parseAuthConfig(undefined), { resolver, primaries: new Map(), defaultUpstream: 'registry.test', clock: systemClock, logger: silent });
    expect(access.mode).toBe('none');
  });

  it("puts clients' credentials to the primary of the repository in mode upstream", async () => {
    const resolver = new RepositoryResolver(entry('registry.test'), [entry('ghcr.io')]);
    const asked: string[] = [];
    const primary = (host: string) => ({
      asClient: () => new FakeUpstream(),
      checkPull: async (_credentials: unknown, repo: string) => {
        asked.push(`${host} ${repo}`);
        return 'allow' as const;
      },
      checkLogin: async () => 'allow' as const,
    });
    const primaries = new Map([['registry.test', primary('registry.test')], ['ghcr.io', primary('ghcr.io')]]);
    const access = await createAccessControl(parseAuthConfig({ mode: 'upstream' }), { resolver, primaries, defaultUpstream: 'registry.test', clock: systemClock, logger: silent });
    const client = await access.authenticate(`Basic ${Buffer.from('alice:pw').toString('base64')}`, signal);
    await access.authorize(client, resolver.resolve('ghcr.io/org/app', undefined), signal);
    await access.authorize(client, resolver.resolve('team/app', undefined), signal);
    expect(asked).toEqual(['ghcr.io org/app', 'registry.test team/app']);
  });

  it('does not start with an unreadable htpasswd file', async () => {
    const resolver = new RepositoryResolver(entry('registry.test'), []);
    const auth = parseAuthConfig({ mode: 'basic', htpasswd: join(dir, 'missing') });
    await expect(createAccessControl(auth, { resolver, primaries: new Map(), defaultUpstream: 'registry.test', clock: systemClock, logger: silent })).rejects.toThrow(/cannot be read/);
  });
});
