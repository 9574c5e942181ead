import { describe, expect, it } from 'vitest';
import { digestOf, parseDigest } from '../../../src/registry/digest.ts';
import { mediaTypes } from '../../../src/registry/media-types.ts';
import {
  filterByArtifactType,
  parseReferrerDescriptor,
  parseReferrersIndex,
  referrerOf,
  referrersIndex,
  referrersTag,
} from '../../../src/registry/referrers.ts';

const subject = `sha256:${'5'.repeat(64)}`;
const valid = { mediaType: mediaTypes.ociManifest, digest: `sha256:${'1'.repeat(64)}`, size: 512, artifactType: 'application/spdx+json' };

function index(manifests: unknown[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests, ...extra });
}

describe('referrers tag schema', () => {
  it('names the tag <alg>-<encoded>, the encoded part cut to 64 characters', () => {
    expect(referrersTag(parseDigest(subject))).toBe(`sha256-${'5'.repeat(64)}`);
    expect(referrersTag(parseDigest(`sha512:${'ab'.repeat(64)}`))).toBe(`sha512-${'ab'.repeat(32)}`);
  });
});

describe('parsing a referrers index from a primary', () => {
  it('keeps well-formed descriptors, with their annotations', () => {
    const withAnnotations = { ...valid, digest: `sha256:${'2'.repeat(64)}`, annotations: { 'org.example': 'yes' } };
    const indexEntry = { mediaType: mediaTypes.ociIndex, digest: `sha512:${'3'.repeat(128)}`, size: 0 };
    expect(parseReferrersIndex(index([valid, withAnnotations, indexEntry]))).toEqual({ descriptors: [valid, withAnnotations, indexEntry], skipped: 0 });
  });

  it('drops every entry a lying primary can make up, and counts them', () => {
    const lies: unknown[] = [
      { ...valid, digest: 'sha256:abc' },
      { ...valid, digest: `sha256:${'A'.repeat(64)}` },
      { ...valid, digest: `md5:${'a'.repeat(32)}` },
      { ...valid, digest: `sha256:../../${'a'.repeat(58)}` },
      { ...valid, digest: 42 },
      { ...valid, digest: undefined },
      { ...valid, size: -1 },
      { ...valid, size: 1.5 },
      { ...valid, size: '512' },
      { ...valid, size: 2 ** 60 },
      { ...valid, mediaType: mediaTypes.dockerManifest },
      { ...valid, mediaType: 'text/html' },
      { ...valid, mediaType: undefined },
      { ...valid, artifactType: 'application/json; charset=utf-8' },
      { ...valid, artifactType: 'not a type' },
      { ...valid, artifactType: 7 },
      { ...valid, annotations: { key: 1 } },
      { ...valid, annotations: ['a'] },
      'sha256:' + '1'.repeat(64),
      null,
      valid, // kept
      { ...valid, size: 1 }, // same digest again: kept once
    ];
    const parsed = parseReferrersIndex(index(lies));
    expect(parsed).toEqual({ descriptors: [valid], skipped: lies.length - 1 });
  });

  it('refuses a body that is not an OCI image index', () => {
    for (const body of ['not json', '[]', '{}', JSON.stringify({ manifests: {} }), index([], { mediaType: mediaTypes.dockerManifestList })]) {
      expect(parseReferrersIndex(body), body).toBeUndefined();
    }
    expect(parseReferrersIndex(JSON.stringify({ manifests: [] }))).toEqual({ descriptors: [], skipped: 0 });
  });

  it('copies only the known descriptor fields', () => {
    expect(parseReferrerDescriptor({ ...valid, urls: ['http://evil'], data: 'AAAA', platform: { os: 'linux' } })).toEqual(valid);
  });
});

describe('a referrer descriptor built from its manifest', () => {
  function manifest(json: Record<string, unknown>, mediaType: string = mediaTypes.ociManifest) {
    const body = Buffer.from(JSON.stringify(json));
    return { digest: digestOf(body), mediaType, body };
  }
  const empty = { mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf(Buffer.from('{}')), size: 2 };

  it('takes artifactType, annotations, size and digest from the manifest itself', () => {
    const m = manifest({
      schemaVersion: 2,
      mediaType: mediaTypes.ociManifest,
      artifactType: 'application/vnd.example.sbom',
      config: empty,
      layers: [],
      subject: { mediaType: mediaTypes.ociManifest, digest: subject, size: 10 },
      annotations: { 'org.example': 'a' },
    });
    expect(referrerOf(subject, m)).toEqual({
      mediaType: mediaTypes.ociManifest,
      digest: m.digest,
      size: m.body.byteLength,
      artifactType: 'application/vnd.example.sbom',
      annotations: { 'org.example': 'a' },
    });
  });

  it('falls back to the config media type of an image manifest, and to none for an index', () => {
    const image = manifest({ schemaVersion: 2, config: { ...empty, mediaType: 'application/vnd.example.sig' }, layers: [], subject: { digest: subject } });
    expect(referrerOf(subject, image)?.artifactType).toBe('application/vnd.example.sig');
    const idx = manifest({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: [], subject: { digest: subject } }, mediaTypes.ociIndex);
    expect(referrerOf(subject, idx)).toEqual({ mediaType: mediaTypes.ociIndex, digest: idx.digest, size: idx.body.byteLength });
  });

  it('refuses manifests that do not refer to the subject or are malformed', () => {
    const base = { schemaVersion: 2, config: empty, layers: [], subject: { digest: subject } };
    expect(referrerOf(`sha256:${'6'.repeat(64)}`, manifest(base))).toBeUndefined();
    expect(referrerOf(subject, manifest({ ...base, subject: undefined }))).toBeUndefined();
    expect(referrerOf(subject, manifest(base, mediaTypes.dockerManifest))).toBeUndefined();
    expect(referrerOf(subject, manifest({ ...base, mediaType: mediaTypes.ociIndex }))).toBeUndefined();
    expect(referrerOf(subject, manifest({ ...base, artifactType: 'bad type' }))).toBeUndefined();
    expect(referrerOf(subject, manifest({ ...base, config: { ...empty, mediaType: 5 } }))).toBeUndefined();
    expect(referrerOf(subject, manifest({ ...base, annotations: { a: {} } }))).toBeUndefined();
    expect(referrerOf(subject, { digest: 'sha256:nope', mediaType: mediaTypes.ociManifest, body: Buffer.from(JSON.stringify(base)) })).toBeUndefined();
    expect(referrerOf(subject, { digest: subject, mediaType: mediaTypes.ociManifest, body: Buffer.from('{') })).toBeUndefined();
  });
});

describe('answering', () => {
  it('filters on artifactType and serialises an OCI image index in order', () => {
    const a = { ...valid, digest: `sha256:${'a'.repeat(64)}`, artifactType: 'application/a' };
    const b = { ...valid, digest: `sha256:${'b'.repeat(64)}`, artifactType: 'application/b' };
    const c = { ...valid, digest: `sha256:${'c'.repeat(64)}`, artifactType: 'application/a' };
    expect(filterByArtifactType([a, b, c], 'application/a')).toEqual([a, c]);
    expect(JSON.parse(referrersIndex([b, a]).toString())).toEqual({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: [b, a] });
    expect(JSON.parse(referrersIndex([]).toString()).manifests).toEqual([]);
  });
});
