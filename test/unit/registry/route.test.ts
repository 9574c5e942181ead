import { describe, expect, it } from 'vitest';
import { RegistryError } from '../../../src/registry/errors.ts';
import { matchV2Route } from '../../../src/registry/route.ts';

const digest = `sha256:${'a'.repeat(64)}`;

function codeOf(path: string): string | undefined {
  try {
    matchV2Route(path);
    return undefined;
  } catch (err) {
    return (err as RegistryError).code;
  }
}

describe('matchV2Route', () => {
  it('recognises the base and catalog routes', () => {
    expect(matchV2Route('/v2/')).toEqual({ kind: 'base' });
    expect(matchV2Route('/v2')).toEqual({ kind: 'base' });
    expect(matchV2Route('/v2/_catalog')).toEqual({ kind: 'catalog' });
  });

  it('parses manifests by tag and by digest, with nested names', () => {
    expect(matchV2Route('/v2/library/nginx/manifests/1.27')).toEqual({
      kind: 'manifest',
      name: 'library/nginx',
      reference: { kind: 'tag', tag: '1.27' },
    });
    const route = matchV2Route(`/v2/a/b/c/manifests/${digest}`);
    expect(route).toMatchObject({ kind: 'manifest', name: 'a/b/c', reference: { kind: 'digest', digest } });
  });

  it('accepts a percent-encoded colon in a digest', () => {
    expect(matchV2Route(`/v2/x/blobs/sha256%3A${'a'.repeat(64)}`)).toMatchObject({ kind: 'blob', digest });
  });

  it('parses blobs, tag lists, referrers and upload routes', () => {
    expect(matchV2Route(`/v2/x/y/blobs/${digest}`)).toMatchObject({ kind: 'blob', name: 'x/y' });
    expect(matchV2Route('/v2/x/y/tags/list')).toEqual({ kind: 'tags', name: 'x/y' });
    expect(matchV2Route(`/v2/x/referrers/${digest}`)).toMatchObject({ kind: 'referrers', name: 'x' });
    expect(matchV2Route('/v2/x/blobs/uploads/')).toEqual({ kind: 'upload', name: 'x' });
    expect(matchV2Route('/v2/x/blobs/uploads/abc-123')).toEqual({ kind: 'upload', name: 'x' });
  });

  it('rejects path tricks as NAME_INVALID', () => {
    expect(codeOf('/v2/../etc/manifests/latest')).toBe('NAME_INVALID');
    expect(codeOf('/v2/a/../b/manifests/latest')).toBe('NAME_INVALID');
    expect(codeOf('/v2/a%2Fb/manifests/latest')).toBe('NAME_INVALID');
    expect(codeOf('/v2/a%2fb/blobs/' + digest)).toBe('NAME_INVALID');
    expect(codeOf('/v2/a//b/manifests/latest')).toBe('NAME_INVALID');
    expect(codeOf('/v2/UPPER/manifests/latest')).toBe('NAME_INVALID');
    expect(codeOf(`/v2/${'a'.repeat(256)}/manifests/latest`)).toBe('NAME_INVALID');
  });

  it('rejects malformed digests as DIGEST_INVALID and answers malformed tags as MANIFEST_UNKNOWN', () => {
    expect(codeOf('/v2/x/blobs/sha256:abc')).toBe('DIGEST_INVALID');
    expect(codeOf(`/v2/x/blobs/md5:${'a'.repeat(32)}`)).toBe('DIGEST_INVALID');
    expect(codeOf(`/v2/x/blobs/sha256:${'A'.repeat(64)}`)).toBe('DIGEST_INVALID');
    expect(codeOf('/v2/x/manifests/sha256:totallywrong')).toBe('DIGEST_INVALID');
    expect(codeOf('/v2/x/manifests/.hidden')).toBe('MANIFEST_UNKNOWN');
    expect(codeOf('/v2/x/manifests/.INVALID_MANIFEST_NAME')).toBe('MANIFEST_UNKNOWN');
    expect(codeOf(`/v2/x/manifests/${'t'.repeat(129)}`)).toBe('MANIFEST_UNKNOWN');
    expect(codeOf('/v2/Bad/manifests/.hidden')).toBe('NAME_INVALID');
    expect(codeOf('/v2/x/manifests/a%20b')).toBe('NAME_INVALID');
  });

  it('returns undefined for paths that are not registry routes', () => {
    expect(matchV2Route('/v2/x/unknown/thing')).toBeUndefined();
    expect(matchV2Route('/health')).toBeUndefined();
  });
});
