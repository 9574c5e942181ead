/** A manifest or blob by digest is served only under a repository the primary vouched for. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobSource } from '../../../src/cache/blob-source.ts';
import { BlobService } from '../../../src/cache/blob-service.ts';
import { ManifestService } from '../../../src/cache/manifest-service.ts';
import { noopIndexReporter, noopObserver, UpstreamError, type BlobResponse, type ManifestHead, type ManifestResponse } from '../../../src/cache/ports.ts';
import { RepositoryLinks } from '../../../src/cache/repository-links.ts';
import { MemoryFillCoordinator } from '../../../src/coordination/memory-fill-coordinator.ts';
import { digestOf, type Digest } from '../../../src/registry/digest.ts';
import { mediaTypes } from '../../../src/registry/media-types.ts';
import { DiskBlobStore } from '../../../src/storage/disk-blob-store.ts';
import { DiskMetadataStore } from '../../../src/storage/disk-metadata-store.ts';
import { cacheLayout } from '../../../src/storage/layout.ts';
import { FakeUpstream, manualBody } from '../../support/fake-upstream.ts';

const silent = { debug() {}, info() {}, warn() {}, error() {} };
const signal = () => new AbortController().signal;
const notFound = () => new UpstreamError('UPSTREAM_NOT_FOUND', 'not found', { status: 404 });

/** A primary where each repository has only what was put in it. */
class Primary extends FakeUpstream {
  readonly holds = new Map<string, Set<string>>();

  put(repo: string, digest: string): void {
    const set = this.holds.get(repo) ?? new Set<string>();
    set.add(digest);
    this.holds.set(repo, set);
  }

  #has(repo: string, reference: string): boolean {
    return this.holds.get(repo)?.has(reference) ?? false;
  }

  override async headBlob(repo: string, digest: string): Promise<{ size: number | undefined }> {
    this.calls.push(`HEAD blob ${repo}@${digest}`);
    if (!this.#has(repo, digest)) throw notFound();
    return { size: this.blobs.get(digest)?.byteLength };
  }

  override async getBlob(repo: string, digest: string, s?: AbortSignal, options?: { start?: number }): Promise<BlobResponse> {
    if (!this.#has(repo, digest)) {
      this.calls.push(`GET blob ${repo}@${digest}`);
      throw notFound();
    }
    return super.getBlob(repo, digest, s, options);
  }

  override async headManifest(repo: string, reference: string): Promise<ManifestHead> {
    this.calls.push(`HEAD manifest ${repo}@${reference}`);
    const m = this.manifests.get(`${repo}:${reference}`);
    if (!m) throw notFound();
    return { digest: m.digest, mediaType: m.mediaType, size: m.body.byteLength };
  }

  override async getManifest(repo: string, reference: string): Promise<ManifestResponse> {
    return super.getManifest(repo, reference);
  }
}

async function readAll(source: BlobSource): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const buffer = Buffer.alloc(64 * 1024);
  try {
    for (let position = 0; ; ) {
      const n = await source.read(buffer, position, buffer.length);
      if (n === 0) break;
      chunks.push(Buffer.from(buffer.subarray(0, n)));
      position += n;
    }
    await source.settled?.(); // the last byte comes once verified; the cache entry once durable
  } finally {
    await source.close();
  }
  return Buffer.concat(chunks);
}

