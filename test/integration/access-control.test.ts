/**
 * Access control end to end: a real distribution primary with htpasswd,
 * Outpost nodes with `auth.mode: basic`, skopeo and plain HTTP clients.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { writeHtpasswd, type Credentials } from '../support/htpasswd.ts';
import { makeImage, makeLayer, pushImage, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { pullOciDigests, SkopeoError } from '../support/skopeo.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';
import { startTokenIssuer, type TokenIssuer } from '../support/token-issuer.ts';
import { waitFor } from '../support/wait.ts';

const cleanup = createCleanupStack();
afterAll(() => cleanup.run());

// On the primary.
const admin = { username: 'admin', password: 'admin-secret-7f3a' };
const mirror = { username: 'mirror', password: 'mirror-secret-9c2e' };
// On Outpost.
const alice = { username: 'alice', password: 'alice-pw-4d1b8e' };
const bob = { username: 'bob', password: 'bob-pw-6a0c2f' };
const carol = { username: 'carol', password: 'carol-pw-e81d47' };

function image(seed: string): Image {
  return makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 50_000, seed })], labels: { seed } });
}

function basicHeader(credentials: Credentials): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` };
}

async function get(node: OutpostNode, path: string, credentials?: Credentials, method = 'GET'): Promise<{ status: number; headers: Headers; body: string }> {
  const res = await fetch(`${node.url}${path}`, {
    method,
    headers: {
      accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json',
      ...(credentials === undefined ? {} : basicHeader(credentials)),
    },
    signal: AbortSignal.timeout(20_000),
  });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

function errorCode(body: string): string | undefined {
  return (JSON.parse(body) as { errors: { code: string }[] }).errors[0]?.code;
}

interface Setup {
  registry: DistributionRegistry;
  dir: string;
  htpasswd: string;
}

async function primaryWith(images: Record<string, Image>): Promise<Setup> {
  const registry = await startDistribution({ auth: 'htpasswd', users: [admin, mirror] });
  cleanup.add(() => registry.dispose());
  for (const [repo, img] of Object.entries(images)) await pushImage(registry.url, repo, 'v1', img, admin);
  const dir = await makeTempDir('access-control');
  cleanup.add(() => removeTempDir(dir));
  return { registry, dir, htpasswd: join(dir, 'htpasswd') };
}

async function outpostWith(setup: Setup, auth: string, { ownCredentials = true } = {}): Promise<OutpostNode> {
  const config = join(setup.dir, `outpost-${Math.random().toString(16).slice(2)}.yaml`);
  await writeFile(config, auth);
  const node = await startOutpost({
    upstreamUrl: setup.registry.url,
    env: {
      OUTPOST_CONFIG: config,
      ...(ownCredentials ? { OUTPOST_UPSTREAM_USERNAME: mirror.username, OUTPOST_UPSTREAM_PASSWORD: mirror.password } : {}),
    },
  });
  cleanup.add(() => node.dispose());
  return node;
}

describe('auth.mode basic', () => {
  const teamA = image('team-a');
  const teamB = image('team-b');
  const base = image('base');
  let setup: Setup;
  let outpost: OutpostNode;

  beforeAll(async () => {
    setup = await primaryWith({ 'team-a/app': teamA, 'team-b/secret': teamB, 'library/base': base });
    await writeHtpasswd(setup.htpasswd, [alice, bob, carol]);
    outpost = await outpostWith(
      setup,
      `auth:
  mode: basic
  htpasswd: ${setup.htpasswd}
  groups: {secret-keepers: [carol]}
  anonymous: ["library/*"]
  rules:
    - repositories: ["team-a/*"]
      users: [alice]
    - repositories: ["team-b/*"]
      groups: [secret-keepers]
`,
    );
  }, 120_000);

  it('asks for credentials on /v2/ with a Basic challenge, so docker login works', async () => {
    const anonymous = await get(outpost, '/v2/');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Basic realm="outpost"');
    expect(errorCode(anonymous.body)).toBe('UNAUTHORIZED');
    expect((await get(outpost, '/v2/', alice)).status).toBe(200);
    const wrong = await get(outpost, '/v2/', { username: 'alice', password: 'not-her-password' });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toBe('Basic realm="outpost"');
    expect((await get(outpost, '/v2/', { username: 'mallory', password: 'x' })).status).toBe(401);
  });

  it('lets a user pull with skopeo what a rule grants her', async () => {
    expect(await pullOciDigests(`${outpost.host}/team-a/app:v1`, { srcCreds: alice })).toEqual([teamA.digest]);
  });

  it('refuses a user without a rule with 403 DENIED, for cached manifests by tag and digest and cached blobs too', async () => {
    // Cached by an allowed user first.
    expect((await get(outpost, `/v2/team-a/app/manifests/v1`, alice)).status).toBe(200);
    expect((await get(outpost, `/v2/team-a/app/blobs/${teamA.layers[0]!.digest}`, alice)).status).toBe(200);
    for (const path of [
      '/v2/team-a/app/manifests/v1',
      `/v2/team-a/app/manifests/${teamA.digest}`,
      `/v2/team-a/app/blobs/${teamA.layers[0]!.digest}`,
      `/v2/team-a/app/blobs/${teamA.config.digest}`,
      '/v2/team-a/app/tags/list',
      `/v2/team-a/app/referrers/${teamA.digest}`,
    ]) {
      for (const method of ['GET', 'HEAD']) {
        const res = await get(outpost, path, bob, method);
        expect(res.status, `${method} ${path}`).toBe(403);
        if (method === 'GET') expect(errorCode(res.body), path).toBe('DENIED');
      }
    }
    await expect(pullOciDigests(`${outpost.host}/team-a/app:v1`, { srcCreds: bob })).rejects.toThrow(SkopeoError);
  });

  it('answers 401 with the challenge to a client without or with bad credentials', async () => {
    for (const credentials of [undefined, { username: 'alice', password: 'wrong' }]) {
      for (const path of ['/v2/team-a/app/manifests/v1', `/v2/team-a/app/blobs/${teamA.layers[0]!.digest}`]) {
        const res = await get(outpost, path, credentials);
        expect(res.status, path).toBe(401);
        expect(res.headers.get('www-authenticate')).toBe('Basic realm="outpost"');
      }
    }
  });

  it('grants through a group', async () => {
    expect(await pullOciDigests(`${outpost.host}/team-b/secret:v1`, { srcCreds: carol })).toEqual([teamB.digest]);
    expect((await get(outpost, '/v2/team-b/secret/manifests/v1', alice)).status).toBe(403);
  });

  it('lets anyone pull a repository matching an anonymous pattern', async () => {
    expect(await pullOciDigests(`${outpost.host}/library/base:v1`)).toEqual([base.digest]);
    expect((await get(outpost, `/v2/library/base/blobs/${base.layers[0]!.digest}`)).status).toBe(200);
    // Bad credentials are still a 401, whatever the repository.
    expect((await get(outpost, '/v2/library/base/manifests/v1', { username: 'bob', password: 'wrong' })).status).toBe(401);
  });

  it('lists in _catalog only the repositories the client may pull', async () => {
    await get(outpost, '/v2/team-b/secret/manifests/v1', carol);
    const list = async (credentials?: Credentials) => (JSON.parse((await get(outpost, '/v2/_catalog', credentials)).body) as { repositories: string[] }).repositories;
    expect(await list(alice)).toEqual(['library/base', 'team-a/app']);
    expect(await list(carol)).toEqual(['library/base', 'team-b/secret']);
    expect(await list()).toEqual(['library/base']);
    expect((await get(outpost, '/v2/_catalog', { username: 'carol', password: 'wrong' })).status).toBe(401);
  });

  it('reloads the htpasswd file when it changes', async () => {
    const dave = { username: 'dave', password: 'dave-pw-19be7c' };
    expect((await get(outpost, '/v2/', dave)).status).toBe(401);
    await writeHtpasswd(setup.htpasswd, [alice, carol, dave]);
    await waitFor(async () => (await get(outpost, '/v2/', dave)).status === 200, { what: 'the new user to be accepted', timeoutMs: 15_000, intervalMs: 200 });
    await waitFor(async () => (await get(outpost, '/v2/', bob)).status === 401, { what: 'the removed user to be refused', timeoutMs: 15_000, intervalMs: 200 });
    await writeHtpasswd(setup.htpasswd, [alice, bob, carol]);
    await waitFor(async () => (await get(outpost, '/v2/', bob)).status === 200, { what: 'bob to be back', timeoutMs: 15_000, intervalMs: 200 });
  });

  it('serves a cached blob or manifest by digest only under a repository of the primary that references it', async () => {
    await get(outpost, '/v2/team-a/app/manifests/v1', alice);
    // Alice may pull team-a/*, but team-a/other does not hold team-a/app's content on the primary.
    const blob = await get(outpost, `/v2/team-a/other/blobs/${teamA.layers[0]!.digest}`, alice);
    expect(blob.status).toBe(404);
    expect(errorCode(blob.body)).toBe('BLOB_UNKNOWN');
    expect((await get(outpost, `/v2/team-a/other/manifests/${teamA.digest}`, alice)).status).toBe(404);
  });

  it('writes one audit line per pull with the user and the decision, and never a password', () => {
    const audit = outpost.logs().filter((line) => line['module'] === 'audit');
    expect(audit).toContainEqual(
      expect.objectContaining({ user: 'alice', repository: 'team-a/app', route: 'manifest', reference: 'v1', decision: 'allow', msg: 'pull allowed' }),
    );
    expect(audit).toContainEqual(
      expect.objectContaining({ user: 'alice', repository: 'team-a/app', route: 'blob', reference: teamA.layers[0]!.digest, decision: 'allow' }),
    );
    expect(audit).toContainEqual(
      expect.objectContaining({ user: 'bob', repository: 'team-a/app', route: 'blob', decision: 'deny', code: 'DENIED', reason: 'no rule grants pull on this repository' }),
    );
    expect(audit).toContainEqual(expect.objectContaining({ user: null, repository: 'team-a/app', decision: 'deny', code: 'UNAUTHORIZED', reason: 'credentials required' }));
    expect(audit).toContainEqual(expect.objectContaining({ user: null, repository: 'library/base', decision: 'allow', reason: 'anonymous access' }));
    expect(audit).toContainEqual(expect.objectContaining({ decision: 'deny', code: 'UNAUTHORIZED', reason: 'bad credentials' }));
    const output = outpost.output();
    for (const secret of [alice, bob, carol, mirror, admin].map((c) => c.password)) expect(output).not.toContain(secret);
    expect(output).not.toContain('not-her-password');
    expect(output).not.toMatch(/authorization/i);
  });
});

describe('blobs and manifests by digest, in every mode', () => {
  const app = image('app');
  let setup: Setup;
  let outpost: OutpostNode;

  beforeAll(async () => {
    setup = await primaryWith({ 'team/app': app, 'team/fork': app, 'team/other': image('other') });
    outpost = await outpostWith(setup, 'auth:\n  mode: none\n');
    expect(await pullOciDigests(`${outpost.host}/team/app:v1`)).toEqual([app.digest]);
  }, 120_000);

  it('are not served from the cache under a repository the primary says does not have them', async () => {
    for (const repo of ['no/such-repo', 'team/other']) {
      for (const method of ['GET', 'HEAD']) {
        const blob = await get(outpost, `/v2/${repo}/blobs/${app.layers[0]!.digest}`, undefined, method);
        expect(blob.status, `${method} ${repo}`).toBe(404);
        const config = await get(outpost, `/v2/${repo}/blobs/${app.config.digest}`, undefined, method);
        expect(config.status, `${method} ${repo}`).toBe(404);
        const manifest = await get(outpost, `/v2/${repo}/manifests/${app.digest}`, undefined, method);
        expect(manifest.status, `${method} ${repo}`).toBe(404);
      }
    }
    expect(errorCode((await get(outpost, `/v2/no/such-repo/blobs/${app.layers[0]!.digest}`)).body)).toBe('BLOB_UNKNOWN');
    expect(errorCode((await get(outpost, `/v2/no/such-repo/manifests/${app.digest}`)).body)).toBe('MANIFEST_UNKNOWN');
  });

  it('are served from the cache under another repository once the primary confirms it has them', async () => {
    setup.registry.clearRequests();
    const blob = await get(outpost, `/v2/team/fork/blobs/${app.layers[0]!.digest}`);
    expect(blob.status).toBe(200);
    expect(blob.headers.get('x-outpost-cache')).toBe('hit');
    const manifest = await get(outpost, `/v2/team/fork/manifests/${app.digest}`);
    expect(manifest.status).toBe(200);
    expect(manifest.headers.get('x-outpost-cache')).toBe('hit');
    await setup.registry.flushLog();
    // Asked with HEADs only; the bytes came from the cache.
    expect(setup.registry.requests().filter((r) => r.method === 'GET' && r.status === 200)).toEqual([]);
    expect(setup.registry.countRequests({ method: 'HEAD' })).toBeGreaterThanOrEqual(2);
  });
});

/** What a refused client gets for an image an allowed client cached. */
async function expectRefused(node: OutpostNode, repo: string, img: Image, credentials: Credentials | undefined, code: string, status: number): Promise<void> {
  for (const path of [`/v2/${repo}/manifests/v1`, `/v2/${repo}/manifests/${img.digest}`, `/v2/${repo}/blobs/${img.layers[0]!.digest}`, `/v2/${repo}/blobs/${img.config.digest}`]) {
    for (const method of ['GET', 'HEAD']) {
      const res = await get(node, path, credentials, method);
      expect(res.status, `${method} ${path} as ${credentials?.username ?? 'anonymous'}`).toBe(status);
      if (status === 401) expect(res.headers.get('www-authenticate'), path).toBe('Basic realm="outpost"');
      if (method === 'GET') expect(errorCode(res.body), path).toBe(code);
    }
  }
}

