/** A job's patterns expanded against a fake primary: the pattern rule, paging, a refused _catalog, updatedWithinDays. */
import { describe, expect, it } from 'vitest';
import { UpstreamError } from '../../../src/cache/ports.ts';
import type { PrefetchJobConfig } from '../../../src/config/types.ts';
import { CatalogJobImages } from '../../../src/prefetch/job-images.ts';
import { formatImageRef } from '../../../src/prefetch/ports.ts';
import { digestOf } from '../../../src/registry/digest.ts';
import { mediaTypes } from '../../../src/registry/media-types.ts';
import type { RegistryListing } from '../../../src/upstream/registry-client.ts';
import { UpstreamRegistryCatalog } from '../../../src/upstream/registry-catalog.ts';
import { FakeUpstream } from '../../support/fake-upstream.ts';

const host = 'registry.test';
const silent = { debug() {}, info() {}, warn() {}, error() {} };
const now = Date.parse('2026-06-30T00:00:00Z');

/** A primary's listings, paged by `pageSize` whatever was asked, counting what it is asked. */
class FakeListing implements RegistryListing {
  calls: string[] = [];
  refuse: UpstreamError | undefined;

  constructor(
    readonly repos: Map<string, string[]>,
    private readonly pageSize = 2,
  ) {}

  async page(kind: 'repositories' | 'tags', repo: string, next: URL | undefined): Promise<{ items: string[]; next: URL | undefined }> {
    this.calls.push(kind === 'repositories' ? '_catalog' : `tags ${repo}`);
    if (kind === 'repositories' && this.refuse) throw this.refuse;
    const all = kind === 'repositories' ? [...this.repos.keys()] : this.repos.get(repo);
    if (all === undefined) throw new UpstreamError('UPSTREAM_NOT_FOUND', 'not found', { status: 404 });
    const from = next === undefined ? 0 : Number(next.searchParams.get('from'));
    const items = all.slice(from, from + this.pageSize);
    const more = from + this.pageSize < all.length;
    return { items, next: more ? new URL(`http://${host}/v2/page?from=${from + this.pageSize}`) : undefined };
  }
}

function job(images: string[], extra: Partial<PrefetchJobConfig> = {}): PrefetchJobConfig {
  return {
    name: 'nightly',
    schedule: '0 3 * * *',
    timezone: 'UTC',
    upstream: host,
    images,
    updatedWithinDays: undefined,
    platforms: [],
    replicas: 'all',
    runOnStart: false,
    concurrency: 2,
    requestsPerSecond: 10,
    ...extra,
  };
}

const issueRepos = (): Map<string, string[]> =>
  new Map<string, string[]>([
    ['bars/app', ['v1', 'v1-docker', 'latest-ish']],
    ...Array.from({ length: 8 }, (_, i): [string, string[]] => [`bars/small-${i}`, ['v1']]),
    ['deep/nested/repo', ['v1', 'v2']],
  ]);

function source(listing: FakeListing, upstream = new FakeUpstream(), options: { maxItems?: number } = {}) {
  const catalog = new UpstreamRegistryCatalog(new Map([[host, { upstream, listing }]]), { pageSize: 2, ...options });
  return new CatalogJobImages({ catalog, clock: { now: () => now }, logger: silent });
}

const names = (refs: { upstream: string; repository: string; reference: string }[]) => refs.map((r) => formatImageRef(r).slice(host.length + 1));

