/**
 * The `rel="next"` target of an RFC 8288 `Link` header, as the distribution
 * API uses for tag-list pagination: `</v2/foo/tags/list?n=100&last=x>; rel="next"`.
 *
 * The header comes from the primary and is untrusted: it is read only up to
 * MAX_LINK_HEADER_BYTES, in one linear pass (no backtracking regex over the
 * whole value), and a `next` target must be an http(s) URL. Relative targets
 * resolve against `base`. Whether the target's origin may be followed is the
 * caller's decision. Entries without `rel="next"` and malformed ones are
 * ignored; a malformed `next` is reported as `invalid`, so a list is never cut
 * short silently.
 */

/** Longest Link header read; distribution's are under 200 bytes. */
export const MAX_LINK_HEADER_BYTES = 8 * 1024;

export type NextLink = { kind: 'none' } | { kind: 'next'; url: URL } | { kind: 'invalid'; reason: string };

const NONE: NextLink = { kind: 'none' };

export function nextLink(header: string | string[] | undefined, base: URL): NextLink {
  if (header === undefined) return NONE;
  const value = Array.isArray(header) ? header.join(', ') : header;
  if (value.length > MAX_LINK_HEADER_BYTES) return { kind: 'invalid', reason: `Link header longer than ${MAX_LINK_HEADER_BYTES} bytes` };
  for (let from = 0; ; ) {
    const open = value.indexOf('<', from);
    if (open < 0) return NONE;
    const close = value.indexOf('>', open + 1);
    if (close < 0) return NONE;
    const following = value.indexOf('<', close + 1);
    const params = value.slice(close + 1, following < 0 ? undefined : following);
    if (relations(params).includes('next')) return resolve(value.slice(open + 1, close), base);
    from = close + 1;
  }
}

/** The space-separated `rel` values of one link's parameters, lower-cased. */
function relations(params: string): string[] {
  const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(params);
  return (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/);
}

function resolve(target: string, base: URL): NextLink {
  let url: URL;
  try {
    url = new URL(target, base);
  } catch {
    return { kind: 'invalid', reason: 'Link next target is not a URL' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { kind: 'invalid', reason: `Link next target uses ${url.protocol}, not http(s)` };
  }
  return { kind: 'next', url };
}
