import { parseDigest } from '../../../src/registry/digest.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManifestService } from '../../../src/cache/manifest-service.ts';
import { RepositoryLinks } from '../../../src/cache/repository-links.ts';
import { noopObserver, UpstreamError, type CacheObserver } from '../../../src/cache/ports.ts';
import { digestOf } from '../../../src/registry/digest.ts';
import { mediaTypes } from '../../../src/registry/media-types.ts';
import { DiskBlobStore } from '../../../src/storage/disk-blob-store.ts';
import { DiskMetadataStore } from '../../../src/storage/disk-metadata-store.ts';
import { cacheLayout } from '../../../src/storage/layout.ts';
import { FakeUpstream } from '../../support/fake-upstream.ts';

const silent = { debug() {}, info() {}, warn() {}, error() {} };

function manifest(seed: string): { body: Buffer; digest: string; mediaType: string } {
  const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(Buffer.from(seed)), size: seed.length };
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config, layers: [] }));
  return { body, digest: digestOf(body), mediaType: mediaTypes.ociManifest };
}

describe('ManifestService', () => {
  let dir: string;
  let upstream: FakeUpstream;
  let now: number;
  let stale: string[];
  let make: (revalidateTimeoutMs?: number) => ManifestService;
  const target = () => ({ upstream, upstreamKey: 'fake.example', name: 'library/app' });
  const tag = { kind: 'tag' as const, tag: 'latest' };
  const signal = () => new AbortController().signal;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'outpost-manifest-'));
    const layout = cacheLayout(dir);
    const blobs = new DiskBlobStore(layout);
    await blobs.init();
    const metadata = new DiskMetadataStore(layout);
    upstream = new FakeUpstream();
    now = 1_000_000;
    stale = [];
    const observer: CacheObserver = { ...noopObserver, staleServed: (_kind, reason) => stale.push(reason) };
    make = (revalidateTimeoutMs = 1_000) =>
      new ManifestService({
        links: new RepositoryLinks({ metadata, logger: silent }),
        blobs,
        metadata,
        clock: { now: () => now },
        observer,
        logger: silent,
        tagTtlMs: 60_000,
        revalidateTimeoutMs,
        maxManifestBytes: 4 * 1024 * 1024,
      });
    upstream.manifests.set('library/app:latest', manifest('one'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('trusts a tag answer for the TTL without asking the primary', async () => {
    const service = make();
    const first = await service.get(target(), tag, signal());
    expect(first.result).toBe('miss');
    now += 59_000;
    const second = await service.get(target(), tag, signal());
    expect(second.result).toBe('hit');
    expect(second.digest).toBe(first.digest);
    expect(upstream.calls).toEqual(['GET manifest library/app:latest']);
  });

  it('revalidates with a HEAD after the TTL and follows a moved tag', async () => {
    const service = make();
    await service.get(target(), tag, signal());
    now += 61_000;
    expect((await service.get(target(), tag, signal())).result).toBe('revalidated');
    expect(upstream.count('HEAD manifest')).toBe(1);
    expect(upstream.count('GET manifest')).toBe(1);
    const moved = manifest('two');
    upstream.manifests.set('library/app:latest', moved);
    now += 61_000;
    const answer = await service.get(target(), tag, signal());
    expect(answer.digest).toBe(moved.digest);
    expect(upstream.count('GET manifest')).toBe(2);
  });

  it('shares tag answers between processes through the disk record', async () => {
    await make().get(target(), tag, signal());
    const other = make();
    expect((await other.get(target(), tag, signal())).result).toBe('hit');
    expect(upstream.calls).toHaveLength(1);
  });

  it.each([
    ['refuses connections', new UpstreamError('UPSTREAM_UNREACHABLE', 'refused')],
    ['times out', new UpstreamError('UPSTREAM_TIMEOUT', 'timeout')],
    ['answers 503', new UpstreamError('UPSTREAM_SERVER_ERROR', '503', { status: 503 })],
    ['answers 429', new UpstreamError('UPSTREAM_RATE_LIMITED', '429', { status: 429 })],
  ])('serves the last known tag answer when the primary %s', async (_what, error) => {
    const service = make();
    const first = await service.get(target(), tag, signal());
    now += 61_000;
    upstream.failWith = error;
    const answer = await service.get(target(), tag, signal());
    expect(answer.result).toBe('stale');
    expect(answer.digest).toBe(first.digest);
    expect(answer.body.equals(first.body)).toBe(true);
    expect(stale).toEqual([error.code]);
  });

  it('does not serve stale when the primary says the tag is gone', async () => {
    const service = make();
    await service.get(target(), tag, signal());
    now += 61_000;
    upstream.manifests.clear();
    await expect(service.get(target(), tag, signal())).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN' });
  });

  it('bounds how long a hung primary holds a client with a stale answer available', async () => {
    const service = make(200);
    await service.get(target(), tag, signal());
    now += 61_000;
    upstream.headManifest = (_repo: string, _ref: string, sig: AbortSignal) =>
      new Promise<never>((_resolve, reject) => sig.addEventListener('abort', () => reject(new UpstreamError('UPSTREAM_TIMEOUT', 'deadline'))));
    const started = Date.now();
    const answer = await service.get(target(), tag, signal());
    expect(answer.result).toBe('stale');
    expect(Date.now() - started).toBeLessThan(5_000);
    // Within the back-off the next client does not wait on the primary at all.
    expect((await service.get(target(), tag, signal())).result).toBe('hit');
  });

  it('answers 502/504 when the primary fails and nothing is cached', async () => {
    upstream.failWith = new UpstreamError('UPSTREAM_UNREACHABLE', 'refused');
    await expect(make().get(target(), tag, signal())).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE', status: 502 });
    upstream.failWith = new UpstreamError('UPSTREAM_TIMEOUT', 'timeout');
    await expect(make().get(target(), tag, signal())).rejects.toMatchObject({ code: 'UPSTREAM_TIMEOUT', status: 504 });
  });

  it('never revalidates a digest-addressed manifest', async () => {
    const service = make();
    const { digest } = manifest('one');
    upstream.manifests.set(`library/app:${digest}`, manifest('one'));
    const ref = { kind: 'digest' as const, digest: parseDigest(digest) };
    await service.get(target(), ref, signal());
    now += 10 * 365 * 24 * 3600_000;
    upstream.failWith = new UpstreamError('UPSTREAM_UNREACHABLE', 'refused');
    expect((await make().get(target(), ref, signal())).result).toBe('hit');
    expect(upstream.calls).toHaveLength(1);
  });

  it('refuses a manifest whose bytes do not match the requested digest', async () => {
    const wanted = manifest('wanted');
    upstream.manifests.set(`library/app:${wanted.digest}`, { ...manifest('other'), digest: wanted.digest });
    const ref = { kind: 'digest' as const, digest: parseDigest(wanted.digest) };
    await expect(make().get(target(), ref, signal())).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
  });

  describe('a primary that lies in the manifest body', () => {
    const traversal = 'sha256:../../../../../tmp/outpost-escape';
    const bodies: Record<string, unknown> = {
      'a config digest': { schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: { mediaType: 'x', digest: traversal, size: 1 }, layers: [] },
      'a layer digest': {
        schemaVersion: 2,
        mediaType: mediaTypes.ociManifest,
        config: { mediaType: 'x', digest: digestOf(Buffer.from('c')), size: 1 },
        layers: [{ mediaType: 'x', digest: `sha256:${'a'.repeat(64)}/../../x`, size: 1 }],
      },
      'an index child': { schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: [{ mediaType: mediaTypes.ociManifest, digest: traversal, size: 1 }] },
      'a negative size': {
        schemaVersion: 2,
        mediaType: mediaTypes.ociManifest,
        config: { mediaType: 'x', digest: digestOf(Buffer.from('c')), size: -1 },
        layers: [],
      },
      'a subject': {
        schemaVersion: 2,
        mediaType: mediaTypes.ociManifest,
        config: { mediaType: 'x', digest: digestOf(Buffer.from('c')), size: 1 },
        layers: [],
        subject: { mediaType: mediaTypes.ociManifest, digest: 'md5:abc', size: 1 },
      },
    };
    for (const [what, json] of Object.entries(bodies)) {
      it(`refuses (502, MANIFEST_INVALID) and never caches a manifest with an invalid ${what}`, async () => {
        const body = Buffer.from(JSON.stringify(json));
        const digest = digestOf(body);
        upstream.manifests.set('library/app:lying', { body, digest, mediaType: (json as { mediaType: string }).mediaType });
        upstream.manifests.set(`library/app:${digest}`, { body, digest, mediaType: (json as { mediaType: string }).mediaType });
        const service = make();
        for (const ref of [{ kind: 'tag' as const, tag: 'lying' }, { kind: 'digest' as const, digest: parseDigest(digest) }]) {
          const failure = await service.get(target(), ref, signal()).catch((err: unknown) => err);
          expect(failure).toMatchObject({ code: 'UPSTREAM_UNAVAILABLE', status: 502, detail: { code: 'MANIFEST_INVALID' } });
        }
        const layout = cacheLayout(dir);
        expect(await new DiskBlobStore(layout).stat(parseDigest(digest))).toBeUndefined();
        expect(await new DiskMetadataStore(layout).getTag('fake.example', 'library/app', 'lying')).toBeUndefined();
      });
    }
  });
});
