/**
 * Referrers lists (OCI distribution spec v1.1, "Listing Referrers") and the
 * referrers tag schema, as pure functions over untrusted JSON.
 *
 * A referrers list is an OCI image index whose `manifests` are descriptors
 * of the manifests that name a subject in their `subject` field:
 *
 *   {"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
 *    "manifests":[{"mediaType":"…","digest":"sha256:…","size":123,
 *                  "artifactType":"…","annotations":{"k":"v"}}]}
 *
 * A primary without the referrers API keeps that index under the tag
 * `<alg>-<encoded>` of the subject digest, maintained by the clients that
 * push referrers. Nothing in either document is trusted: a descriptor is
 * kept only when its digest parses, its size is a non-negative integer, its
 * media type is one that can carry a subject, and its artifactType and
 * annotations are well-formed; anything else is dropped and counted. Entries
 * of a tag-schema index are further rebuilt from the referrer manifest
 * itself ({@link referrerOf}), so the answer says what the manifests say.
 */
import { digestAlgorithm, digestHex, tryParseDigest, type Digest } from './digest.ts';
import { parseDescriptor } from './manifest-references.ts';
import { isMediaType, isReferrerMediaType, mediaTypes } from './media-types.ts';

export interface ReferrerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface ParsedReferrers {
  descriptors: ReferrerDescriptor[];
  /** Entries dropped because they were malformed or repeated a digest. */
  skipped: number;
}

/** The referrers tag schema's tag for a subject: `<alg>-<encoded>`, truncated to 32 and 64 characters. */
export function referrersTag(subject: Digest): string {
  return `${digestAlgorithm(subject).slice(0, 32)}-${digestHex(subject).slice(0, 64)}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `undefined` when absent, the map when every value is a string, `null` when present but malformed. */
function annotationsOf(value: unknown): Record<string, string> | undefined | null {
  if (value === undefined) return undefined;
  if (!isRecord(value)) return null;
  const out: Record<string, string> = {};
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry !== 'string') return null;
    out[key] = entry;
  }
  return out;
}

/** `undefined` when absent, the type when it is a bare media type, `null` when present but malformed. */
function artifactTypeOf(value: unknown): string | undefined | null {
  if (value === undefined) return undefined;
  return typeof value === 'string' && isMediaType(value) ? value : null;
}

function descriptor(
  mediaType: string,
  digest: string,
  size: number,
  artifactType: string | undefined,
  annotations: Record<string, string> | undefined,
): ReferrerDescriptor {
  const out: ReferrerDescriptor = { mediaType, digest, size };
  if (artifactType !== undefined) out.artifactType = artifactType;
  if (annotations !== undefined && Object.keys(annotations).length > 0) out.annotations = annotations;
  return out;
}

/** One entry of a referrers index, validated field by field; undefined when any field is wrong. Only the known fields are read. */
export function parseReferrerDescriptor(value: unknown): ReferrerDescriptor | undefined {
  if (!isRecord(value)) return undefined;
  const { mediaType, digest, size, artifactType, annotations } = value;
  let parsed;
  try {
    // The manifest walker's descriptor parser: digest, size, media type, artifactType and annotations.
    parsed = parseDescriptor({ mediaType, digest, size, artifactType, annotations }, 'manifests[]');
  } catch {
    return undefined;
  }
  if (typeof mediaType !== 'string' || !isReferrerMediaType(parsed.mediaType)) return undefined;
  if (artifactTypeOf(parsed.artifactType) === null) return undefined;
  return descriptor(parsed.mediaType, parsed.digest, parsed.size, parsed.artifactType, parsed.annotations);
}

/**
 * The descriptors of a referrers index (a primary's referrers answer, or the
 * index under a referrers tag). Undefined when the body is not an OCI image
 * index at all; bad entries are dropped and counted, a repeated digest is
 * kept once.
 */
export function parseReferrersIndex(body: Buffer | string): ParsedReferrers | undefined {
  let json: unknown;
  try {
    json = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isRecord(json) || !Array.isArray(json.manifests)) return undefined;
  if (json.mediaType !== undefined && json.mediaType !== mediaTypes.ociIndex) return undefined;
  const descriptors: ReferrerDescriptor[] = [];
  const seen = new Set<string>();
  let skipped = 0;
  for (const entry of json.manifests) {
    const parsed = parseReferrerDescriptor(entry);
    if (!parsed || seen.has(parsed.digest)) {
      skipped++;
      continue;
    }
    seen.add(parsed.digest);
    descriptors.push(parsed);
  }
  return { descriptors, skipped };
}

/** A manifest as the cache holds it: digest verified against its bytes, media type decided. */
export interface VerifiedManifest {
  digest: string;
  mediaType: string;
  body: Buffer;
}

/**
 * The referrers descriptor for `manifest`, built from the manifest itself:
 * its verified digest and size, its media type, its `artifactType` (or, for
 * an image manifest without one, its config's media type) and its
 * annotations. Undefined unless the manifest is an OCI manifest or index
 * whose `subject.digest` is `subject`, with well-formed fields.
 */
export function referrerOf(subject: string, manifest: VerifiedManifest): ReferrerDescriptor | undefined {
  if (!isReferrerMediaType(manifest.mediaType) || !tryParseDigest(manifest.digest)) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(manifest.body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isRecord(json) || !isRecord(json.subject) || json.subject.digest !== subject) return undefined;
  if (json.mediaType !== undefined && json.mediaType !== manifest.mediaType) return undefined;
  let artifactType = artifactTypeOf(json.artifactType);
  if (artifactType === null) return undefined;
  if (artifactType === undefined && manifest.mediaType === mediaTypes.ociManifest) {
    artifactType = isRecord(json.config) ? artifactTypeOf(json.config.mediaType) : null;
    if (artifactType === null || artifactType === undefined) return undefined;
  }
  const annotations = annotationsOf(json.annotations);
  if (annotations === null) return undefined;
  return descriptor(manifest.mediaType, manifest.digest, manifest.body.byteLength, artifactType, annotations);
}

/** The descriptors whose artifactType is exactly `artifactType`. */
export function filterByArtifactType(descriptors: readonly ReferrerDescriptor[], artifactType: string): ReferrerDescriptor[] {
  return descriptors.filter((d) => d.artifactType === artifactType);
}

/** The referrers answer body: an OCI image index of `descriptors`, in their order. */
export function referrersIndex(descriptors: readonly ReferrerDescriptor[]): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: descriptors }));
}
