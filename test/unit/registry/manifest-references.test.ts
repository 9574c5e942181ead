import { describe, expect, it } from 'vitest';
import { digestOf } from '../../../src/registry/digest.ts';
import { defaultPlatformChild, parseManifest } from '../../../src/registry/manifest-references.ts';
import { mediaTypes } from '../../../src/registry/media-types.ts';

const d = (s: string): string => digestOf(Buffer.from(s));
const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
const image = (extra: Record<string, unknown> = {}) => ({
  schemaVersion: 2,
  mediaType: mediaTypes.ociManifest,
  config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d('config'), size: 6 },
  layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d('layer'), size: 5 }],
  ...extra,
});

describe('parseManifest (the one reader of manifest bodies)', () => {
  it('yields an image manifest config and layers as parsed digests', () => {
    const parsed = parseManifest(json(image()));
    expect(parsed.mediaType).toBe(mediaTypes.ociManifest);
    expect(parsed.blobs.map((b) => b.digest)).toEqual([d('config'), d('layer')]);
    expect(parsed.manifests).toEqual([]);
  });

  it('yields an index children with their platforms and picks linux/amd64 for single-manifest clients', () => {
    const index = {
      schemaVersion: 2,
      mediaType: mediaTypes.ociIndex,
      manifests: [
        { mediaType: mediaTypes.ociManifest, digest: d('arm'), size: 1, platform: { os: 'linux', architecture: 'arm64' } },
        { mediaType: mediaTypes.ociManifest, digest: d('amd'), size: 1, platform: { os: 'linux', architecture: 'amd64' } },
      ],
    };
    const parsed = parseManifest(json(index));
    expect(parsed.manifests.map((m) => m.digest)).toEqual([d('arm'), d('amd')]);
    expect(defaultPlatformChild(parsed)?.digest).toBe(d('amd'));
  });

  it('takes the media type from Content-Type, then the body, then the shape', () => {
    const body = json({ ...image(), mediaType: undefined });
    expect(parseManifest(body, `${mediaTypes.dockerManifest}; charset=utf-8`).mediaType).toBe(mediaTypes.dockerManifest);
    expect(parseManifest(body).mediaType).toBe(mediaTypes.ociManifest);
  });

  it.each([
    ['a traversal in a layer digest', image({ layers: [{ mediaType: 'x', digest: 'sha256:../../../../etc/passwd', size: 1 }] })],
    ['a traversal in the config digest', image({ config: { mediaType: 'x', digest: `sha256:${'a'.repeat(62)}/..`, size: 1 } })],
    ['an unverifiable algorithm', image({ config: { mediaType: 'x', digest: `md5:${'a'.repeat(32)}`, size: 1 } })],
    ['an upper-case digest', image({ config: { mediaType: 'x', digest: `sha256:${'A'.repeat(64)}`, size: 1 } })],
    ['a missing size', image({ config: { mediaType: 'x', digest: d('c') } })],
    ['a fractional size', image({ config: { mediaType: 'x', digest: d('c'), size: 1.5 } })],
    ['a layer that is not an object', image({ layers: ['sha256:abc'] })],
    ['layers that are not a list', image({ layers: { digest: d('x') } })],
    ['a bad subject', image({ subject: { mediaType: 'x', digest: '../x', size: 1 } })],
    ['a platform without architecture', { schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: [{ mediaType: 'x', digest: d('a'), size: 1, platform: { os: 'linux' } }] }],
    ['an index without manifests', { schemaVersion: 2, mediaType: mediaTypes.ociIndex }],
  ])('refuses a manifest with %s', (_what, body) => {
    expect(() => parseManifest(json(body))).toThrowError(expect.objectContaining({ code: 'MANIFEST_INVALID' }));
  });

  it('refuses bodies that are not JSON objects or of no supported type', () => {
    for (const body of ['not json', '[]', '"x"', JSON.stringify({ schemaVersion: 1, fsLayers: [] })]) {
      expect(() => parseManifest(Buffer.from(body)), body).toThrowError(expect.objectContaining({ code: 'MANIFEST_INVALID' }));
    }
  });
});
