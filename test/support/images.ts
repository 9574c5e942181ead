import { createCipheriv, createHash, randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { Credentials } from './htpasswd.ts';

/**
 * Real, small container images built in memory — gzip'd ustar layers, image
 * configs whose rootfs.diff_ids match, OCI and Docker schema 2 manifests,
 * OCI indexes and Docker manifest lists — and pushed to a registry over the
 * distribution HTTP API (monolithic uploads).
 */

export const MEDIA_TYPES = {
  oci: {
    manifest: 'application/vnd.oci.image.manifest.v1+json',
    index: 'application/vnd.oci.image.index.v1+json',
    config: 'application/vnd.oci.image.config.v1+json',
    layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  },
  docker: {
    manifest: 'application/vnd.docker.distribution.manifest.v2+json',
    index: 'application/vnd.docker.distribution.manifest.list.v2+json',
    config: 'application/vnd.docker.container.image.v1+json',
    layer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  },
} as const;

export type ImageFormat = keyof typeof MEDIA_TYPES;

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export interface ImageBlob {
  bytes: Buffer;
  digest: string;
  size: number;
  mediaType: string;
}

export interface Layer {
  /** The gzip-compressed tar, as stored in the registry. */
  bytes: Buffer;
  /** sha256 of `bytes`. */
  digest: string;
  /** sha256 of the uncompressed tar (what goes into the config's rootfs.diff_ids). */
  diffId: string;
  size: number;
}

export interface MakeLayerOptions {
  /** Number of regular files. Default 1. */
  files?: number;
  /** Total content bytes over all files (the compressed layer is a little larger: random bytes do not compress). */
  sizeBytes: number;
  /** Same seed → byte-identical layer. Default: random (a unique layer). */
  seed?: string;
}

/** A real gzip'd ustar archive: a directory and `files` regular files of pseudo-random content. */
export function makeLayer(options: MakeLayerOptions): Layer {
  const files = Math.max(1, options.files ?? 1);
  const seed = options.seed ?? randomUUID();
  const content = randomContent(seed, options.sizeBytes);
  const dir = `outpost-test/${createHash('sha256').update(seed).digest('hex').slice(0, 12)}/`;
  const parts: Buffer[] = [tarHeader('outpost-test/', 0, '5', 0o755), tarHeader(dir, 0, '5', 0o755)];
  const base = Math.floor(options.sizeBytes / files);
  let offset = 0;
  for (let i = 0; i < files; i++) {
    const size = i === files - 1 ? options.sizeBytes - offset : base;
    const body = content.subarray(offset, offset + size);
    offset += size;
    parts.push(tarHeader(`${dir}file-${i}.bin`, size, '0', 0o644), body, Buffer.alloc(padTo512(size)));
  }
  parts.push(Buffer.alloc(1024)); // end-of-archive: two zero blocks
  const tar = Buffer.concat(parts);
  const bytes = gzipSync(tar, { level: 1 });
  return { bytes, digest: sha256(bytes), diffId: sha256(tar), size: bytes.length };
}

function padTo512(n: number): number {
  return (512 - (n % 512)) % 512;
}

/** Deterministic pseudo-random bytes: AES-256-CTR keystream keyed by the seed. */
function randomContent(seed: string, size: number): Buffer {
  const key = createHash('sha256').update(`outpost-test-layer:${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()]);
}

function tarHeader(name: string, size: number, type: '0' | '5', mode: number): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name too long: ${name}`);
  const h = Buffer.alloc(512);
  const put = (offset: number, length: number, value: string): void => {
    h.write(value, offset, length, 'utf8');
  };
  const octal = (offset: number, length: number, value: number): void => {
    put(offset, length, value.toString(8).padStart(length - 1, '0') + '\0');
  };
  put(0, 100, name);
  octal(100, 8, mode);
  octal(108, 8, 0); // uid
  octal(116, 8, 0); // gid
  octal(124, 12, size);
  octal(136, 12, 1_700_000_000); // mtime
  put(148, 8, '        '); // checksum placeholder: 8 spaces
  put(156, 1, type);
  put(257, 6, 'ustar\0');
  put(263, 2, '00');
  put(265, 32, 'root');
  put(297, 32, 'root');
  octal(329, 8, 0); // devmajor
  octal(337, 8, 0); // devminor
  let sum = 0;
  for (const byte of h) sum += byte;
  put(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return h;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Image {
  format: ImageFormat;
  /** The manifest's media type. */
  mediaType: string;
  /** The manifest bytes exactly as pushed. */
  manifest: Buffer;
  /** sha256 of `manifest`. */
  digest: string;
  size: number;
  config: ImageBlob;
  layers: Layer[];
  /** Config and layers with their media types, in push order. */
  blobs: ImageBlob[];
  platform: Platform;
}

export interface MakeImageOptions {
  mediaTypes: ImageFormat;
  layers: readonly Layer[];
  /** Default linux/amd64. */
  platform?: Platform;
  /** Config labels (handy to make two otherwise equal images differ). */
  labels?: Record<string, string>;
}

export function makeImage(options: MakeImageOptions): Image {
  const types = MEDIA_TYPES[options.mediaTypes];
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const created = '2024-01-01T00:00:00Z';
  const configJson = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant === undefined ? {} : { variant: platform.variant }),
    created,
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: ['/bin/sh'],
      ...(options.labels === undefined ? {} : { Labels: options.labels }),
    },
    rootfs: { type: 'layers', diff_ids: options.layers.map((l) => l.diffId) },
    history: options.layers.map((_, i) => ({ created, created_by: `outpost test layer ${i}` })),
  };
  const configBytes = Buffer.from(JSON.stringify(configJson));
  const config: ImageBlob = { bytes: configBytes, digest: sha256(configBytes), size: configBytes.length, mediaType: types.config };
  const layerBlobs: ImageBlob[] = options.layers.map((l) => ({ bytes: l.bytes, digest: l.digest, size: l.size, mediaType: types.layer }));
  const manifestJson = {
    schemaVersion: 2,
    mediaType: types.manifest,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
    layers: layerBlobs.map((b) => ({ mediaType: b.mediaType, digest: b.digest, size: b.size })),
  };
  const manifest = Buffer.from(JSON.stringify(manifestJson, null, 2));
  return {
    format: options.mediaTypes,
    mediaType: types.manifest,
    manifest,
    digest: sha256(manifest),
    size: manifest.length,
    config,
    layers: [...options.layers],
    blobs: [config, ...layerBlobs],
    platform,
  };
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
}

