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

/** `<name><marker><ref>` with a non-empty single-segment ref, split at the last marker. */
function splitLast(rest: string, marker: string): { name: string; ref: string } | undefined {
  const at = rest.lastIndexOf(marker);
  if (at <= 0) return undefined;
  const ref = rest.slice(at + marker.length);
  return ref.length > 0 && !ref.includes('/') ? { name: rest.slice(0, at), ref } : undefined;
}

/** Returns the route for a path under `/v2`, or undefined when no route matches (404). */
export function matchV2Route(path: string): V2Route | undefined {
  if (path === '/v2' || path === '/v2/') return { kind: 'base' };
  if (!path.startsWith('/v2/')) return undefined;
  const rest = path.slice(4);
  if (rest === '_catalog') return { kind: 'catalog' };

  const at = rest.lastIndexOf('/blobs/uploads');
  if (at > 0 && /^\/blobs\/uploads(\/[^/]*)?\/?$/.test(rest.slice(at))) {
    return { kind: 'upload', name: checkName(rest.slice(0, at)) };
  }
  if (rest.endsWith('/tags/list')) {
    return { kind: 'tags', name: checkName(rest.slice(0, -'/tags/list'.length)) };
  }
  const manifest = splitLast(rest, '/manifests/');
  if (manifest) return { kind: 'manifest', name: checkName(manifest.name), reference: parseReference(decodeSegment(manifest.ref)) };
  const blob = splitLast(rest, '/blobs/');
  if (blob) return { kind: 'blob', name: checkName(blob.name), digest: parseDigest(decodeSegment(blob.ref)) };
  const referrers = splitLast(rest, '/referrers/');
  if (referrers) return { kind: 'referrers', name: checkName(referrers.name), digest: parseDigest(decodeSegment(referrers.ref)) };
  return undefined;
}
