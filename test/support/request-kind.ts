/**
 * What a registry request is about, from its path (query ignored):
 *
 *   /v2/                               base
 *   /v2/<name>/manifests/<ref>         manifest
 *   /v2/<name>/blobs/uploads/...       upload
 *   /v2/<name>/blobs/<digest>          blob
 *   /v2/<name>/tags/list               tags
 *   /v2/<name>/referrers/<digest>      referrers
 *   /v2/_catalog                       catalog
 *   anything else                      other
 */
export type RequestKind = 'base' | 'manifest' | 'blob' | 'upload' | 'tags' | 'referrers' | 'catalog' | 'other';

export function requestKind(pathOrUri: string): RequestKind {
  const path = pathOnly(pathOrUri);
  if (path === '/v2/' || path === '/v2') return 'base';
  if (!path.startsWith('/v2/')) return 'other';
  if (path === '/v2/_catalog') return 'catalog';
  if (/\/blobs\/uploads(\/|$)/.test(path)) return 'upload';
  if (/\/manifests\/[^/]+$/.test(path)) return 'manifest';
  if (/\/blobs\/[^/]+$/.test(path)) return 'blob';
  if (/\/tags\/list$/.test(path)) return 'tags';
  if (/\/referrers\/[^/]+$/.test(path)) return 'referrers';
  return 'other';
}

/** The path part of a request URI ("/v2/x/blobs/sha256:..?a=b" → "/v2/x/blobs/sha256:.."). */
export function pathOnly(uri: string): string {
  const q = uri.indexOf('?');
  return q === -1 ? uri : uri.slice(0, q);
}

/** Filter shared by the registry access log and the fault proxy's request log. */
export interface RequestFilter {
  method?: string;
  /** Substring of the path (query excluded). */
  pathIncludes?: string;
  kind?: RequestKind | readonly RequestKind[];
  status?: number;
}

export function matchesFilter(
  entry: { method: string; path: string; kind: RequestKind; status?: number | undefined },
  filter: RequestFilter,
): boolean {
  if (filter.method !== undefined && entry.method.toUpperCase() !== filter.method.toUpperCase()) return false;
  if (filter.pathIncludes !== undefined && !entry.path.includes(filter.pathIncludes)) return false;
  if (filter.kind !== undefined) {
    const kinds: readonly RequestKind[] = typeof filter.kind === 'string' ? [filter.kind] : filter.kind;
    if (!kinds.includes(entry.kind)) return false;
  }
  if (filter.status !== undefined && entry.status !== filter.status) return false;
  return true;
}
