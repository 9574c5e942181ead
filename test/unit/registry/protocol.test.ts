import { describe, expect, it } from 'vitest';
import { digestAlgorithm, digestOf, parseDigest, tryParseDigest } from '../../../src/registry/digest.ts';
import { errorEnvelope, RegistryError } from '../../../src/registry/errors.ts';
import { accepts, acceptsSingleManifest, mediaTypes, parseAccept } from '../../../src/registry/media-types.ts';
import { parseRange } from '../../../src/registry/range.ts';
import { isValidName, isValidTag, normalizeDockerHubName } from '../../../src/registry/reference.ts';

describe('digests', () => {
  it('parses sha256 and sha512 digests', () => {
    expect(digestAlgorithm(parseDigest(`sha256:${'0'.repeat(64)}`))).toBe('sha256');
    expect(digestAlgorithm(parseDigest(`sha512:${'f'.repeat(128)}`))).toBe('sha512');
  });
  it('rejects malformed or unverifiable digests', () => {
    for (const bad of ['sha256', 'sha256:', `sha256:${'0'.repeat(63)}`, `sha256:${'g'.repeat(64)}`, `blake3:${'0'.repeat(64)}`, `:${'0'.repeat(64)}`]) {
      expect(tryParseDigest(bad), bad).toBeUndefined();
    }
    expect(() => parseDigest('nope')).toThrowError(expect.objectContaining({ code: 'DIGEST_INVALID' }));
  });
  it('computes the digest of content', () => {
    expect(digestOf(Buffer.from(''))).toBe('sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});

describe('names and tags', () => {
  it('follows the OCI grammar', () => {
    for (const ok of ['a', 'library/nginx', 'a.b/c_d/e__f/g-h/i--j', 'x0/y1']) expect(isValidName(ok), ok).toBe(true);
    for (const bad of ['', 'A', 'a/', '/a', 'a//b', 'a/../b', '..', 'a.', '-a', 'a___b', 'a_-b']) expect(isValidName(bad), bad).toBe(false);
    for (const ok of ['latest', '1.27', 'v1_0-rc.1', '_x']) expect(isValidTag(ok), ok).toBe(true);
    for (const bad of ['', '.x', '-x', 'a/b', 'a:b', 't'.repeat(129)]) expect(isValidTag(bad), bad).toBe(false);
  });
  it("normalises Docker Hub's official images under library/", () => {
    expect(normalizeDockerHubName('nginx')).toBe('library/nginx');
    expect(normalizeDockerHubName('bitnami/nginx')).toBe('bitnami/nginx');
  });
});

describe('Accept negotiation', () => {
  it('accepts everything when no Accept header is sent', () => {
    expect(accepts(parseAccept(undefined), mediaTypes.ociIndex)).toBe(true);
  });
  it('honours exact types, wildcards and q=0', () => {
    const accept = parseAccept([`${mediaTypes.dockerManifest}, ${mediaTypes.ociManifest};q=0.5`, `${mediaTypes.ociIndex};q=0`]);
    expect(accepts(accept, mediaTypes.dockerManifest)).toBe(true);
    expect(accepts(accept, mediaTypes.ociManifest)).toBe(true);
    expect(accepts(accept, mediaTypes.ociIndex)).toBe(false);
    expect(accepts(accept, mediaTypes.dockerManifestList)).toBe(false);
    expect(acceptsSingleManifest(accept)).toBe(true);
    expect(accepts(parseAccept('application/*'), mediaTypes.ociIndex)).toBe(true);
    expect(accepts(parseAccept('*/*'), mediaTypes.dockerManifestList)).toBe(true);
    expect(accepts(parseAccept('text/plain'), mediaTypes.dockerManifestList)).toBe(false);
  });
});

describe('Range', () => {
  it('parses single byte ranges', () => {
    expect(parseRange('bytes=0-9', 100)).toEqual({ kind: 'range', range: { start: 0, end: 9 } });
    expect(parseRange('bytes=90-', 100)).toEqual({ kind: 'range', range: { start: 90, end: 99 } });
    expect(parseRange('bytes=-10', 100)).toEqual({ kind: 'range', range: { start: 90, end: 99 } });
    expect(parseRange('bytes=50-1000', 100)).toEqual({ kind: 'range', range: { start: 50, end: 99 } });
  });
  it('reports unsatisfiable ranges', () => {
    expect(parseRange('bytes=100-', 100)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=-0', 100)).toEqual({ kind: 'unsatisfiable' });
  });
  it('ignores headers it does not handle', () => {
    expect(parseRange(undefined, 100)).toEqual({ kind: 'none' });
    expect(parseRange('bytes=0-1,5-6', 100)).toEqual({ kind: 'none' });
    expect(parseRange('items=0-1', 100)).toEqual({ kind: 'none' });
    expect(parseRange('bytes=9-3', 100)).toEqual({ kind: 'none' });
  });
  it('serves a last-pos past the end, however many digits, as the bytes to the end', () => {
    expect(parseRange('bytes=0-100', 100)).toEqual({ kind: 'range', range: { start: 0, end: 99 } });
    expect(parseRange('bytes=0-99999999999999999999999', 100)).toEqual({ kind: 'range', range: { start: 0, end: 99 } });
    expect(parseRange('bytes=-99999999999999999999999', 100)).toEqual({ kind: 'range', range: { start: 0, end: 99 } });
    expect(parseRange('bytes=99999999999999999999999-', 100)).toEqual({ kind: 'unsatisfiable' });
  });
  it('sends an empty body whole for a suffix range and refuses an int range on it', () => {
    expect(parseRange('bytes=-5', 0)).toEqual({ kind: 'none' });
    expect(parseRange('bytes=0-', 0)).toEqual({ kind: 'unsatisfiable' });
  });
});

describe('error envelope', () => {
  it('maps registry errors onto their status and the OCI envelope', () => {
    const out = errorEnvelope(new RegistryError('BLOB_UNKNOWN', undefined, { detail: { digest: 'x' } }));
    expect(out.status).toBe(404);
    expect(JSON.parse(out.body)).toEqual({ errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown to registry', detail: { digest: 'x' } }] });
    expect(errorEnvelope(new RegistryError('UNSUPPORTED')).status).toBe(405);
    expect(errorEnvelope(new RegistryError('UPSTREAM_TIMEOUT')).status).toBe(504);
    expect(errorEnvelope(new RegistryError('UPSTREAM_UNAVAILABLE')).status).toBe(502);
  });
  it('turns unknown errors into a bare 500 without internals', () => {
    const out = errorEnvelope(new Error('/secret/path password=hunter2'));
    expect(out.status).toBe(500);
    expect(out.body).not.toContain('secret');
    expect(JSON.parse(out.body).errors[0].code).toBe('UNKNOWN');
  });
});