describe('job images: the pattern rule', () => {
  const cases: { what: string; images: string[]; expected: string[]; catalog: boolean; tagLists: string[] }[] = [
    {
      what: "the issue's example",
      images: ['bars/app:v*', 'bars/small-*:*', '-*:v1-docker', '-bars/small-7:*'],
      expected: ['bars/app:v1', ...Array.from({ length: 7 }, (_, i) => `bars/small-${i}:v1`)],
      catalog: true,
      tagLists: ['bars/app', ...Array.from({ length: 8 }, (_, i) => `bars/small-${i}`)],
    },
    { what: 'exclusions only', images: ['-*:*', '-bars/app'], expected: [], catalog: false, tagLists: [] },
    {
      what: 'an include after an exclusion wins for what it names',
      images: ['bars/*', '-bars/small-*', 'bars/small-3:v1'],
      expected: ['bars/app:latest-ish', 'bars/app:v1', 'bars/app:v1-docker', 'bars/small-3:v1'],
      catalog: true,
      tagLists: ['bars/app', ...Array.from({ length: 8 }, (_, i) => `bars/small-${i}`)],
    },
    {
      what: 'an exclusion after an include wins',
      images: ['bars/app', '-bars/app:latest-*'],
      expected: ['bars/app:v1', 'bars/app:v1-docker'],
      catalog: false,
      tagLists: ['bars/app'],
    },
    {
      what: '"*" crossing "/"',
      images: ['*:v2', 'deep/*:v1'],
      expected: ['deep/nested/repo:v1', 'deep/nested/repo:v2'],
      catalog: true,
      tagLists: [...issueRepos().keys()],
    },
    { what: 'no ":" (every tag), without the catalog', images: ['deep/nested/repo'], expected: ['deep/nested/repo:v1', 'deep/nested/repo:v2'], catalog: false, tagLists: ['deep/nested/repo'] },
    { what: 'explicit names: neither catalog nor tag list', images: ['bars/app:v1', 'bars/small-0:v1', 'bars/app:v1'], expected: ['bars/app:v1', 'bars/small-0:v1'], catalog: false, tagLists: [] },
    {
      what: 'literal tags on repositories from the catalog only where the tag exists',
      images: ['bars/*:v1', '-bars/small-1*'],
      expected: ['bars/app:v1', ...Array.from({ length: 8 }, (_, i) => `bars/small-${i}:v1`).filter((n) => !n.startsWith('bars/small-1'))],
      catalog: true,
      tagLists: ['bars/app', ...Array.from({ length: 8 }, (_, i) => `bars/small-${i}`)],
    },
  ];
  for (const c of cases) {
    it(`selects ${c.what}`, async () => {
      const listing = new FakeListing(issueRepos());
      const images = await source(listing).expand(job(c.images), AbortSignal.timeout(5_000));
      expect(names(images)).toEqual(c.expected);
      expect(listing.calls.includes('_catalog')).toBe(c.catalog);
      expect([...new Set(listing.calls.filter((call) => call.startsWith('tags ')).map((call) => call.slice(5)))].sort()).toEqual([...c.tagLists].sort());
      for (const image of images) expect(image.upstream).toBe(host);
    });
  }

  it('follows every page of the catalog and of tag lists', async () => {
    const repos = new Map<string, string[]>(Array.from({ length: 9 }, (_, i): [string, string[]] => [`r/${i}`, Array.from({ length: 5 }, (_, t) => `t${t}`)]));
    const listing = new FakeListing(repos);
    const images = await source(listing).expand(job(['r/*']), AbortSignal.timeout(5_000));
    expect(images).toHaveLength(45);
    expect(listing.calls.filter((c) => c === '_catalog')).toHaveLength(5);
    expect(listing.calls.filter((c) => c === 'tags r/0')).toHaveLength(3);
  });

  it('fails a listing longer than its bound instead of cutting it', async () => {
    const listing = new FakeListing(issueRepos());
    await expect(source(listing, undefined, { maxItems: 5 }).expand(job(['*']), AbortSignal.timeout(5_000))).rejects.toMatchObject({
      code: 'PREFETCH_EXPANSION_FAILED',
      message: expect.stringContaining('more than 5'),
    });
  });

  for (const status of [401, 403, 404, 405]) {
    it(`says to name repositories explicitly when _catalog answers ${status}`, async () => {
      const listing = new FakeListing(issueRepos());
      listing.refuse = new UpstreamError(status === 401 ? 'UPSTREAM_UNAUTHORIZED' : 'UPSTREAM_DENIED', 'no', { status });
      await expect(source(listing).expand(job(['bars/*:v1']), AbortSignal.timeout(5_000))).rejects.toMatchObject({
        code: 'PREFETCH_EXPANSION_FAILED',
        message: expect.stringContaining('name the repositories explicitly'),
      });
      expect(names(await source(listing).expand(job(['bars/app:v1']), AbortSignal.timeout(5_000)))).toEqual(['bars/app:v1']);
    });
  }

  it('fails on a primary error that is not a refusal, naming it', async () => {
    const listing = new FakeListing(issueRepos());
    listing.refuse = new UpstreamError('UPSTREAM_SERVER_ERROR', 'boom', { status: 503 });
    await expect(source(listing).expand(job(['bars/*']), AbortSignal.timeout(5_000))).rejects.toMatchObject({ message: expect.stringContaining('UPSTREAM_SERVER_ERROR') });
  });
});

