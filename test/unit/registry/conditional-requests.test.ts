import { describe, expect, it } from 'vitest';
import { ifNoneMatchMatches, ifRangeAllowsRange, parseEntityTagList } from '../../../src/registry/conditional-requests.ts';

const digest = `sha256:${'a'.repeat(64)}`;
const etag = `"${digest}"`;
const other = `"sha256:${'b'.repeat(64)}"`;

describe('If-None-Match', () => {
  it('matches our entity-tag alone, in a list, weakly, and across repeated headers', () => {
    expect(ifNoneMatchMatches(etag, etag)).toBe(true);
    expect(ifNoneMatchMatches(`${other}, ${etag}`, etag)).toBe(true);
    expect(ifNoneMatchMatches(`"a", "b",${etag}`, etag)).toBe(true);
    expect(ifNoneMatchMatches(`W/${etag}`, etag)).toBe(true);
    expect(ifNoneMatchMatches([other, etag], etag)).toBe(true);
    expect(ifNoneMatchMatches(` ${etag} `, etag)).toBe(true);
  });
  it('matches * for anything that exists', () => {
    expect(ifNoneMatchMatches('*', etag)).toBe(true);
    expect(ifNoneMatchMatches(' * ', etag)).toBe(true);
  });
  it('does not match other tags, unquoted digests, empty or malformed headers', () => {
    expect(ifNoneMatchMatches(undefined, etag)).toBe(false);
    expect(ifNoneMatchMatches('', etag)).toBe(false);
    expect(ifNoneMatchMatches(`${other}, "c"`, etag)).toBe(false);
    expect(ifNoneMatchMatches(digest, etag)).toBe(false);
    expect(ifNoneMatchMatches(`"${digest}`, etag)).toBe(false);
    expect(ifNoneMatchMatches(`${etag} junk`, etag)).toBe(false);
    expect(ifNoneMatchMatches('"a", *', etag)).toBe(false);
  });
});

describe('If-Range', () => {
  it('allows the range without the header or with our strong entity-tag', () => {
    expect(ifRangeAllowsRange(undefined, etag)).toBe(true);
    expect(ifRangeAllowsRange(etag, etag)).toBe(true);
    expect(ifRangeAllowsRange(` ${etag}`, etag)).toBe(true);
  });
  it('sends the whole body for another tag, a weak tag, a date or garbage', () => {
    expect(ifRangeAllowsRange(other, etag)).toBe(false);
    expect(ifRangeAllowsRange(`W/${etag}`, etag)).toBe(false);
    expect(ifRangeAllowsRange('Wed, 21 Oct 2015 07:28:00 GMT', etag)).toBe(false);
    expect(ifRangeAllowsRange(`${etag}, ${etag}`, etag)).toBe(false);
    expect(ifRangeAllowsRange('', etag)).toBe(false);
  });
});

describe('entity-tag lists', () => {
  it('parses weak and strong tags, skipping empty elements', () => {
    expect(parseEntityTagList(`"a", W/"b",, "c,d"`)).toEqual([
      { weak: false, opaque: 'a' },
      { weak: true, opaque: 'b' },
      { weak: false, opaque: 'c,d' },
    ]);
    expect(parseEntityTagList('a')).toBeUndefined();
  });
});