describe('repository links', () => {
  let dir: string;
  let primary: Primary;
  let metadata: DiskMetadataStore;
  let blobs: BlobService;
  let manifests: ManifestService;
  const layer = Buffer.from('a private layer '.repeat(1000));
  const layerDigest = digestOf(layer);
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const configDigest = digestOf(config);
  const image = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: mediaTypes.ociManifest,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layer.length }],
    }),
  );
  const imageDigest = digestOf(image);
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: mediaTypes.ociIndex,
      manifests: [{ mediaType: mediaTypes.ociManifest, digest: imageDigest, size: image.length, platform: { os: 'linux', architecture: 'amd64' } }],
    }),
  );
  const indexDigest = digestOf(index);
  const at = (name: string) => ({ upstream: primary, upstreamKey: 'registry.test', name });

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'outpost-links-'));
    const layout = cacheLayout(dir);
    const store = new DiskBlobStore(layout);
    await store.init();
    metadata = new DiskMetadataStore(layout);
    primary = new Primary();
    primary.blobs.set(layerDigest, layer);
    primary.blobs.set(configDigest, config);
    for (const digest of [layerDigest, configDigest]) primary.put('private/app', digest);
    primary.manifests.set('private/app:v1', { body: image, digest: imageDigest, mediaType: mediaTypes.ociManifest });
    primary.manifests.set(`private/app:${imageDigest}`, { body: image, digest: imageDigest, mediaType: mediaTypes.ociManifest });
    // A fresh RepositoryLinks per service is another worker: nothing remembered, the same disk.
    const links = () => new RepositoryLinks({ metadata, logger: silent });
    blobs = new BlobService({
      links: links(),
      store,
      coordinator: new MemoryFillCoordinator(),
      observer: noopObserver,
      index: noopIndexReporter,
      logger: silent,
      stallTimeoutMs: 5_000,
      cacheable: () => true,
    });
    manifests = new ManifestService({ links: links(), blobs: store, metadata, clock: { now: () => 1_000 }, observer: noopObserver, logger: silent, tagTtlMs: 60_000, revalidateTimeoutMs: 1_000, maxManifestBytes: 1024 * 1024 });
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("links a cached manifest's config and layers to its repository, so its blobs need no HEAD", async () => {
    await manifests.get(at('private/app'), { kind: 'tag', tag: 'v1' }, signal());
    expect(await metadata.hasLink('registry.test', 'private/app', 'manifest', imageDigest)).toBe(true);
    expect(await metadata.hasLink('registry.test', 'private/app', 'blob', layerDigest)).toBe(true);
    expect(await metadata.hasLink('registry.test', 'private/app', 'blob', configDigest)).toBe(true);
    expect(await metadata.hasLink('registry.test', 'other/repo', 'blob', layerDigest)).toBe(false);
    expect(await readAll(await blobs.open(at('private/app'), layerDigest, signal()))).toEqual(layer);
    expect(primary.count('HEAD blob')).toBe(0);
  });

  it('links the child manifests of an index', async () => {
    primary.manifests.set('multi/app:v1', { body: index, digest: indexDigest, mediaType: mediaTypes.ociIndex });
    await manifests.get(at('multi/app'), { kind: 'tag', tag: 'v1' }, signal());
    expect(await metadata.hasLink('registry.test', 'multi/app', 'manifest', imageDigest)).toBe(true);
  });

  it('does not serve a cached blob under a repository the primary says does not have it', async () => {
    expect(await readAll(await blobs.open(at('private/app'), layerDigest, signal()))).toEqual(layer);
    await expect(blobs.open(at('no/such-repo'), layerDigest, signal())).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
    await expect(blobs.stat(at('no/such-repo'), layerDigest, signal())).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
    expect(primary.calls).toContain(`HEAD blob no/such-repo@${layerDigest}`);
    expect(await metadata.hasLink('registry.test', 'no/such-repo', 'blob', layerDigest)).toBe(false);
  });

  it('serves a cached blob under another repository from the cache once the primary confirms it, then without asking', async () => {
    expect(await readAll(await blobs.open(at('private/app'), layerDigest, signal()))).toEqual(layer);
    primary.put('mirror/app', layerDigest);
    const source = await blobs.open(at('mirror/app'), layerDigest, signal());
    expect(source.result).toBe('hit');
    expect(await readAll(source)).toEqual(layer);
    expect(primary.count('GET blob')).toBe(1);
    expect(primary.count(`HEAD blob mirror/app@`)).toBe(1);
    expect((await blobs.stat(at('mirror/app'), layerDigest, signal())).result).toBe('hit');
    expect(primary.count(`HEAD blob mirror/app@`)).toBe(1);
  });

  it('links a blob fetched under a repository', async () => {
    await readAll(await blobs.open(at('private/app'), layerDigest, signal()));
    expect(await metadata.hasLink('registry.test', 'private/app', 'blob', layerDigest)).toBe(true);
  });

  it("does not let a repository follow another repository's fill without the primary's word", async () => {
    const body = manualBody();
    primary.blobBody = () => ({ size: layer.length, body: body.stream });
    const first = await blobs.open(at('private/app'), layerDigest, signal());
    await expect(blobs.open(at('no/such-repo'), layerDigest, signal())).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
    body.stream.end(layer);
    expect(await readAll(first)).toEqual(layer);
  });

  it('does not serve a cached manifest by digest under a repository the primary says does not have it', async () => {
    await manifests.get(at('private/app'), { kind: 'tag', tag: 'v1' }, signal());
    await expect(manifests.byDigest(at('no/such-repo'), imageDigest, signal())).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN' });
    primary.manifests.set(`mirror/app:${imageDigest}`, { body: image, digest: imageDigest, mediaType: mediaTypes.ociManifest });
    const answer = await manifests.byDigest(at('mirror/app'), imageDigest, signal());
    expect(answer.result).toBe('hit');
    expect(primary.count('GET manifest')).toBe(1);
    // Its references are linked too: its blobs are served there without asking.
    expect(await metadata.hasLink('registry.test', 'mirror/app', 'blob', layerDigest)).toBe(true);
  });

  it('gives a cache written before blob links existed its links on the first tag hit', async () => {
    await manifests.get(at('private/app'), { kind: 'tag', tag: 'v1' }, signal());
    await rm(path.join(dir, 'repositories', 'registry.test', 'private', 'app', '_layers'), { recursive: true });
    const restarted = new ManifestService({
      links: new RepositoryLinks({ metadata, logger: silent }),
      blobs: new DiskBlobStore(cacheLayout(dir)),
      metadata,
      clock: { now: () => 2_000 },
      observer: noopObserver,
      logger: silent,
      tagTtlMs: 60_000,
      revalidateTimeoutMs: 1_000,
      maxManifestBytes: 1024 * 1024,
    });
    expect((await restarted.get(at('private/app'), { kind: 'tag', tag: 'v1' }, signal())).result).toBe('hit');
    expect(await metadata.hasLink('registry.test', 'private/app', 'blob', layerDigest as Digest)).toBe(true);
  });
});
