/** The warm of one image: an ordinary pull through the node's own services, bodies drained. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobService } from '../../../src/cache/blob-service.ts';
import { CacheImageWarmer } from '../../../src/cache/image-warmer.ts';
import { ManifestService } from '../../../src/cache/manifest-service.ts';
import { noopIndexReporter, noopObserver } from '../../../src/cache/ports.ts';
import { RepositoryLinks } from '../../../src/cache/repository-links.ts';
import { RepositoryResolver } from '../../../src/cache/repository-resolver.ts';
import { MemoryFillCoordinator } from '../../../src/coordination/memory-fill-coordinator.ts';
import type { WarmProgress, WarmResult } from '../../../src/prefetch/ports.ts';
import { digestOf, type Digest } from '../../../src/registry/digest.ts';
import { mediaTypes } from '../../../src/registry/media-types.ts';
import { DiskBlobStore } from '../../../src/storage/disk-blob-store.ts';
import { DiskMetadataStore } from '../../../src/storage/disk-metadata-store.ts';
import { cacheLayout } from '../../../src/storage/layout.ts';
import { FakeUpstream } from '../../support/fake-upstream.ts';

const silent = { debug() {}, info() {}, warn() {}, error() {} };
const host = 'registry.test';

interface Image {
  digest: Digest;
  body: Buffer;
  blobs: Buffer[];
}

function image(primary: FakeUpstream, name: string): Image {
  const config = Buffer.from(JSON.stringify({ architecture: name, os: 'linux', created: '2026-01-01T00:00:00Z' }));
  const layers = [Buffer.from(`${name} layer one `.repeat(20_000)), Buffer.from(`${name} layer two `.repeat(3_000))];
  for (const blob of [config, ...layers]) primary.blobs.set(digestOf(blob), blob);
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: mediaTypes.ociManifest,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length },
      layers: layers.map((layer) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestOf(layer), size: layer.length })),
    }),
  );
  const digest = digestOf(body);
  primary.manifests.set(`team/app:${digest}`, { body, digest, mediaType: mediaTypes.ociManifest });
  return { digest, body, blobs: [config, ...layers] };
}

const sizeOf = (img: Image): number => img.blobs.reduce((sum, b) => sum + b.length, 0);

describe('image warmer', () => {
  let dir: string;
  let primary: FakeUpstream;
  let warmer: CacheImageWarmer;
  let amd64: Image;
  let arm64: Image;
  let results: WarmResult[];
  let opening: number;
  let cacheable: (size: number | undefined) => boolean;
  let mostOpen: number;
  const warm = (reference: string, platforms: string[] = [], onProgress?: (p: WarmProgress) => void) =>
    warmer.warm({ upstream: host, repository: 'team/app', reference }, { platforms, signal: new AbortController().signal, ...(onProgress ? { onProgress } : {}) });

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'outpost-warmer-'));
    const layout = cacheLayout(dir);
    const store = new DiskBlobStore(layout);
    await store.init();
    const metadata = new DiskMetadataStore(layout);
    primary = new FakeUpstream();
    amd64 = image(primary, 'amd64');
    arm64 = image(primary, 'arm64');
    const attestation = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: { mediaType: 'x', digest: digestOf(Buffer.from('nope')), size: 4 }, layers: [] }));
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: mediaTypes.ociIndex,
        manifests: [
          { mediaType: mediaTypes.ociManifest, digest: amd64.digest, size: amd64.body.length, platform: { os: 'linux', architecture: 'amd64' } },
          { mediaType: mediaTypes.ociManifest, digest: arm64.digest, size: arm64.body.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
          {
            mediaType: mediaTypes.ociManifest,
            digest: digestOf(attestation),
            size: attestation.length,
            platform: { os: 'unknown', architecture: 'unknown' },
            annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
          },
        ],
      }),
    );
    primary.manifests.set('team/app:multi', { body: index, digest: digestOf(index), mediaType: mediaTypes.ociIndex });
    primary.manifests.set('team/app:single', { body: amd64.body, digest: amd64.digest, mediaType: mediaTypes.ociManifest });
    const links = new RepositoryLinks({ metadata, logger: silent });
    const blobs = new BlobService({
      links,
      store,
      coordinator: new MemoryFillCoordinator(),
      observer: noopObserver,
      index: noopIndexReporter,
      logger: silent,
      stallTimeoutMs: 5_000,
      cacheable: (size) => cacheable(size),
    });
    const manifests = new ManifestService({ links, blobs: store, metadata, clock: { now: () => 1_000 }, observer: noopObserver, logger: silent, tagTtlMs: 60_000, revalidateTimeoutMs: 1_000, maxManifestBytes: 1024 * 1024 });
    const resolver = new RepositoryResolver({ host, aliases: [], upstream: primary, dockerHub: false }, []);
    results = [];
    cacheable = () => true;
    opening = 0;
    mostOpen = 0;
    warmer = new CacheImageWarmer({
      targets: resolver,
      manifests,
      blobs: {
        open: async (target, digest, signal) => {
          opening += 1;
          mostOpen = Math.max(mostOpen, opening);
          try {
            const source = await blobs.open(target, digest, signal);
            const close = source.close.bind(source);
            return Object.assign(source, { close: async () => { opening -= 1; await close(); } });
          } catch (err) {
            opening -= 1;
            throw err;
          }
        },
      },
      logger: silent,
      blobConcurrency: 2,
      onResult: (result) => results.push(result),
    });
  });

  afterEach(async () => {
    // Fills are detached from the warm that started them: one may still be publishing its file.
    await rm(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
  });

  it('warms the selected platform of an index, then finds every blob cached', async () => {
    const first = await warm('multi', ['linux/amd64']);
    expect(first).toMatchObject({ ok: true, image: `${host}/team/app:multi`, blobs: 3, bytes: sizeOf(amd64), cachedBlobs: 0, error: undefined });
    expect(first.digest).toMatch(/^sha256:/);
    for (const blob of amd64.blobs) expect(primary.calls).toContain(`GET blob ${digestOf(blob)}`);
    for (const blob of arm64.blobs) expect(primary.calls).not.toContain(`GET blob ${digestOf(blob)}`);
    primary.calls = [];
    const second = await warm('multi', ['linux/amd64']);
    expect(second).toMatchObject({ ok: true, blobs: 3, cachedBlobs: 3, bytes: sizeOf(amd64) });
    expect(primary.count('GET blob')).toBe(0);
    expect(results).toHaveLength(2);
  });

  it('warms every platform but not attestations when no platform is given, a few blobs at once', async () => {
    const result = await warm('multi');
    expect(result).toMatchObject({ ok: true, blobs: 6, bytes: sizeOf(amd64) + sizeOf(arm64) });
    expect(primary.calls).not.toContain(`GET blob ${digestOf(Buffer.from('nope'))}`);
    expect(mostOpen).toBe(2);
  });

  it('selects every variant of os/arch and exactly a named variant', async () => {
    expect(await warm('multi', ['linux/arm64'])).toMatchObject({ ok: true, blobs: 3, bytes: sizeOf(arm64) });
    expect(await warm('multi', ['linux/arm64/v8'])).toMatchObject({ ok: true, blobs: 3, cachedBlobs: 3 });
  });

  it('reports an index with none of the platforms as skipped, warming nothing', async () => {
    const result = await warm('multi', ['linux/s390x']);
    expect(result).toMatchObject({ ok: true, blobs: 0, bytes: 0 });
    expect(result.skipped).toContain('linux/s390x');
    expect(primary.count('GET blob')).toBe(0);
  });

  it('warms a single-platform image by digest whatever the platforms say', async () => {
    expect(await warm(amd64.digest, ['linux/arm64'])).toMatchObject({ ok: true, blobs: 3, image: `${host}/team/app@${amd64.digest}` });
  });

  it('reports progress up to every blob and byte', async () => {
    const seen: WarmProgress[] = [];
    await warm('single', [], (p) => seen.push(p));
    expect(seen[0]).toMatchObject({ blobsDone: 0, blobsTotal: 0, bytesDone: 0, bytesTotal: 0 });
    expect(seen[1]).toMatchObject({ blobsDone: 0, blobsTotal: 3, bytesDone: 0, bytesTotal: sizeOf(amd64) });
    expect(seen.at(-1)).toMatchObject({ blobsDone: 3, blobsTotal: 3, bytesDone: sizeOf(amd64), bytesTotal: sizeOf(amd64) });
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.bytesDone).toBeGreaterThanOrEqual(seen[i - 1]!.bytesDone);
  });

  it('fails the image with a one-line reason naming the blob when one blob cannot be fetched, without throwing', async () => {
    const missing = digestOf(amd64.blobs[1]!);
    primary.blobs.delete(missing);
    const result = await warm('single');
    expect(result.ok).toBe(false);
    expect(result.error).toContain(`blob ${missing}`);
    expect(result.error).not.toContain('\n');
    expect(results.at(-1)).toBe(result);
  });

  it('fails, without fetching it, a blob this replica would only stream through', async () => {
    const big = amd64.blobs[1]!;
    cacheable = (size) => size !== big.length;
    const result = await warm('single');
    expect(result.ok).toBe(false);
    expect(result.error).toContain(`blob ${digestOf(big)}: cannot be cached`);
    expect(opening).toBe(0);
  });

  it('fails an unknown tag and an unknown primary with a reason', async () => {
    const unknown = await warm('nope');
    expect(unknown).toMatchObject({ ok: false, digest: undefined });
    expect(unknown.error).toContain('MANIFEST_UNKNOWN');
    const elsewhere = await warmer.warm({ upstream: 'other.example', repository: 'team/app', reference: 'v1' }, { platforms: [], signal: new AbortController().signal });
    expect(elsewhere.error).toContain('NAME_UNKNOWN');
  });

  it('ends as aborted when its signal fires', async () => {
    const controller = new AbortController();
    controller.abort();
    const result = await warmer.warm({ upstream: host, repository: 'team/app', reference: 'single' }, { platforms: [], signal: controller.signal });
    expect(result).toMatchObject({ ok: false });
    expect(primary.count('GET blob')).toBe(0);
  });
});
