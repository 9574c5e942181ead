import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManifestService } from '../../../src/cache/manifest-service.ts';
import { RepositoryLinks } from '../../../src/cache/repository-links.ts';
import { PassThroughCache } from '../../../src/cache/pass-through-cache.ts';
import { noopObserver, UpstreamError, type ReferrersResponse } from '../../../src/cache/ports.ts';
import { ReferrersService } from '../../../src/cache/referrers-service.ts';
import { RelayedAnswers } from '../../../src/cache/relayed-answers.ts';
import { digestHex, digestOf, parseDigest } from '../../../src/registry/digest.ts';
import { mediaTypes } from '../../../src/registry/media-types.ts';
import { DiskBlobStore } from '../../../src/storage/disk-blob-store.ts';
import { DiskMetadataStore } from '../../../src/storage/disk-metadata-store.ts';
import { cacheLayout } from '../../../src/storage/layout.ts';
import { createRegistryClient } from '../../../src/upstream/registry-client.ts';
import { FakeUpstream } from '../../support/fake-upstream.ts';
import { testConfig, useTestServers } from '../upstream/helpers.ts';

const repo = 'team/app';
const subject = parseDigest(digestOf(Buffer.from('the subject manifest')));
const tag = `sha256-${digestHex(subject)}`;
const empty = { mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf(Buffer.from('{}')), size: 2 };

interface Stored {
  body: Buffer;
  digest: string;
  mediaType: string;
}

function artifact(name: string, of: string = subject, extra: Record<string, unknown> = {}): Stored {
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: mediaTypes.ociManifest,
      artifactType: `application/vnd.example.${name}`,
      config: empty,
      layers: [empty],
      subject: { mediaType: mediaTypes.ociManifest, digest: of, size: 20 },
      annotations: { 'org.example.name': name },
      ...extra,
    }),
  );
  return { body, digest: digestOf(body), mediaType: mediaTypes.ociManifest };
}

function descriptorOf(m: Stored, name: string) {
  return { mediaType: m.mediaType, digest: m.digest, size: m.body.byteLength, artifactType: `application/vnd.example.${name}`, annotations: { 'org.example.name': name } };
}

function indexBody(manifests: unknown[]): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests }));
}

