/** Manifest media types and `Accept` negotiation. */

export const mediaTypes = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
} as const;

export const manifestMediaTypes: readonly string[] = Object.values(mediaTypes);

export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === mediaTypes.ociIndex || mediaType === mediaTypes.dockerManifestList;
}

export interface AcceptEntry {
  type: string;
  q: number;
}

/** Parses one or more `Accept` header values (comma lists; repeated headers). */
export function parseAccept(header: string | string[] | undefined): AcceptEntry[] {
  if (header === undefined) return [];
  const values = Array.isArray(header) ? header : [header];
  const entries: AcceptEntry[] = [];
  for (const value of values) {
    for (const part of value.split(',')) {
      const [rawType, ...params] = part.split(';');
      const type = rawType?.trim().toLowerCase();
      if (!type) continue;
      let q = 1;
      for (const param of params) {
        const [key, val] = param.split('=').map((s) => s.trim());
        if (key === 'q' && val !== undefined) {
          const parsed = Number(val);
          if (Number.isFinite(parsed)) q = Math.min(Math.max(parsed, 0), 1);
        }
      }
      entries.push({ type, q });
    }
  }
  return entries;
}

/**
 * Whether a stored manifest of `mediaType` may be served to a client that
 * sent `accept`. No Accept header, `*\/*` or `application/*` accepts all;
 * `q=0` refuses a type.
 */
export function accepts(accept: AcceptEntry[], mediaType: string): boolean {
  if (accept.length === 0) return true;
  const exact = accept.find((entry) => entry.type === mediaType);
  if (exact) return exact.q > 0;
  const slash = mediaType.indexOf('/');
  const range = `${mediaType.slice(0, slash)}/*`;
  const wildcard = accept.find((entry) => entry.type === range || entry.type === '*/*');
  return wildcard !== undefined && wildcard.q > 0;
}

/** Whether a client accepts any single-platform manifest type (for index fallback). */
export function acceptsSingleManifest(accept: AcceptEntry[]): boolean {
  return accepts(accept, mediaTypes.dockerManifest) || accepts(accept, mediaTypes.ociManifest);
}

// RFC 6838 §4.2 restricted-name: 1 to 127 characters, starting alphanumeric.
const restrictedName = /^[A-Za-z0-9][A-Za-z0-9!#$&\-^_.+]{0,126}$/;

/** Whether a string is a bare media type (`type/subtype`, no parameters), as `artifactType` must be. */
export function isMediaType(value: string): boolean {
  const slash = value.indexOf('/');
  if (slash <= 0) return false;
  return restrictedName.test(value.slice(0, slash)) && restrictedName.test(value.slice(slash + 1));
}

/** The manifest types that can carry a `subject`, and so appear in a referrers list. */
export function isReferrerMediaType(mediaType: string): boolean {
  return mediaType === mediaTypes.ociManifest || mediaType === mediaTypes.ociIndex;
}
