import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import type { Upstream } from '../../../src/cache/ports.ts';
import { createRegistryClient } from '../../../src/upstream/registry-client.ts';
import { FakeClock, json, rejection, sendManifest, testConfig, useTestServers } from './helpers.ts';

const never = new AbortController().signal;
const basic = (user: string, pass: string): string => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

describe('registry client authentication', () => {
  const { cleanup, server } = useTestServers();
  function client(...args: Parameters<typeof createRegistryClient>): Upstream {
    const c = createRegistryClient(...args);
    cleanup.push(() => c.close());
    return c;
  }

  /** A token server on its own origin issuing `tok-N`, and a registry that wants one. */
  async function bearerSetup(tokenAnswer?: (req: IncomingMessage, res: ServerResponse) => boolean) {
    let issued = 0;
    const valid = new Set<string>();
    const auth = await server((req, res) => {
      if (tokenAnswer?.(req, res)) return;
      const token = `tok-${++issued}`;
      valid.add(token);
      json(res, 200, { token, expires_in: 300, issued_at: new Date().toISOString() });
    });
    const registry = await server((req, res) => {
      const header = req.headers.authorization ?? '';
      if (header.startsWith('Bearer ') && valid.has(header.slice(7))) return sendManifest(res);
      res.writeHead(401, {
        'www-authenticate': `Bearer realm="${auth.url}/token",service="test-registry",scope="repository:library/nginx:pull"`,
        'content-type': 'application/json',
      });
      res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
    });
    return { auth, registry, valid };
  }

  it('answers a bearer challenge with a token from the realm and retries with it', async () => {
    const { auth, registry } = await bearerSetup();
    const upstream = client(testConfig(registry.url), {});
    const manifest = await upstream.getManifest('library/nginx', 'latest', 1 << 20, never);
    expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');

    expect(auth.requests).toHaveLength(1);
    const tokenUrl = new URL(auth.requests[0]!.url, auth.url);
    expect(tokenUrl.pathname).toBe('/token');
    expect(tokenUrl.searchParams.get('service')).toBe('test-registry');
    expect(tokenUrl.searchParams.get('scope')).toBe('repository:library/nginx:pull');
    expect(auth.requests[0]!.headers.authorization).toBeUndefined(); // anonymous
    expect(registry.requests.map((r) => r.headers.authorization)).toEqual([undefined, 'Bearer tok-1']);
  });

  it('reuses the token for the same scope until it expires, then fetches a new one', async () => {
    const clock = new FakeClock();
    const { auth, registry } = await bearerSetup();
    const upstream = client(testConfig(registry.url), { clock });
    await upstream.getManifest('library/nginx', 'latest', 1 << 20, never);
    clock.advance(200_000);
    await upstream.getManifest('library/nginx', 'latest', 1 << 20, never);
    await upstream.headManifest('library/nginx', 'latest', never);
    expect(auth.requests).toHaveLength(1);
    expect(registry.requests.map((r) => r.headers.authorization)).toEqual([undefined, 'Bearer tok-1', 'Bearer tok-1', 'Bearer tok-1']);

    clock.advance(100_000); // 300s after the fetch: expired
    await upstream.getManifest('library/nginx', 'latest', 1 << 20, never);
    expect(auth.requests).toHaveLength(2);
    expect(registry.requests.slice(4).map((r) => r.headers.authorization)).toEqual([undefined, 'Bearer tok-2']);
  });

  it('fetches a fresh token when the primary rejects the cached one', async () => {
    const { auth, registry, valid } = await bearerSetup();
    const upstream = client(testConfig(registry.url), {});
    await upstream.getManifest('library/nginx', 'latest', 1 << 20, never);
    valid.clear(); // revoked upstream
    await upstream.getManifest('library/nginx', 'latest', 1 << 20, never);
    expect(auth.requests).toHaveLength(2);
    expect(registry.requests.slice(2).map((r) => r.headers.authorization)).toEqual(['Bearer tok-1', 'Bearer tok-2']);
  });

  it('shares one token fetch between concurrent requests', async () => {
    const { auth, registry } = await bearerSetup();
    const upstream = client(testConfig(registry.url), {});
    await Promise.all(Array.from({ length: 5 }, () => upstream.getManifest('library/nginx', 'latest', 1 << 20, never)));
    expect(auth.requests).toHaveLength(1);
  });

  it('sends configured credentials to the token endpoint as Basic', async () => {
    const { auth, registry } = await bearerSetup();
    const upstream = client(testConfig(registry.url, { username: 'alice', password: 's3cr:et' }), {});
    await upstream.getManifest('library/nginx', 'latest', 1 << 20, never);
    expect(auth.requests[0]!.headers.authorization).toBe(basic('alice', 's3cr:et'));
    expect(new URL(auth.requests[0]!.url, auth.url).searchParams.get('account')).toBe('alice');
    // The Basic credentials never go to the registry itself.
    expect(registry.requests.map((r) => r.headers.authorization)).toEqual([undefined, 'Bearer tok-1']);
  });

  it('accepts access_token from an OAuth-style token server', async () => {
    const { registry, valid } = await bearerSetup((_req, res) => {
      valid.add('oauth');
      json(res, 200, { access_token: 'oauth' });
      return true;
    });
    const upstream = client(testConfig(registry.url), {});
    await upstream.getManifest('library/nginx', 'latest', 1 << 20, never);
    expect(registry.requests.at(-1)!.headers.authorization).toBe('Bearer oauth');
  });

  it('fails with UPSTREAM_UNAUTHORIZED when the token server refuses the credentials', async () => {
    const { registry } = await bearerSetup((_req, res) => {
      json(res, 401, { details: 'incorrect username or password' });
      return true;
    });
    const upstream = client(testConfig(registry.url, { username: 'alice', password: 'wrong' }), {});
    const err = await rejection(upstream.getManifest('library/nginx', 'latest', 1 << 20, never));
    expect(err.code).toBe('UPSTREAM_UNAUTHORIZED');
  });

  it('fails with UPSTREAM_UNAUTHORIZED when the primary still answers 401 with a fresh token', async () => {
    const auth = await server((_req, res) => json(res, 200, { token: 'useless' }));
    const registry = await server((_req, res) => {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${auth.url}/token",service="s"` });
      res.end();
    });
    const upstream = client(testConfig(registry.url), {});
    const err = await rejection(upstream.getBlob('private/app', 'sha256:abc', never));
    expect(err.code).toBe('UPSTREAM_UNAUTHORIZED');
    expect(err.status).toBe(401);
    expect(registry.requests).toHaveLength(2); // one retry with the token, no more
  });

  describe('token realm chosen by a lying primary', () => {
    function logger() {
      const warnings: { obj: Record<string, unknown>; msg: string }[] = [];
      return { warnings, warn: (obj: object, msg: string) => warnings.push({ obj: obj as Record<string, unknown>, msg }), debug: () => {} };
    }
    /** A registry whose challenge names `realm`; it accepts any Bearer token. */
    const challenging = (realm: () => string) =>
      server((req, res) => {
        if (req.headers.authorization?.startsWith('Bearer ')) return sendManifest(res);
        res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm()}",service="s"` });
        res.end();
      });

    it('never sends the configured credentials to a plain-http realm on another host', async () => {
      const evil = await server((_req, res) => json(res, 200, { token: 'harvested' }));
      // Same loopback server, another host name: another origin, as far as the URL goes.
      const evilRealm = `http://localhost:${evil.port}/token`;
      const registry = await challenging(() => evilRealm);
      const log = logger();
      const upstream = client(testConfig(registry.url, { username: 'alice', password: 's3cret' }), { logger: log });
      const err = await rejection(upstream.getManifest('library/nginx', 'latest', 1 << 20, never));
      expect(err.code).toBe('UPSTREAM_UNAUTHORIZED');
      expect(err.message).toContain(`http://localhost:${evil.port}`);
      expect(evil.requests).toHaveLength(0);
      expect(registry.requests).toHaveLength(1);
      const warning = log.warnings.find((w) => w.msg.includes('token realm'));
      expect(warning?.obj).toMatchObject({ realmOrigin: `http://localhost:${evil.port}` });
      expect(JSON.stringify(log.warnings)).not.toContain('s3cret');
      expect(JSON.stringify(log.warnings)).not.toContain('/token');
    });

    it('still fetches an anonymous token from a plain-http realm on another host', async () => {
      const auth = await server((_req, res) => json(res, 200, { token: 'anon' }));
      const registry = await challenging(() => `http://localhost:${auth.port}/token`);
      await client(testConfig(registry.url), {}).getManifest('library/nginx', 'latest', 1 << 20, never);
      expect(auth.requests).toHaveLength(1);
      expect(auth.requests[0]!.headers.authorization).toBeUndefined();
    });

    it('refuses a realm that is not an http(s) URL', async () => {
      const registry = await challenging(() => 'file:///etc/passwd');
      const err = await rejection(client(testConfig(registry.url, { username: 'a', password: 'b' }), {}).getManifest('a/b', 'latest', 1 << 20, never));
      expect(err.code).toBe('UPSTREAM_BAD_RESPONSE');
      expect(err.message).toContain('realm');
    });
  });

  it.each([
    ['longer than 8 KiB', 'x'.repeat(10_000)],
    ['with a line break', 'abc\r\nX-Injected: 1'],
  ])('refuses a token %s instead of sending it to the primary', async (_what, token) => {
    const { registry } = await bearerSetup((_req, res) => {
      json(res, 200, { token });
      return true;
    });
    const err = await rejection(client(testConfig(registry.url), {}).getManifest('library/nginx', 'latest', 1 << 20, never));
    expect(err.code).toBe('UPSTREAM_BAD_RESPONSE');
    expect(registry.requests).toHaveLength(1);
  });

  it('refuses a WWW-Authenticate header larger than 8 KiB without asking any realm', async () => {
    const auth = await server((_req, res) => json(res, 200, { token: 't' }));
    const registry = await server((req, res) => {
      if (req.headers.authorization?.startsWith('Bearer ')) return sendManifest(res);
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${auth.url}/token",service="s",pad="${'x'.repeat(9000)}"` });
      res.end();
    });
    const err = await rejection(client(testConfig(registry.url), {}).getManifest('a/b', 'latest', 1 << 20, never));
    expect(err.code).toBe('UPSTREAM_BAD_RESPONSE');
    expect(err.message).toContain('WWW-Authenticate');
    expect(auth.requests).toHaveLength(0);
  });

  describe('Basic challenge', () => {
    const registryWantingBasic = () =>
      server((req, res) => {
        if (req.headers.authorization === basic('bob', 'pw')) return sendManifest(res);
        res.writeHead(401, { 'www-authenticate': 'Basic realm="Registry Realm"' });
        res.end();
      });

    it('retries with the configured credentials, then sends them up front', async () => {
      const registry = await registryWantingBasic();
      const upstream = client(testConfig(registry.url, { username: 'bob', password: 'pw' }), {});
      await upstream.getManifest('team/app', '1.0', 1 << 20, never);
      await upstream.getManifest('team/app', '1.0', 1 << 20, never);
      expect(registry.requests.map((r) => r.headers.authorization)).toEqual([undefined, basic('bob', 'pw'), basic('bob', 'pw')]);
    });

    it('fails with UPSTREAM_UNAUTHORIZED without credentials', async () => {
      const registry = await registryWantingBasic();
      const upstream = client(testConfig(registry.url), {});
      const err = await rejection(upstream.getManifest('team/app', '1.0', 1 << 20, never));
      expect(err.code).toBe('UPSTREAM_UNAUTHORIZED');
      expect(registry.requests).toHaveLength(1);
    });

    it('fails with UPSTREAM_UNAUTHORIZED when the credentials are wrong', async () => {
      const registry = await registryWantingBasic();
      const upstream = client(testConfig(registry.url, { username: 'bob', password: 'nope' }), {});
      const err = await rejection(upstream.getManifest('team/app', '1.0', 1 << 20, never));
      expect(err.code).toBe('UPSTREAM_UNAUTHORIZED');
      expect(registry.requests).toHaveLength(2);
    });
  });
});