describe('ReferrersService', () => {
  const servers = useTestServers();
  let dir: string;
  let upstream: FakeUpstream;
  let now: number;
  let warnings: string[];
  let stale: string[];
  let make: () => ReferrersService;
  const target = () => ({ upstream, upstreamKey: 'fake.example', name: repo });

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'outpost-referrers-'));
    const layout = cacheLayout(dir);
    const blobs = new DiskBlobStore(layout);
    await blobs.init();
    const metadata = new DiskMetadataStore(layout);
    upstream = new FakeUpstream();
    now = 1_000_000;
    warnings = [];
    stale = [];
    const logger = { debug() {}, info() {}, error() {}, warn: (_obj: object, msg: string) => warnings.push(msg) };
    const observer = { ...noopObserver, staleServed: (_kind: string, reason: string) => stale.push(reason) };
    const clock = { now: () => now };
    // A new service is a restarted worker: nothing in memory, the same disk.
    make = () =>
      new ReferrersService({
        cache: new PassThroughCache<ReferrersResponse>({ kind: 'referrers', notFound: 'MANIFEST_UNKNOWN', clock, observer, logger, ttlMs: 60_000, timeoutMs: 5_000 }),
        relayed: new RelayedAnswers(metadata),
        manifests: new ManifestService({ links: new RepositoryLinks({ metadata, logger }), blobs, metadata, clock, observer, logger, tagTtlMs: 60_000, revalidateTimeoutMs: 1_000, maxManifestBytes: 1024 * 1024 }),
        logger,
        maxIndexBytes: 1024 * 1024,
      });
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function store(m: Stored): void {
    upstream.manifests.set(`${repo}:${m.digest}`, m);
  }

  function tagIndex(manifests: unknown[]): void {
    const body = indexBody(manifests);
    upstream.manifests.set(`${repo}:${tag}`, { body, digest: digestOf(body), mediaType: mediaTypes.ociIndex });
  }

  it('answers an empty list when the primary has neither the referrers API nor a referrers tag', async () => {
    const answer = await make().list(target(), subject);
    expect(answer).toEqual({ descriptors: [], result: 'miss' });
    expect(upstream.calls).toEqual([`GET referrers ${repo}@${subject}`, `GET manifest ${repo}:${tag}`]);
  });

  it('builds the list from the referrers tag schema, each entry from its verified manifest', async () => {
    const sbom = artifact('sbom');
    const sig = artifact('sig');
    store(sbom);
    store(sig);
    tagIndex([
      { mediaType: sbom.mediaType, digest: sbom.digest, size: sbom.body.byteLength, artifactType: 'application/vnd.example.sbom', annotations: { 'org.example.name': 'sbom' } },
      { mediaType: sig.mediaType, digest: sig.digest, size: sig.body.byteLength, artifactType: 'application/vnd.example.sig' },
    ]);
    const { descriptors } = await make().list(target(), subject);
    expect(descriptors).toEqual([descriptorOf(sbom, 'sbom'), descriptorOf(sig, 'sig')]);
  });

  it('never lists what a lying referrers tag makes up', async () => {
    const good = artifact('good');
    const misdescribed = artifact('real');
    const elsewhere = artifact('other', `sha256:${'7'.repeat(64)}`);
    const missing = artifact('gone');
    const forged = artifact('forged');
    for (const m of [good, misdescribed, elsewhere]) store(m);
    // The primary serves other bytes under the forged digest.
    upstream.manifests.set(`${repo}:${forged.digest}`, { ...artifact('swapped'), digest: forged.digest });
    const invalid = [`sha256:${'z'.repeat(64)}`, 'sha256:1234', `sha256:${'E'.repeat(64)}`, '../../etc/passwd', `sha256:${'a'.repeat(64)}/../x`];
    tagIndex([
      ...invalid.map((digest) => ({ mediaType: mediaTypes.ociManifest, digest, size: 10 })),
      { mediaType: mediaTypes.ociManifest, digest: good.digest, size: -5 },
      { mediaType: mediaTypes.ociManifest, digest: good.digest, size: good.body.byteLength },
      { mediaType: mediaTypes.ociIndex, digest: misdescribed.digest, size: 1, artifactType: 'application/evil', annotations: { injected: 'yes' } },
      { mediaType: mediaTypes.ociManifest, digest: elsewhere.digest, size: elsewhere.body.byteLength },
      { mediaType: mediaTypes.ociManifest, digest: missing.digest, size: missing.body.byteLength },
      { mediaType: mediaTypes.ociManifest, digest: forged.digest, size: forged.body.byteLength },
    ]);
    const { descriptors } = await make().list(target(), subject);
    expect(descriptors).toEqual([descriptorOf(good, 'good'), descriptorOf(misdescribed, 'real')]);
    const text = JSON.stringify(descriptors);
    for (const digest of [...invalid, elsewhere.digest, missing.digest, forged.digest]) expect(text).not.toContain(digest);
    expect(warnings).toContain('referrers: invalid entries skipped');
  });

  it('ignores a referrers tag that is not an image index', async () => {
    upstream.manifests.set(`${repo}:${tag}`, artifact('not-an-index'));
    expect((await make().list(target(), subject)).descriptors).toEqual([]);
    expect(warnings).toContain('referrers tag is not an image index; ignored');
  });

  it('uses the primary’s referrers API when it has one, validating every entry and fetching no manifest', async () => {
    const listed = { mediaType: mediaTypes.ociManifest, digest: `sha256:${'1'.repeat(64)}`, size: 300, artifactType: 'application/vnd.example.sig' };
    upstream.referrers.set(`${repo}@${subject}`, {
      body: indexBody([listed, { ...listed, digest: 'sha256:bad' }, { ...listed, digest: `sha256:${'2'.repeat(64)}`, size: 'big' }]),
      mediaType: mediaTypes.ociIndex,
    });
    expect((await make().list(target(), subject)).descriptors).toEqual([listed]);
    expect(upstream.calls).toEqual([`GET referrers ${repo}@${subject}`]);
  });

  it('lists the entries of every page of the primary’s referrers API, each validated', async () => {
    const listed = (n: number) => ({ mediaType: mediaTypes.ociManifest, digest: `sha256:${String(n).repeat(64)}`, size: 300 + n, artifactType: 'application/vnd.example.sig' });
    const path = `/v2/${repo}/referrers/${subject}`;
    const primary = await servers.server((req, res) => {
      const second = new URL(req.url!, 'http://x').searchParams.has('last');
      const body = second ? indexBody([{ ...listed(3), digest: 'sha256:bad' }, listed(4)]) : indexBody([listed(1), listed(2)]);
      res.writeHead(200, { 'content-type': mediaTypes.ociIndex, 'content-length': String(body.length), ...(second ? {} : { link: `<${path}?last=2>; rel="next"` }) });
      res.end(body);
    });
    const client = createRegistryClient(testConfig(primary.url), {});
    servers.cleanup.push(() => client.close());
    const { descriptors } = await make().list({ upstream: client, upstreamKey: 'pages.example', name: repo }, subject);
    expect(descriptors).toEqual([listed(1), listed(2), listed(4)]);
    expect(primary.requests.map((r) => r.url)).toEqual([path, `${path}?last=2`]);
    expect(warnings).toEqual(['referrers: invalid entries skipped']);
  });

  it('refuses a referrers API answer that is not an image index', async () => {
    upstream.referrers.set(`${repo}@${subject}`, { body: Buffer.from('<html>'), mediaType: 'text/html' });
    await expect(make().list(target(), subject)).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
  });

  it('serves the last known list while the primary is down, in this process and after a restart', async () => {
    const sig = artifact('sig');
    store(sig);
    tagIndex([{ mediaType: sig.mediaType, digest: sig.digest, size: sig.body.byteLength }]);
    const service = make();
    expect((await service.list(target(), subject)).descriptors).toEqual([descriptorOf(sig, 'sig')]);
    now += 61_000;
    upstream.failWith = new UpstreamError('UPSTREAM_UNREACHABLE', 'refused');
    expect(await service.list(target(), subject)).toEqual({ descriptors: [descriptorOf(sig, 'sig')], result: 'stale' });
    expect(await make().list(target(), subject)).toEqual({ descriptors: [descriptorOf(sig, 'sig')], result: 'stale' });
    expect(stale).toEqual(['UPSTREAM_UNREACHABLE', 'UPSTREAM_UNREACHABLE']);
  });

  it('serves the newest list any worker stored, not an older one in its own memory', async () => {
    const first = artifact('first');
    const second = artifact('second');
    store(first);
    store(second);
    tagIndex([{ mediaType: first.mediaType, digest: first.digest, size: first.body.byteLength }]);
    const workerA = make();
    const workerB = make();
    await workerA.list(target(), subject);
    now += 61_000;
    tagIndex([
      { mediaType: first.mediaType, digest: first.digest, size: first.body.byteLength },
      { mediaType: second.mediaType, digest: second.digest, size: second.body.byteLength },
    ]);
    expect((await workerB.list(target(), subject)).descriptors).toHaveLength(2);
    now += 61_000;
    upstream.failWith = new UpstreamError('UPSTREAM_SERVER_ERROR', 'primary answered 503', { status: 503 });
    expect(await workerA.list(target(), subject)).toEqual({ descriptors: [descriptorOf(first, 'first'), descriptorOf(second, 'second')], result: 'stale' });
  });

  it('serves the last known list when a referrer manifest cannot be fetched for an outage', async () => {
    const sig = artifact('sig');
    store(sig);
    tagIndex([{ mediaType: sig.mediaType, digest: sig.digest, size: sig.body.byteLength }]);
    expect((await make().list(target(), subject)).descriptors).toHaveLength(1);
    const later = artifact('later');
    tagIndex([
      { mediaType: sig.mediaType, digest: sig.digest, size: sig.body.byteLength },
      { mediaType: later.mediaType, digest: later.digest, size: later.body.byteLength },
    ]);
    const original = upstream.getManifest.bind(upstream);
    upstream.getManifest = async (r: string, reference: string) => {
      if (reference === later.digest) throw new UpstreamError('UPSTREAM_SERVER_ERROR', 'primary answered 503', { status: 503 });
      return original(r, reference);
    };
    now += 61_000;
    expect(await make().list(target(), subject)).toEqual({ descriptors: [descriptorOf(sig, 'sig')], result: 'stale' });
  });
});
