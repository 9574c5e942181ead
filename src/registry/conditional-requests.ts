/**
 * Conditional request headers (RFC 9110 §13) for content-addressed answers,
 * whose entity-tag is always the strong `"<digest>"`.
 *
 * - `If-None-Match` (§13.1.2): `*` or a list of entity-tags, compared weakly
 *   (`W/"x"` matches `"x"`); a match turns a GET/HEAD into a 304.
 * - `If-Range` (§13.1.5): an entity-tag compared strongly, or an HTTP date.
 *   Outpost sends no Last-Modified, so a date never matches; neither does a
 *   weak tag. When it does not match, the Range header is ignored and the
 *   whole body is sent with 200.
 */

type HeaderValue = string | string[] | undefined;

/** The opaque tags of an entity-tag list, or undefined when the list is malformed. */
export function parseEntityTagList(value: string): { weak: boolean; opaque: string }[] | undefined {
  const tags: { weak: boolean; opaque: string }[] = [];
  let i = 0;
  const skipSpace = (): void => {
    while (i < value.length && (value[i] === ' ' || value[i] === '\t')) i++;
  };
  for (;;) {
    skipSpace();
    if (i >= value.length) break;
    if (value[i] === ',') {
      i++; // empty list elements are allowed (RFC 9110 §5.6.1)
      continue;
    }
    let weak = false;
    if (value.startsWith('W/', i)) {
      weak = true;
      i += 2;
    }
    if (value[i] !== '"') return undefined;
    const close = value.indexOf('"', i + 1);
    if (close < 0) return undefined;
    tags.push({ weak, opaque: value.slice(i + 1, close) });
    i = close + 1;
    skipSpace();
    if (i < value.length && value[i] !== ',') return undefined;
  }
  return tags;
}

function joined(header: HeaderValue): string | undefined {
  if (header === undefined) return undefined;
  return Array.isArray(header) ? header.join(', ') : header;
}

/** The opaque part of our own strong entity-tag `"x"`. */
function opaqueOf(etag: string): string {
  return etag.startsWith('"') && etag.endsWith('"') ? etag.slice(1, -1) : etag;
}

/**
 * Whether `If-None-Match` matches the current representation (whose strong
 * tag is `etag`), i.e. whether a GET/HEAD should answer 304. A malformed
 * header never matches, so the client gets the full answer.
 */
export function ifNoneMatchMatches(header: HeaderValue, etag: string): boolean {
  const value = joined(header)?.trim();
  if (value === undefined || value === '') return false;
  if (value === '*') return true;
  const tags = parseEntityTagList(value);
  const ours = opaqueOf(etag);
  return tags !== undefined && tags.some((tag) => tag.opaque === ours);
}

/**
 * Whether a Range request may be honoured given `If-Range`: true without the
 * header, or when it is exactly our strong entity-tag.
 */
export function ifRangeAllowsRange(header: HeaderValue, etag: string): boolean {
  const value = joined(header)?.trim();
  if (value === undefined) return true;
  const tags = parseEntityTagList(value);
  if (tags === undefined || tags.length !== 1) return false; // an HTTP date, or garbage: never matches
  const [tag] = tags;
  return tag !== undefined && !tag.weak && tag.opaque === opaqueOf(etag);
}
