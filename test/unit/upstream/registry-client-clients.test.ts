/** One primary as the clients of `auth.mode: upstream` reach it: with their own credentials, checked and used. */
import { describe, expect, it } from 'vitest';
import { createRegistryClients, type RegistryClients } from '../../../src/upstream/registry-client.ts';
import { json, sendManifest, testConfig, type TestServer, useTestServers } from './helpers.ts';

const never = new AbortController().signal;
const basic = (user: string, pass: string): string => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
const alice = { username: 'alice', password: 'alice-pw' };
const bob = { username: 'bob', password: 'bob-pw' };

describe('registry clients for auth.mode upstream', () => {
  const { cleanup, server } = useTestServers();
  function clients(url: string, own?: { username: string; password: string }): RegistryClients {
    const c = createRegistryClients(testConfig(url, own === undefined ? {} : { username: own.username, password: own.password }));
    cleanup.push(() => c.upstream.close());
    return c;
  }

  /** A Basic-auth primary: alice may pull team/*, bob may log in but pull nothing; `team/broken` answers 503. */
  async function basicPrimary(): Promise<TestServer> {
    return server((req, res) => {
      const header = req.headers.authorization;
      const user = header === basic('alice', 'alice-pw') ? 'alice' : header === basic('bob', 'bob-pw') ? 'bob' : undefined;
      if (user === undefined) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="primary"', 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return;
      }
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path === '/v2/') return json(res, 200, {});
      if (path.startsWith('/v2/team/broken/')) return json(res, 503, {});
      if (path.startsWith('/v2/team/missing/')) return json(res, 404, { errors: [{ code: 'NAME_UNKNOWN' }] });
      if (user !== 'alice') return json(res, 403, { errors: [{ code: 'DENIED' }] });
      if (path.endsWith('/tags/list')) return json(res, 200, { name: 'team/app', tags: ['v1'] });
      return sendManifest(res);
    });
  }

  it('puts the client credentials to the primary and reports its answer', async () => {
    const primary = await basicPrimary();
    const c = clients(primary.url, { username: 'outpost', password: 'outpost-pw' });
    expect(await c.checkPull(alice, 'team/app', never)).toBe('allow');
    expect(await c.checkPull(bob, 'team/app', never)).toBe('denied');
    expect(await c.checkPull({ username: 'alice', password: 'wrong' }, 'team/app', never)).toBe('unauthorized');
    expect(await c.checkPull(undefined, 'team/app', never)).toBe('unauthorized');
    expect(await c.checkPull(alice, 'team/missing', never)).toBe('not-found');
    await expect(c.checkPull(alice, 'team/broken', never)).rejects.toMatchObject({ code: 'UPSTREAM_SERVER_ERROR' });
    const checks = primary.requests.filter((r) => r.url.includes('/tags/list'));
    expect(checks.every((r) => r.url.endsWith('/tags/list?n=1'))).toBe(true);
    // Outpost's own credentials are never used for a client.
    expect(primary.requests.some((r) => r.headers.authorization === basic('outpost', 'outpost-pw'))).toBe(false);
  });

  it('checks a login on /v2/', async () => {
    const primary = await basicPrimary();
    const c = clients(primary.url);
    expect(await c.checkLogin(bob, never)).toBe('allow');
    expect(await c.checkLogin({ username: 'bob', password: 'nope' }, never)).toBe('unauthorized');
  });

  it("fetches with the client's credentials, and with Outpost's own otherwise", async () => {
    const primary = await basicPrimary();
    const c = clients(primary.url, alice);
    await c.asClient(alice).getManifest('team/app', 'v1', 1 << 20, never);
    await expect(c.asClient(bob).getManifest('team/app', 'v1', 1 << 20, never)).rejects.toMatchObject({ code: 'UPSTREAM_DENIED' });
    await expect(c.asClient(undefined).getManifest('team/app', 'v1', 1 << 20, never)).rejects.toMatchObject({ code: 'UPSTREAM_UNAUTHORIZED' });
    await c.upstream.getManifest('team/app', 'v1', 1 << 20, never);
    expect(primary.requests.filter((r) => r.url.includes('/manifests/')).map((r) => r.headers.authorization)).toEqual([
      undefined,
      basic('alice', 'alice-pw'),
      undefined,
      basic('bob', 'bob-pw'),
      undefined,
      undefined,
      basic('alice', 'alice-pw'),
    ]);
    // A client's upstream does not close the shared connections.
    await c.asClient(alice).close();
    await c.upstream.getManifest('team/app', 'v1', 1 << 20, never);
  });

  it('keeps tokens per client: one client never gets a token fetched with another one\'s credentials', async () => {
    let issued = 0;
    const owners = new Map<string, string | undefined>();
    const auth = await server((req, res) => {
      const token = `tok-${++issued}`;
      owners.set(token, req.headers.authorization);
      json(res, 200, { token, expires_in: 300 });
    });
    const registry = await server((req, res) => {
      const header = req.headers.authorization ?? '';
      if (header.startsWith('Bearer ') && owners.has(header.slice(7))) return sendManifest(res);
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${auth.url}/token",service="test"`, 'content-type': 'application/json' });
      res.end('{}');
    });
    const c = clients(registry.url);
    await c.asClient(alice).getManifest('team/app', 'v1', 1 << 20, never);
    await c.asClient(bob).getManifest('team/app', 'v1', 1 << 20, never);
    await c.asClient(alice).getManifest('team/app', 'v1', 1 << 20, never);
    expect(auth.requests.map((r) => r.headers.authorization)).toEqual([basic('alice', 'alice-pw'), basic('bob', 'bob-pw')]);
    const sent = registry.requests.map((r) => r.headers.authorization).filter((h): h is string => h !== undefined);
    expect(sent.map((h) => owners.get(h.slice(7)))).toEqual([basic('alice', 'alice-pw'), basic('bob', 'bob-pw'), basic('alice', 'alice-pw')]);
  });
});