describe('auth.mode upstream, a primary with htpasswd', () => {
  const secret = image('upstream-htpasswd');
  let setup: Setup;
  let outpost: OutpostNode;
  const user = { username: 'mirror', password: mirror.password };

  beforeAll(async () => {
    setup = await primaryWith({ 'private/app': secret });
    // Outpost has no credentials of its own: every client's are put to the primary.
    outpost = await outpostWith(setup, 'auth:\n  mode: upstream\n  cacheDecisions: 60s\n', { ownCredentials: false });
  }, 120_000);

  it('checks /v2/ credentials against the primary', async () => {
    const anonymous = await get(outpost, '/v2/');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Basic realm="outpost"');
    expect((await get(outpost, '/v2/', user)).status).toBe(200);
    expect((await get(outpost, '/v2/', { username: 'mirror', password: 'wrong' })).status).toBe(401);
  });

  it("pulls with the client's own credentials", async () => {
    expect(await pullOciDigests(`${outpost.host}/private/app:v1`, { srcCreds: user })).toEqual([secret.digest]);
  });

  it('never serves the cached image to an anonymous or wrong-password client, by tag or by digest', async () => {
    await pullOciDigests(`${outpost.host}/private/app:v1`, { srcCreds: user });
    await expectRefused(outpost, 'private/app', secret, undefined, 'UNAUTHORIZED', 401);
    await expectRefused(outpost, 'private/app', secret, { username: 'mirror', password: 'wrong' }, 'UNAUTHORIZED', 401);
    await expectRefused(outpost, 'private/app', secret, { username: 'nobody', password: 'x' }, 'UNAUTHORIZED', 401);
    await expect(pullOciDigests(`${outpost.host}/private/app:v1`)).rejects.toThrow(SkopeoError);
    // The allowed client still gets it, from the cache.
    const again = await get(outpost, `/v2/private/app/blobs/${secret.layers[0]!.digest}`, user);
    expect(again.status).toBe(200);
    expect(again.headers.get('x-outpost-cache')).toBe('hit');
  });

  it('asks the primary once per client and repository while the decision is cached', async () => {
    await get(outpost, '/v2/private/app/manifests/v1', user);
    setup.registry.clearRequests();
    for (let i = 0; i < 3; i++) await get(outpost, `/v2/private/app/blobs/${secret.layers[0]!.digest}`, user);
    await setup.registry.flushLog();
    // Two workers: each asks at most once.
    expect(setup.registry.countRequests({ pathIncludes: '/tags/list' })).toBeLessThanOrEqual(2 * 2);
    expect(setup.registry.countRequests({ pathIncludes: '/blobs/' })).toBe(0);
  });

  it('audits with the user the client sent, and logs no password', () => {
    const audit = outpost.logs().filter((line) => line['module'] === 'audit');
    expect(audit).toContainEqual(expect.objectContaining({ user: 'mirror', repository: 'private/app', decision: 'allow', reason: 'the primary lets these credentials pull' }));
    expect(audit).toContainEqual(expect.objectContaining({ user: null, repository: 'private/app', decision: 'deny', code: 'UNAUTHORIZED' }));
    expect(outpost.output()).not.toContain(mirror.password);
  });
});