export interface ImageIndex {
  format: ImageFormat;
  mediaType: string;
  /** The index / manifest list bytes exactly as pushed. */
  manifest: Buffer;
  digest: string;
  size: number;
  manifests: Descriptor[];
}

/** An OCI image index or a Docker manifest list over `images`, with their platforms. */
export function makeIndex(images: readonly Image[], format: ImageFormat): ImageIndex {
  const types = MEDIA_TYPES[format];
  const manifests: Descriptor[] = images.map((img) => ({
    mediaType: img.mediaType,
    digest: img.digest,
    size: img.size,
    platform: { ...img.platform },
  }));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: types.index, manifests }, null, 2));
  return { format, mediaType: types.index, manifest, digest: sha256(manifest), size: manifest.length, manifests };
}

// ---------------------------------------------------------------------------
// Pushing over the distribution API

/** Basic credentials (also used at a Bearer challenge's realm), or a getter for a Bearer token per scope. */
export type RegistryAuth = Credentials | { bearer: (scope: string) => string | Promise<string> };

interface Session {
  send(method: string, url: string, init: { headers?: Record<string, string>; body?: Buffer; scope: string }): Promise<Response>;
}

function createSession(auth: RegistryAuth | undefined): Session {
  const authorizations = new Map<string, string>(); // scope → Authorization header value
  const tokenFor = async (challenge: string, scope: string): Promise<string | undefined> => {
    if (auth !== undefined && 'bearer' in auth) return `Bearer ${await auth.bearer(scope)}`;
    const params = parseChallenge(challenge);
    if (params.scheme === 'basic') {
      return auth === undefined ? undefined : `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
    }
    if (params.scheme !== 'bearer' || params['realm'] === undefined) return undefined;
    const tokenUrl = new URL(params['realm']);
    if (params['service'] !== undefined) tokenUrl.searchParams.set('service', params['service']);
    tokenUrl.searchParams.set('scope', scope);
    const headers: Record<string, string> = {};
    if (auth !== undefined) headers['authorization'] = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
    const res = await fetch(tokenUrl, { headers, signal: AbortSignal.timeout(15_000) });
    const body = await res.text();
    if (res.status !== 200) throw new Error(`token request ${tokenUrl.href} answered ${res.status}: ${body}`);
    const json = JSON.parse(body) as { token?: string; access_token?: string };
    const token = json.token ?? json.access_token;
    if (token === undefined) throw new Error(`token response without a token: ${body}`);
    return `Bearer ${token}`;
  };
  return {
    async send(method, url, init) {
      const attempt = (authorization: string | undefined): Promise<Response> =>
        fetch(url, {
          method,
          headers: { ...init.headers, ...(authorization === undefined ? {} : { authorization }) },
          ...(init.body === undefined ? {} : { body: new Uint8Array(init.body) }),
          redirect: 'manual',
          signal: AbortSignal.timeout(60_000),
        });
      const res = await attempt(authorizations.get(init.scope));
      if (res.status !== 401) return res;
      const challenge = res.headers.get('www-authenticate');
      const authorization = challenge === null ? undefined : await tokenFor(challenge, init.scope);
      if (authorization === undefined) return res;
      await res.arrayBuffer();
      authorizations.set(init.scope, authorization);
      return attempt(authorization);
    },
  };
}

/** Parses `Bearer realm="...",service="...",scope="..."` into lower-cased scheme + params. */
export function parseChallenge(header: string): { scheme: string } & Record<string, string | undefined> {
  const space = header.indexOf(' ');
  const scheme = (space === -1 ? header : header.slice(0, space)).toLowerCase();
  const out: { scheme: string } & Record<string, string | undefined> = { scheme };
  const re = /([A-Za-z_]+)="([^"]*)"/g;
  for (let m = re.exec(header); m !== null; m = re.exec(header)) out[m[1]!.toLowerCase()] = m[2]!;
  return out;
}

async function failure(what: string, res: Response): Promise<Error> {
  return new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
}

async function pushBlobWith(session: Session, registryUrl: string, repo: string, blob: ImageBlob): Promise<void> {
  const scope = `repository:${repo}:pull,push`;
  const head = await session.send('HEAD', `${registryUrl}/v2/${repo}/blobs/${blob.digest}`, { scope });
  await head.arrayBuffer();
  if (head.status === 200) return;
  const start = await session.send('POST', `${registryUrl}/v2/${repo}/blobs/uploads/`, { scope });
  if (start.status !== 202) throw await failure(`starting upload of ${blob.digest} to ${repo}`, start);
  await start.arrayBuffer();
  const location = start.headers.get('location');
  if (location === null) throw new Error(`upload start for ${repo} answered 202 without Location`);
  const target = new URL(location, registryUrl);
  target.searchParams.set('digest', blob.digest);
  const put = await session.send('PUT', target.href, {
    scope,
    headers: { 'content-type': 'application/octet-stream' },
    body: blob.bytes,
  });
  if (put.status !== 201) throw await failure(`uploading ${blob.digest} to ${repo}`, put);
  await put.arrayBuffer();
}

async function pushManifestWith(
  session: Session,
  registryUrl: string,
  repo: string,
  reference: string,
  manifest: Buffer,
  mediaType: string,
): Promise<string> {
  const res = await session.send('PUT', `${registryUrl}/v2/${repo}/manifests/${reference}`, {
    scope: `repository:${repo}:pull,push`,
    headers: { 'content-type': mediaType },
    body: manifest,
  });
  if (res.status !== 201) throw await failure(`putting manifest ${repo}:${reference}`, res);
  await res.arrayBuffer();
  const digest = res.headers.get('docker-content-digest') ?? sha256(manifest);
  if (digest !== sha256(manifest)) throw new Error(`registry stored ${repo}:${reference} as ${digest}, expected ${sha256(manifest)}`);
  return digest;
}

/** Pushes one blob (skipped when HEAD says it exists). */
export async function pushBlob(registryUrl: string, repo: string, blob: ImageBlob, auth?: RegistryAuth): Promise<void> {
  await pushBlobWith(createSession(auth), registryUrl, repo, blob);
}

/** PUTs manifest bytes under a tag or digest; returns the digest the registry reports. */
export async function pushManifest(
  registryUrl: string,
  repo: string,
  reference: string,
  manifest: Buffer,
  mediaType: string,
  auth?: RegistryAuth,
): Promise<string> {
  return pushManifestWith(createSession(auth), registryUrl, repo, reference, manifest, mediaType);
}

/** Pushes the image's blobs then its manifest under `tag` (or under its digest when `tag` is undefined). */
export async function pushImage(
  registryUrl: string,
  repo: string,
  tag: string | undefined,
  image: Image,
  auth?: RegistryAuth,
): Promise<{ digest: string }> {
  const session = createSession(auth);
  for (const blob of image.blobs) await pushBlobWith(session, registryUrl, repo, blob);
  const digest = await pushManifestWith(session, registryUrl, repo, tag ?? image.digest, image.manifest, image.mediaType);
  return { digest };
}

/** Pushes every image by digest, then the index / manifest list under `tag`. */
export async function pushIndex(
  registryUrl: string,
  repo: string,
  tag: string,
  index: ImageIndex,
  images: readonly Image[],
  auth?: RegistryAuth,
): Promise<{ digest: string }> {
  const session = createSession(auth);
  for (const image of images) {
    for (const blob of image.blobs) await pushBlobWith(session, registryUrl, repo, blob);
    await pushManifestWith(session, registryUrl, repo, image.digest, image.manifest, image.mediaType);
  }
  const digest = await pushManifestWith(session, registryUrl, repo, tag, index.manifest, index.mediaType);
  return { digest };
}

/** Deletes a manifest by digest (the registry is started with delete enabled). Returns the HTTP status. */
export async function deleteManifest(registryUrl: string, repo: string, digest: string, auth?: RegistryAuth): Promise<number> {
  const res = await createSession(auth).send('DELETE', `${registryUrl}/v2/${repo}/manifests/${digest}`, {
    scope: `repository:${repo}:delete`,
  });
  await res.arrayBuffer();
  return res.status;
}

export interface FetchedManifest {
  status: number;
  mediaType: string | undefined;
  digest: string | undefined;
  bytes: Buffer;
}

/** GETs a manifest accepting every OCI / Docker manifest type. */
export async function fetchManifest(registryUrl: string, repo: string, reference: string, auth?: RegistryAuth): Promise<FetchedManifest> {
  const accept = [MEDIA_TYPES.oci.manifest, MEDIA_TYPES.oci.index, MEDIA_TYPES.docker.manifest, MEDIA_TYPES.docker.index].join(', ');
  const res = await createSession(auth).send('GET', `${registryUrl}/v2/${repo}/manifests/${reference}`, {
    scope: `repository:${repo}:pull`,
    headers: { accept },
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  return {
    status: res.status,
    mediaType: res.headers.get('content-type') ?? undefined,
    digest: res.headers.get('docker-content-digest') ?? undefined,
    bytes,
  };
}
