/**
 * The `rel="next"` target of an RFC 8288 `Link` header, as the distribution
 * API uses for tag-list pagination: `</v2/foo/tags/list?n=100&last=x>; rel="next"`.
 * Relative targets resolve against the URL of the response that carried it.
 */
export function nextLink(header: string | string[] | undefined, base: URL): URL | undefined {
  if (header === undefined) return undefined;
  const value = Array.isArray(header) ? header.join(', ') : header;
  const link = /<([^>]*)>((?:\s*;\s*[^;,]*)*)/g;
  for (let m = link.exec(value); m !== null; m = link.exec(value)) {
    const params = m[2] ?? '';
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(params);
    const rels = (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/);
    if (rels.includes('next')) {
      try {
        return new URL(m[1] ?? '', base);
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}
