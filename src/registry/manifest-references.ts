/**
 * The one reader of manifest bodies. Everything Outpost follows from a
 * manifest — an index's child manifests, an image's config and layers, a
 * referrer's subject — comes out of {@link parseManifest}, and every digest
 * in it has been through the digest parser. A body from the primary (or a
 * peer) with a single malformed descriptor is refused as a whole: a
 * half-trusted manifest is never cached, followed or served.
 */
import { tryParseDigest, type Digest } from './digest.ts';
import { RegistryError } from './errors.ts';
import { isIndexMediaType, manifestMediaTypes, mediaTypes } from './media-types.ts';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  platform?: Platform;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface ParsedManifest {
  mediaType: string;
  /** Child manifests (an index). */
  manifests: Descriptor[];
  /** Config and layers (an image manifest). */
  blobs: Descriptor[];
  /** The manifest this one refers to (signatures, SBOMs). */
  subject?: Descriptor;
  artifactType?: string;
}

type Json = Record<string, unknown>;

function invalid(reason: string, detail: Json = {}): RegistryError {
  return new RegistryError('MANIFEST_INVALID', `manifest invalid: ${reason}`, { detail: { reason, ...detail } });
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optionalString(value: unknown, field: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length > 1024) throw invalid(`${field} is not a string`);
  return value;
}

function parsePlatform(value: unknown): Platform | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) throw invalid('platform is not an object');
  const os = optionalString(value.os, 'platform.os');
  const architecture = optionalString(value.architecture, 'platform.architecture');
  if (os === undefined || architecture === undefined) throw invalid('platform lacks os or architecture');
  const variant = optionalString(value.variant, 'platform.variant');
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

function parseAnnotations(value: unknown): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) throw invalid('annotations is not an object');
  const out: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw invalid('annotation value is not a string');
    out[key] = v;
  }
  return out;
}

/** Parses one descriptor; `field` names it in the error (`layers[3]`). */
export function parseDescriptor(value: unknown, field: string): Descriptor {
  if (!isObject(value)) throw invalid(`${field} is not a descriptor`, { field });
  const digest = tryParseDigest(value.digest);
  if (!digest) throw invalid(`${field} has an invalid digest`, { field, digest: String(value.digest).slice(0, 200) });
  const size = value.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw invalid(`${field} has an invalid size`, { field });
  const descriptor: Descriptor = { mediaType: optionalString(value.mediaType, `${field}.mediaType`) ?? '', digest, size };
  const platform = parsePlatform(value.platform);
  if (platform) descriptor.platform = platform;
  const artifactType = optionalString(value.artifactType, `${field}.artifactType`);
  if (artifactType !== undefined) descriptor.artifactType = artifactType;
  const annotations = parseAnnotations(value.annotations);
  if (annotations) descriptor.annotations = annotations;
  return descriptor;
}

function parseList(value: unknown, field: string): Descriptor[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid(`${field} is not a list`, { field });
  return value.map((entry, i) => parseDescriptor(entry, `${field}[${i}]`));
}

/** The media type of a manifest: the primary's Content-Type when it is a manifest type, else the body's own. */
function mediaTypeOf(contentType: string | undefined, body: Json): string {
  const base = contentType?.split(';')[0]?.trim().toLowerCase();
  if (base && manifestMediaTypes.includes(base)) return base;
  const declared = body.mediaType;
  if (typeof declared === 'string' && manifestMediaTypes.includes(declared)) return declared;
  if (Array.isArray(body.manifests)) return mediaTypes.ociIndex;
  if (body.config !== undefined) return mediaTypes.ociManifest;
  throw new RegistryError('MANIFEST_INVALID', 'manifest of an unsupported type', {
    detail: { reason: 'unsupported media type', mediaType: (base ?? String(declared ?? '')).slice(0, 200) },
  });
}

/**
 * Parses and validates a manifest body. Throws MANIFEST_INVALID (with the
 * reason in `detail`) when it is not JSON, of an unsupported type, or any
 * descriptor in it is malformed.
 */
export function parseManifest(body: Uint8Array, contentType?: string): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch {
    throw invalid('not JSON');
  }
  if (!isObject(json)) throw invalid('not a JSON object');
  const mediaType = mediaTypeOf(contentType, json);
  const parsed: ParsedManifest = { mediaType, manifests: [], blobs: [] };
  if (isIndexMediaType(mediaType)) {
    if (!Array.isArray(json.manifests)) throw invalid('an index without manifests');
    parsed.manifests = parseList(json.manifests, 'manifests');
  } else {
    parsed.blobs = [parseDescriptor(json.config, 'config'), ...parseList(json.layers, 'layers')];
  }
  if (json.subject !== undefined) parsed.subject = parseDescriptor(json.subject, 'subject');
  const artifactType = optionalString(json.artifactType, 'artifactType');
  if (artifactType !== undefined) parsed.artifactType = artifactType;
  return parsed;
}

/** The child a client that cannot take an index gets: linux/amd64 when present, else the first. */
export function defaultPlatformChild(manifest: ParsedManifest): Descriptor | undefined {
  return manifest.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64') ?? manifest.manifests[0];
}
