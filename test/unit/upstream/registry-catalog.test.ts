/** The primary's `_catalog` and tag lists, paged through Link on the registry client, as prefetch jobs read them. */
import { describe, expect, it } from 'vitest';
import { digestOf } from '../../../src/registry/digest.ts';
import { createRegistryClients } from '../../../src/upstream/registry-client.ts';
import { registryCatalogFor, UpstreamRegistryCatalog } from '../../../src/upstream/registry-catalog.ts';
import { json, testConfig, useTestServers } from './helpers.ts';

const never = new AbortController().signal;

describe('registry catalog', () => {
  const { cleanup, server } = useTestServers();
  function catalogOf(url: string, limits = {}): UpstreamRegistryCatalog {
    const clients = createRegistryClients(testConfig(url), {});
    cleanup.push(() => clients.upstream.close());
    return new UpstreamRegistryCatalog(new Map([['primary.test', { upstream: clients.upstream, listing: clients.listing }]]), { pageSize: 2, ...limits });
  }
  async function all(items: AsyncIterable<string>): Promise<string[]> {
    const out: string[] = [];
    for await (const item of items) out.push(item);
    return out;
  }

  it('follows the Link pages of _catalog and of a tag list', async () => {
    const registry = await server((req, res) => {
      const url = new URL(req.url!, 'http://x');
      if (url.pathname === '/v2/_catalog') {
        if (url.searchParams.get('last') === null) return json(res, 200, { repositories: ['a/one', 'a/two'] }, { link: '</v2/_catalog?n=2&last=a%2Ftwo>; rel="next"' });
        return json(res, 200, { repositories: ['b/three'] });
      }
      if (url.searchParams.get('last') === null) return json(res, 200, { name: 'a/one', tags: ['1', '2'] }, { link: '</v2/a/one/tags/list?n=2&last=2>; rel="next"' });
      json(res, 200, { name: 'a/one', tags: ['3'] });
    });
    const catalog = catalogOf(registry.url);
    expect(await all(catalog.listRepositories('primary.test', never))).toEqual(['a/one', 'a/two', 'b/three']);
    expect(await all(catalog.listTags('primary.test', 'a/one', never))).toEqual(['1', '2', '3']);
    expect(registry.requests.map((r) => r.url)).toEqual(['/v2/_catalog?n=2', '/v2/_catalog?n=2&last=a%2Ftwo', '/v2/a/one/tags/list?n=2', '/v2/a/one/tags/list?n=2&last=2']);
  });

  it('builds a catalog over configured primaries, by host', async () => {
    const registry = await server((_req, res) => json(res, 200, { repositories: ['only/one'] }));
    const { catalog, close } = registryCatalogFor([{ ...testConfig(registry.url), host: 'mirror.test', aliases: [], dockerHub: false }]);
    cleanup.push(close);
    expect(await all(catalog.listRepositories('mirror.test', never))).toEqual(['only/one']);
    await expect(all(catalog.listRepositories('other.test', never))).rejects.toThrow(/no primary other.test/);
  });

  it('asks the token server for the catalog scope', async () => {
    const scopes: (string | null)[] = [];
    const registry = await server((req, res) => {
      const url = new URL(req.url!, 'http://x');
      if (url.pathname === '/token') {
        scopes.push(url.searchParams.get('scope'));
        return json(res, 200, { token: 'tok', expires_in: 300 });
      }
      if (req.headers.authorization !== 'Bearer tok') {
        const host = req.headers.host!;
        return json(res, 401, { errors: [{ code: 'UNAUTHORIZED' }] }, { 'www-authenticate': `Bearer realm="http://${host}/token",service="t",scope="registry:catalog:*"` });
      }
      json(res, 200, { repositories: ['a/one'] });
    });
    expect(await all(catalogOf(registry.url).listRepositories('primary.test', never))).toEqual(['a/one']);
    expect(scopes).toEqual(['registry:catalog:*']);
  });

  it('rejects with the status of a primary that does not open its catalog', async () => {
    const registry = await server((_req, res) => json(res, 404, { errors: [{ code: 'NOT_FOUND' }] }));
    await expect(all(catalogOf(registry.url).listRepositories('primary.test', never))).rejects.toMatchObject({ code: 'UPSTREAM_NOT_FOUND', status: 404 });
  });

  it('waits for its pace before every request: each page, the manifest and the config', async () => {
    const config = Buffer.from(JSON.stringify({ created: '2026-11-01T00:00:00Z' }));
    const manifest = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length }, layers: [] }),
    );
    const registry = await server((req, res) => {
      const url = new URL(req.url!, 'http://x');
      if (url.pathname === '/v2/_catalog') {
        if (url.searchParams.get('last') === null) return json(res, 200, { repositories: ['a/one'] }, { link: '</v2/_catalog?n=2&last=a%2Fone>; rel="next"' });
        return json(res, 200, { repositories: ['b/two'] });
      }
      const body = url.pathname.includes('/manifests/') ? manifest : config;
      res.writeHead(200, { 'content-type': url.pathname.includes('/manifests/') ? 'application/vnd.oci.image.manifest.v1+json' : 'application/octet-stream', 'content-length': String(body.length) });
      res.end(body);
    });
    const seenAtPace: number[] = [];
    const pace = async () => void seenAtPace.push(registry.requests.length);
    const catalog = catalogOf(registry.url);
    expect(await all(catalog.listRepositories('primary.test', never, pace))).toEqual(['a/one', 'b/two']);
    expect(await catalog.imageCreated({ upstream: 'primary.test', repository: 'a/one', reference: 'v1' }, [], never, pace)).toEqual(new Date('2026-11-01T00:00:00Z'));
    // Called once before each of the 4 requests, never after one without the next.
    expect(seenAtPace).toEqual([0, 1, 2, 3]);
    expect(registry.requests).toHaveLength(4);
  });

  it('refuses a next page on another origin, a malformed list, and a list past its bound', async () => {
    const elsewhere = await server((_req, res) => json(res, 200, { repositories: ['a'] }, { link: '<http://169.254.169.254/v2/_catalog>; rel="next"' }));
    await expect(all(catalogOf(elsewhere.url).listRepositories('primary.test', never))).rejects.toMatchObject({ code: 'UPSTREAM_BAD_RESPONSE' });
    const malformed = await server((_req, res) => json(res, 200, { repositories: [1, 2] }));
    await expect(all(catalogOf(malformed.url).listRepositories('primary.test', never))).rejects.toMatchObject({ code: 'UPSTREAM_BAD_RESPONSE' });
    const endless = await server((req, res) => json(res, 200, { repositories: ['x', 'y'] }, { link: `</v2/_catalog?n=2&last=${Math.random()}>; rel="next"` }));
    await expect(all(catalogOf(endless.url, { maxItems: 7 }).listRepositories('primary.test', never))).rejects.toThrow(/more than 7/);
    await expect(all(catalogOf(endless.url, { maxPages: 3, maxItems: 1000 }).listRepositories('primary.test', never))).rejects.toThrow(/more than 3 pages/);
  });
});