describe('auth.mode upstream, a primary with token auth', () => {
  const secret = image('upstream-token');
  const open = image('upstream-token-open');
  let issuer: TokenIssuer;
  let registry: DistributionRegistry;
  let outpost: OutpostNode;
  const dave = { username: 'dave', password: 'dave-token-pw-5e1f' };
  const erin = { username: 'erin', password: 'erin-token-pw-0a9d' };

  beforeAll(async () => {
    issuer = await startTokenIssuer({
      users: [
        { ...admin, actions: ['*'] },
        { ...dave, actions: ['pull'], repositories: ['private/*'] },
        { ...erin, actions: ['pull'], repositories: ['public/*'] },
      ],
      anonymousActions: [],
    });
    cleanup.add(() => issuer.stop());
    registry = await startDistribution({ auth: 'token', token: issuer });
    cleanup.add(() => registry.dispose());
    await pushImage(registry.url, 'private/app', 'v1', secret, admin);
    await pushImage(registry.url, 'public/app', 'v1', open, admin);
    const dir = await makeTempDir('access-control-token');
    cleanup.add(() => removeTempDir(dir));
    outpost = await outpostWith({ registry, dir, htpasswd: '' }, 'auth:\n  mode: upstream\n', { ownCredentials: false });
  }, 120_000);

  it("fills with the client's own token", async () => {
    const before = issuer.requestLog().length;
    expect(await pullOciDigests(`${outpost.host}/private/app:v1`, { srcCreds: dave })).toEqual([secret.digest]);
    const tokenRequests = issuer.requestLog().slice(before);
    expect(tokenRequests.length).toBeGreaterThan(0);
    expect(tokenRequests.every((entry) => entry.user === 'dave')).toBe(true);
  });

  it('refuses a user the token server does not grant the repository, and anonymous clients', async () => {
    await pullOciDigests(`${outpost.host}/private/app:v1`, { srcCreds: dave });
    await expectRefused(outpost, 'private/app', secret, erin, 'UNAUTHORIZED', 401);
    await expectRefused(outpost, 'private/app', secret, undefined, 'UNAUTHORIZED', 401);
    await expectRefused(outpost, 'private/app', secret, { username: 'dave', password: 'wrong' }, 'UNAUTHORIZED', 401);
    expect(await pullOciDigests(`${outpost.host}/public/app:v1`, { srcCreds: erin })).toEqual([open.digest]);
    expect(outpost.output()).not.toContain(dave.password);
  });
});
