/**
 * Maps a raw `/v2/...` request path onto an API route. The path is parsed
 * as received (never URL-decoded as a whole), so `%2F`, `..` and empty
 * components cannot smuggle a different repository or a file path through;
 * the only escape tolerated is `%3A` for the `:` of a digest.
 */
import { RegistryError } from './errors.ts';
import { parseDigest, type Digest } from './digest.ts';
import { parseReference, validateName, type Reference } from './reference.ts';

export type V2Route =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'manifest'; name: string; reference: Reference }
  | { kind: 'blob'; name: string; digest: Digest }
  | { kind: 'tags'; name: string }
  | { kind: 'referrers'; name: string; digest: Digest }
  | { kind: 'upload'; name: string };

function decodeSegment(raw: string): string {
  if (!raw.includes('%')) return raw;
  const decoded = raw.replace(/%3a/gi, ':');
  if (decoded.includes('%')) {
    throw new RegistryError('NAME_INVALID', 'percent-encoded characters are not allowed in registry paths');
  }
  return decoded;
}

function checkName(raw: string): string {
  if (raw.includes('%')) throw new RegistryError('NAME_INVALID', 'percent-encoded characters are not allowed in repository names', { detail: { name: raw.slice(0, 300) } });
  return validateName(raw);
}

/** Returns the route for a path under `/v2`, or undefined when no route matches (404). */
export function matchV2Route(path: string): V2Route | undefined {
  if (path === '/v2' || path === '/v2/') return { kind: 'base' };
  if (!path.startsWith('/v2/')) return undefined;
  const rest = path.slice(4);
  if (rest === '_catalog') return { kind: 'catalog' };

  let at = rest.lastIndexOf('/blobs/uploads');
  if (at > 0 && /^\/blobs\/uploads(\/[^/]*)?\/?$/.test(rest.slice(at))) {
    return { kind: 'upload', name: checkName(rest.slice(0, at)) };
  }
  if (rest.endsWith('/tags/list')) {
    return { kind: 'tags', name: checkName(rest.slice(0, -'/tags/list'.length)) };
  }
  at = rest.lastIndexOf('/manifests/');
  if (at > 0) {
    const ref = rest.slice(at + '/manifests/'.length);
    if (ref.length > 0 && !ref.includes('/')) {
      const name = checkName(rest.slice(0, at));
      return { kind: 'manifest', name, reference: parseReference(decodeSegment(ref)) };
    }
  }
  at = rest.lastIndexOf('/blobs/');
  if (at > 0) {
    const ref = rest.slice(at + '/blobs/'.length);
    if (ref.length > 0 && !ref.includes('/')) {
      const name = checkName(rest.slice(0, at));
      return { kind: 'blob', name, digest: parseDigest(decodeSegment(ref)) };
    }
  }
  at = rest.lastIndexOf('/referrers/');
  if (at > 0) {
    const ref = rest.slice(at + '/referrers/'.length);
    if (ref.length > 0 && !ref.includes('/')) {
      const name = checkName(rest.slice(0, at));
      return { kind: 'referrers', name, digest: parseDigest(decodeSegment(ref)) };
    }
  }
  return undefined;
}