describe('job images: updatedWithinDays', () => {
  /** Puts an image (an index over one linux/amd64 image) with this config `created` at repo:tag. */
  function put(upstream: FakeUpstream, repo: string, tag: string, created: string | undefined): void {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', ...(created === undefined ? {} : { created }) }));
    upstream.blobs.set(digestOf(config), config);
    const image = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length }, layers: [] }));
    upstream.manifests.set(`${repo}:${digestOf(image)}`, { body: image, digest: digestOf(image), mediaType: mediaTypes.ociManifest });
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: mediaTypes.ociIndex,
        manifests: [{ mediaType: mediaTypes.ociManifest, digest: digestOf(image), size: image.length, platform: { os: 'linux', architecture: 'amd64' } }],
      }),
    );
    upstream.manifests.set(`${repo}:${tag}`, { body: index, digest: digestOf(index), mediaType: mediaTypes.ociIndex });
  }

  it('keeps only images created within the days, leaving out those without created', async () => {
    const upstream = new FakeUpstream();
    put(upstream, 'team/app', 'fresh', '2026-06-25T10:00:00Z');
    put(upstream, 'team/app', 'old', '2026-01-01T00:00:00Z');
    put(upstream, 'team/app', 'undated', undefined);
    put(upstream, 'team/app', 'epoch', '1970-01-01T00:00:00Z');
    const listing = new FakeListing(new Map([['team/app', ['fresh', 'old', 'undated', 'epoch', 'gone']]]));
    const images = await source(listing, upstream).expand(job(['team/app'], { updatedWithinDays: 30 }), AbortSignal.timeout(5_000));
    expect(names(images)).toEqual(['team/app:fresh']);
  });

  it('waits for the pace before every request it sends: catalog and tag-list pages, manifests, configs', async () => {
    const upstream = new FakeUpstream();
    put(upstream, 'team/app', 'fresh', '2026-06-25T10:00:00Z');
    const listing = new FakeListing(new Map([['team/app', ['fresh', 'a', 'b']]]));
    let paces = 0;
    const images = await source(listing, upstream).expand(job(['team/*:fresh'], { updatedWithinDays: 30 }), AbortSignal.timeout(5_000), async () => void paces++);
    expect(names(images)).toEqual(['team/app:fresh']);
    // _catalog (1 page), tags of team/app (2 pages), then the index, its child manifest and the config.
    expect(listing.calls).toEqual(['_catalog', 'tags team/app', 'tags team/app']);
    expect(upstream.calls).toHaveLength(3);
    expect(paces).toBe(6);
  });

  it('finds no child on other platforms, so the image counts as old', async () => {
    const upstream = new FakeUpstream();
    put(upstream, 'team/app', 'fresh', '2026-06-25T10:00:00Z');
    const listing = new FakeListing(new Map([['team/app', ['fresh']]]));
    expect(await source(listing, upstream).expand(job(['team/app:fresh'], { updatedWithinDays: 30, platforms: ['linux/arm64'] }), AbortSignal.timeout(5_000))).toEqual([]);
    expect(names(await source(listing, upstream).expand(job(['team/app:fresh'], { updatedWithinDays: 30, platforms: ['linux/amd64'] }), AbortSignal.timeout(5_000)))).toEqual(['team/app:fresh']);
  });

  it('refuses a config that does not match its digest', async () => {
    const upstream = new FakeUpstream();
    put(upstream, 'team/app', 'fresh', '2026-06-25T10:00:00Z');
    for (const [digest] of upstream.blobs) upstream.blobs.set(digest, Buffer.from('{"created":"2026-06-29T00:00:00Z"}'.padEnd(60, ' ')).subarray(0, upstream.blobs.get(digest)!.length));
    const listing = new FakeListing(new Map([['team/app', ['fresh']]]));
    await expect(source(listing, upstream).expand(job(['team/app:fresh'], { updatedWithinDays: 30 }), AbortSignal.timeout(5_000))).rejects.toMatchObject({
      message: expect.stringContaining('does not match its digest'),
    });
  });
});
