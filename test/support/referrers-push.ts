/**
 * Pushing manifests the way an OCI distribution-spec v1.1 client does
 * ("Pushing Manifests with Subject"): PUT the manifest; when the registry
 * does not answer with `OCI-Subject` (it has no referrers API, like
 * distribution 2.8), maintain the referrers tag schema itself — read the
 * index under `<alg>-<encoded>` of the subject (404: start empty), append a
 * descriptor of the pushed manifest unless it is already listed, and PUT the
 * index back under that tag.
 */
import { MEDIA_TYPES, sha256 } from './images.ts';

export interface PutManifestResult {
  status: number;
  location: string | null;
  /** The `OCI-Subject` response header; null when the registry did not send it. */
  ociSubject: string | null;
  digest: string;
}

/** PUTs manifest bytes under a tag or digest and reports what the registry answered (never throws on a status). */
export async function putManifest(registryUrl: string, repo: string, reference: string, body: Buffer, mediaType: string): Promise<PutManifestResult> {
  const res = await fetch(`${registryUrl}/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'content-type': mediaType },
    body: new Uint8Array(body),
    signal: AbortSignal.timeout(30_000),
  });
  await res.arrayBuffer();
  return {
    status: res.status,
    location: res.headers.get('location'),
    ociSubject: res.headers.get('oci-subject'),
    digest: res.headers.get('docker-content-digest') ?? sha256(body),
  };
}

export interface ReferrerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** The descriptor a client lists for a pushed manifest that has a subject (spec: artifactType, else config.mediaType; annotations copied). */
export function referrerDescriptor(body: Buffer, mediaType: string): ReferrerDescriptor {
  const json = JSON.parse(body.toString('utf8')) as { artifactType?: string; config?: { mediaType?: string }; annotations?: Record<string, string> };
  const descriptor: ReferrerDescriptor = { mediaType, digest: sha256(body), size: body.length };
  const artifactType = json.artifactType ?? (mediaType === MEDIA_TYPES.oci.manifest ? json.config?.mediaType : undefined);
  if (artifactType !== undefined) descriptor.artifactType = artifactType;
  if (json.annotations !== undefined) descriptor.annotations = json.annotations;
  return descriptor;
}

/** The referrers tag schema's tag for a subject digest. */
export function referrersTagOf(subject: string): string {
  const [algorithm = '', encoded = ''] = subject.split(':');
  return `${algorithm.slice(0, 32)}-${encoded.slice(0, 64)}`;
}

/**
 * Pushes a manifest that has a `subject`; when the registry did not take
 * care of the referrers (no `OCI-Subject`), updates the referrers tag.
 * Returns the manifest PUT's answer.
 */
export async function pushManifestWithSubject(
  registryUrl: string,
  repo: string,
  reference: string,
  body: Buffer,
  mediaType: string,
  subject: string,
): Promise<PutManifestResult> {
  const put = await putManifest(registryUrl, repo, reference, body, mediaType);
  if (put.status !== 201 || put.ociSubject !== null) return put;
  const tag = referrersTagOf(subject);
  const res = await fetch(`${registryUrl}/v2/${repo}/manifests/${tag}`, {
    headers: { accept: MEDIA_TYPES.oci.index },
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let manifests: ReferrerDescriptor[] = [];
  if (res.status === 200) {
    const index = JSON.parse(text) as { mediaType?: string; manifests?: ReferrerDescriptor[] };
    if (index.mediaType !== MEDIA_TYPES.oci.index || !Array.isArray(index.manifests)) {
      throw new Error(`referrers tag ${repo}:${tag} holds something other than an image index`);
    }
    manifests = index.manifests;
  } else if (res.status !== 404) {
    throw new Error(`GET referrers tag ${repo}:${tag}: HTTP ${res.status} ${text}`);
  }
  const descriptor = referrerDescriptor(body, mediaType);
  if (manifests.some((m) => m.digest === descriptor.digest)) return put;
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.oci.index, manifests: [...manifests, descriptor] }));
  const tagged = await putManifest(registryUrl, repo, tag, index, MEDIA_TYPES.oci.index);
  if (tagged.status !== 201) throw new Error(`PUT referrers tag ${repo}:${tag}: HTTP ${tagged.status}`);
  return put;
}
