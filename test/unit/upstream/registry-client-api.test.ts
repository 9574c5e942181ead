import { describe, expect, it } from 'vitest';
import type { Upstream } from '../../../src/cache/ports.ts';
import { createRegistryClient, MANIFEST_MEDIA_TYPES } from '../../../src/upstream/registry-client.ts';
import { json, MANIFEST, MANIFEST_DIGEST, rejection, sendManifest, testConfig, useTestServers } from './helpers.ts';

const never = new AbortController().signal;
const DIGEST = 'sha256:' + 'cd'.repeat(32);

describe('registry client API', () => {
  const { cleanup, server } = useTestServers();
  function client(...args: Parameters<typeof createRegistryClient>): Upstream {
    const c = createRegistryClient(...args);
    cleanup.push(() => c.close());
    return c;
  }

  it('asks for every manifest type and returns body, media type and digest', async () => {
    const registry = await server((_req, res) => sendManifest(res));
    const upstream = client(testConfig(registry.url), {});
    expect(upstream.host).toBe(new URL(registry.url).host);
    const manifest = await upstream.getManifest('library/nginx', '1.27', 1 << 20, never);
    expect(manifest).toEqual({ body: MANIFEST, mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: MANIFEST_DIGEST });
    const req = registry.requests[0]!;
    expect(req.url).toBe('/v2/library/nginx/manifests/1.27');
    for (const type of MANIFEST_MEDIA_TYPES) expect(req.headers.accept).toContain(type);
  });

  it('answers a manifest HEAD with digest, media type and size', async () => {
    const registry = await server((_req, res) => sendManifest(res));
    const head = await client(testConfig(registry.url), {}).headManifest('library/nginx', 'latest', never);
    expect(head).toEqual({ digest: MANIFEST_DIGEST, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: MANIFEST.length });
    expect(registry.requests[0]!.method).toBe('HEAD');
  });

  it('takes the media type from the body when the primary sends plain JSON', async () => {
    const registry = await server((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(MANIFEST);
    });
    const manifest = await client(testConfig(registry.url), {}).getManifest('a/b', 'latest', 1 << 20, never);
    expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(manifest.digest).toBeUndefined();
  });

  it('refuses a manifest whose Content-Length exceeds maxBytes', async () => {
    const registry = await server((_req, res) => sendManifest(res));
    const err = await rejection(client(testConfig(registry.url), {}).getManifest('a/b', 'latest', MANIFEST.length - 1, never));
    expect(err.code).toBe('UPSTREAM_BAD_RESPONSE');
  });

  it('refuses a chunked manifest that grows past maxBytes while reading', async () => {
    const registry = await server((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }); // no length: chunked
      res.write(Buffer.alloc(600, 0x20));
      res.end(Buffer.alloc(600, 0x20));
    });
    const err = await rejection(client(testConfig(registry.url), {}).getManifest('a/b', 'latest', 1000, never));
    expect(err.code).toBe('UPSTREAM_BAD_RESPONSE');
  });

  it('hands out the blob body as a stream with its size', async () => {
    const registry = await server((_req, res) => {
      res.writeHead(200, { 'content-length': '11' });
      res.end('hello world');
    });
    const upstream = client(testConfig(registry.url), {});
    const blob = await upstream.getBlob('library/nginx', DIGEST, never);
    expect(blob.size).toBe(11);
    const chunks: Buffer[] = [];
    for await (const chunk of blob.body) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('hello world');
    expect(registry.requests[0]!.url).toBe(`/v2/library/nginx/blobs/${DIGEST}`);
    expect(await upstream.headBlob('library/nginx', DIGEST, never)).toEqual({ size: 11 });
  });

  it('follows Link pagination of the tag list', async () => {
    const registry = await server((req, res) => {
      const url = new URL(req.url!, 'http://x');
      if (url.searchParams.get('last') === null) {
        return json(res, 200, { name: 'a/b', tags: ['1', '2'] }, { link: '</v2/a/b/tags/list?n=2&last=2>; rel="next"' });
      }
      json(res, 200, { name: 'a/b', tags: ['3'] });
    });
    expect(await client(testConfig(registry.url), {}).listTags('a/b', never)).toEqual(['1', '2', '3']);
    expect(registry.requests.map((r) => r.url)).toEqual(['/v2/a/b/tags/list', '/v2/a/b/tags/list?n=2&last=2']);
  });

  it('stops following a tag list that never ends', async () => {
    const registry = await server((_req, res) => json(res, 200, { tags: ['x'] }, { link: '</v2/a/b/tags/list?last=x>; rel="next"' }));
    const tags = await client(testConfig(registry.url), {}).listTags('a/b', never);
    expect(tags).toHaveLength(100);
  });

  it('refuses a tag list whose pages add up to more than the total byte limit', async () => {
    const page = { tags: Array.from({ length: 20 }, (_, i) => `tag-${i}`) }; // ~200 bytes a page
    const registry = await server((_req, res) => json(res, 200, page, { link: '</v2/a/b/tags/list?last=x>; rel="next"' }));
    const err = await rejection(client(testConfig(registry.url), { maxTagListBytes: 1000 }).listTags('a/b', never));
    expect(err.code).toBe('UPSTREAM_BAD_RESPONSE');
    expect(err.message).toContain('1000 bytes');
    expect(registry.requests.length).toBeLessThanOrEqual(6);
  });

  describe('tag list Link from a lying primary', () => {
    function logger() {
      const warnings: { obj: Record<string, unknown>; msg: string }[] = [];
      return { warnings, warn: (obj: object, msg: string) => warnings.push({ obj: obj as Record<string, unknown>, msg }), debug: () => {} };
    }
    const linking = (link: string) => server((_req, res) => json(res, 200, { tags: ['1'] }, { link }));

    it('refuses a next page on another origin, and logs that origin', async () => {
      const other = await server((_req, res) => json(res, 200, { tags: ['stolen'] }));
      const registry = await linking(`<${other.url}/v2/a/b/tags/list?last=1>; rel="next"`);
      const log = logger();
      const err = await rejection(client(testConfig(registry.url), { logger: log }).listTags('a/b', never));
      expect(err.code).toBe('UPSTREAM_BAD_RESPONSE');
      expect(other.requests).toHaveLength(0);
      expect(log.warnings).toEqual([{ obj: expect.objectContaining({ origin: other.url }), msg: expect.stringContaining('another origin') }]);
    });

    it('refuses a next page on the same host over another scheme or port', async () => {
      const registry = await linking('<https://127.0.0.1/v2/a/b/tags/list?last=1>; rel="next"');
      const err = await rejection(client(testConfig(registry.url), {}).listTags('a/b', never));
      expect(err.code).toBe('UPSTREAM_BAD_RESPONSE');
      expect(registry.requests).toHaveLength(1);
    });

    it.each([
      ['a scheme other than http(s)', '<file:///etc/passwd>; rel="next"'],
      ['a target that is not a URL', '<http://[::1>; rel="next"'],
      ['a header longer than 8 KiB', `</v2/a/b/tags/list?last=${'x'.repeat(9000)}>; rel="next"`],
    ])('refuses %s rather than ending the list early', async (_what, link) => {
      const registry = await linking(link);
      const err = await rejection(client(testConfig(registry.url), {}).listTags('a/b', never));
      expect(err.code).toBe('UPSTREAM_BAD_RESPONSE');
      expect(err.message).toContain('Link');
      expect(registry.requests).toHaveLength(1);
    });

    it('resolves a relative next page against the primary, not where a redirect led', async () => {
      const elsewhere = await server((_req, res) => json(res, 200, { tags: ['1'] }, { link: '</v2/a/b/tags/list?last=1>; rel="next"' }));
      const registry = await server((req, res) => {
        if (new URL(req.url!, 'http://x').searchParams.get('last') === null) {
          res.writeHead(307, { location: `${elsewhere.url}/v2/a/b/tags/list` });
          return res.end();
        }
        json(res, 200, { tags: ['2'] });
      });
      expect(await client(testConfig(registry.url), {}).listTags('a/b', never)).toEqual(['1', '2']);
      expect(elsewhere.requests).toHaveLength(1);
      expect(registry.requests.map((r) => r.url)).toEqual(['/v2/a/b/tags/list', '/v2/a/b/tags/list?last=1']);
    });

    it('ignores Link entries that are not rel="next"', async () => {
      const registry = await linking('</v2/a/b/tags/list?last=0>; rel="prev", <junk');
      expect(await client(testConfig(registry.url), {}).listTags('a/b', never)).toEqual(['1']);
    });
  });

  it('treats a null tag list as empty and a malformed one as a bad response', async () => {
    let body: unknown = { name: 'a/b', tags: null };
    const registry = await server((_req, res) => json(res, 200, body));
    const upstream = client(testConfig(registry.url), {});
    expect(await upstream.listTags('a/b', never)).toEqual([]);
    body = { tags: [1, 2] };
    expect((await rejection(upstream.listTags('a/b', never))).code).toBe('UPSTREAM_BAD_RESPONSE');
  });

  it('asks for referrers with the artifact type filter', async () => {
    const index = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] };
    const registry = await server((_req, res) => json(res, 200, index, { 'content-type': 'application/vnd.oci.image.index.v1+json' }));
    const upstream = client(testConfig(registry.url), {});
    const referrers = await upstream.getReferrers('a/b', DIGEST, 'application/vnd.dev.sigstore.bundle+json', never);
    expect(JSON.parse(referrers.body.toString())).toEqual(index);
    expect(referrers.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(registry.requests[0]!.url).toBe(`/v2/a/b/referrers/${DIGEST}?artifactType=application%2Fvnd.dev.sigstore.bundle%2Bjson`);
    await upstream.getReferrers('a/b', DIGEST, undefined, never);
    expect(registry.requests[1]!.url).toBe(`/v2/a/b/referrers/${DIGEST}`);
  });

  describe('referrers pages', () => {
    const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
    const entry = (n: number) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${String(n).padStart(64, '0')}`, size: 100 + n });
    const page = (entries: number[], link?: string) => (_req: unknown, res: Parameters<typeof json>[0]) =>
      json(res, 200, { schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries.map(entry) }, { 'content-type': OCI_INDEX, ...(link === undefined ? {} : { link }) });
    const referrersPath = `/v2/a/b/referrers/${DIGEST}`;
    const manifestsOf = (body: Buffer) => (JSON.parse(body.toString()) as { manifests: unknown[] }).manifests;

    it('follows Link next pages and merges their entries into one index', async () => {
      const registry = await server((req, res) => {
        const last = new URL(req.url!, 'http://x').searchParams.get('last');
        if (last === null) return page([1], `<${referrersPath}?last=1>; rel="next"`)(req, res);
        if (last === '1') return page([2, 3], `<${referrersPath}?last=3>; rel="next"`)(req, res);
        page([4])(req, res);
      });
      const referrers = await client(testConfig(registry.url), {}).getReferrers('a/b', DIGEST, undefined, never);
      expect(referrers.mediaType).toBe(OCI_INDEX);
      expect(JSON.parse(referrers.body.toString())).toEqual({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [1, 2, 3, 4].map(entry) });
      expect(registry.requests.map((r) => r.url)).toEqual([referrersPath, `${referrersPath}?last=1`, `${referrersPath}?last=3`]);
    });

    it('refuses a next page on another origin, which is never asked', async () => {
      const other = await server(page([666]));
      const registry = await server(page([1], `<${other.url}${referrersPath}?last=1>; rel="next"`));
      const err = await rejection(client(testConfig(registry.url), {}).getReferrers('a/b', DIGEST, undefined, never));
      expect(err.code).toBe('UPSTREAM_BAD_RESPONSE');
      expect(err.message).toContain('another origin');
      expect(other.requests).toHaveLength(0);
    });

    it('stops following an index that never ends after 20 pages, with a warning', async () => {
      const warnings: string[] = [];
      const registry = await server(page([1], `<${referrersPath}?last=1>; rel="next"`));
      const referrers = await client(testConfig(registry.url), { logger: { warn: (_obj, msg) => warnings.push(msg), debug: () => {} } }).getReferrers('a/b', DIGEST, undefined, never);
      expect(manifestsOf(referrers.body)).toHaveLength(20);
      expect(registry.requests).toHaveLength(20);
      expect(warnings).toEqual(['referrers list truncated: too many pages']);
    });

    it('refuses an index whose pages add up to more than maxListBytes', async () => {
      const registry = await server(page([1, 2], `<${referrersPath}?last=2>; rel="next"`)); // ~400 bytes a page
      const err = await rejection(client(testConfig(registry.url), { maxListBytes: 1000 }).getReferrers('a/b', DIGEST, undefined, never));
      expect(err.code).toBe('UPSTREAM_BAD_RESPONSE');
      expect(err.message).toContain('1000 bytes across pages');
      expect(registry.requests.length).toBeLessThanOrEqual(3);
    });

    it('refuses a later page that is not an image index', async () => {
      const registry = await server((req, res) => {
        if (new URL(req.url!, 'http://x').searchParams.get('last') === null) return page([1], `<${referrersPath}?last=1>; rel="next"`)(req, res);
        json(res, 200, { manifests: 'none' });
      });
      const err = await rejection(client(testConfig(registry.url), {}).getReferrers('a/b', DIGEST, undefined, never));
      expect(err.code).toBe('UPSTREAM_BAD_RESPONSE');
      expect(err.message).toContain('page 2 is not an image index');
    });
  });

  it('maps statuses to upstream error codes', async () => {
    let status = 404;
    const registry = await server((_req, res) => json(res, status, { errors: [] }, status === 429 ? { 'retry-after': '30' } : {}));
    const upstream = client(testConfig(registry.url), {});
    const cases: [number, string][] = [
      [404, 'UPSTREAM_NOT_FOUND'],
      [403, 'UPSTREAM_DENIED'],
      [429, 'UPSTREAM_RATE_LIMITED'],
      [500, 'UPSTREAM_SERVER_ERROR'],
      [418, 'UPSTREAM_BAD_RESPONSE'],
    ];
    for (const [s, code] of cases) {
      status = s;
      const err = await rejection(upstream.getManifest('a/b', 'latest', 1 << 20, never));
      expect([err.name, err.code, err.status]).toEqual(['UpstreamError', code, s]);
      if (s === 429) expect(err.retryAfter).toBe(30);
    }
  });

  it('reports Docker Hub ratelimit-remaining and ratelimit-limit', async () => {
    const seen: Array<[number | undefined, number | undefined]> = [];
    const registry = await server((_req, res) => {
      res.setHeader('ratelimit-limit', '100;w=21600');
      res.setHeader('ratelimit-remaining', '76;w=21600');
      sendManifest(res);
    });
    await client(testConfig(registry.url), { onRateLimit: (n, limit) => seen.push([n, limit]) }).headManifest('a/b', 'latest', never);
    expect(seen).toEqual([[76, 100]]);
  });

  it('keeps a path prefix of the configured URL', async () => {
    const registry = await server((_req, res) => sendManifest(res));
    await client(testConfig(`${registry.url}/mirror/`), {}).headManifest('a/b', 'latest', never);
    expect(registry.requests[0]!.url).toBe('/mirror/v2/a/b/manifests/latest');
  });
});
