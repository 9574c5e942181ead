/**
 * The on-disk layout of a cache directory:
 *
 *   <cache dir>/
 *   ├── blobs/
 *   │   └── sha256/
 *   │       └── ab/
 *   │           └── abcdef…               verified content: layers, configs and manifest bytes
 *   ├── manifests/
 *   │   └── sha256/ab/abcdef….json        {mediaType, size} for blobs that are manifests
 *   ├── repositories/
 *   │   └── <upstream host>/              e.g. registry-1.docker.io, 127.0.0.1_5000
 *   │       └── library/nginx/
 *   │           ├── _tags/1.27.json       {digest, mediaType, size, fetchedAt}
 *   │           ├── _relayed/<sha256>.json   last tag list / referrers answer (stale-if-error)
 *   │           └── _manifests/sha256-abcdef…   empty link: this repository holds that manifest
 *   └── ingest/
 *       └── sha256-abcdef….<random>.partial   fills in progress; swept at start
 *
 * Repository name components start with [a-z0-9], so `_tags` and
 * `_manifests` never collide with a nested repository name. Every path
 * segment comes from a parsed {@link Digest} (the type admits nothing else),
 * a validated name or tag, or a hash.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { digestAlgorithm, digestHex, type Digest } from '../registry/digest.ts';

export interface CacheLayout {
  root: string;
  ingestDir: string;
  blobPath(digest: Digest): string;
  manifestMetaPath(digest: Digest): string;
  repositoriesDir(upstream: string): string;
  tagPath(upstream: string, name: string, tag: string): string;
  manifestLinkPath(upstream: string, name: string, digest: Digest): string;
  manifestLinksDir(upstream: string, name: string): string;
  partialPath(digest: Digest, unique: string): string;
  relayedPath(upstream: string, name: string, key: string): string;
}

function splitDigest(digest: Digest): [string, string] {
  return [digestAlgorithm(digest), digestHex(digest)];
}

/** Upstream hosts become directory names: `127.0.0.1:5000` → `127.0.0.1_5000`. */
export function upstreamDirName(upstream: string): string {
  return upstream.toLowerCase().replace(/[^a-z0-9.-]/g, '_');
}

export function cacheLayout(root: string): CacheLayout {
  const abs = path.resolve(root);
  const ingestDir = path.join(abs, 'ingest');
  return {
    root: abs,
    ingestDir,
    blobPath(digest) {
      const [algorithm, encoded] = splitDigest(digest);
      return path.join(abs, 'blobs', algorithm, encoded.slice(0, 2), encoded);
    },
    manifestMetaPath(digest) {
      const [algorithm, encoded] = splitDigest(digest);
      return path.join(abs, 'manifests', algorithm, encoded.slice(0, 2), `${encoded}.json`);
    },
    repositoriesDir(upstream) {
      return path.join(abs, 'repositories', upstreamDirName(upstream));
    },
    tagPath(upstream, name, tag) {
      return path.join(abs, 'repositories', upstreamDirName(upstream), name, '_tags', `${tag}.json`);
    },
    manifestLinkPath(upstream, name, digest) {
      const [algorithm, encoded] = splitDigest(digest);
      return path.join(abs, 'repositories', upstreamDirName(upstream), name, '_manifests', `${algorithm}-${encoded}`);
    },
    manifestLinksDir(upstream, name) {
      return path.join(abs, 'repositories', upstreamDirName(upstream), name, '_manifests');
    },
    relayedPath(upstream, name, key) {
      return path.join(abs, 'repositories', upstreamDirName(upstream), name, '_relayed', `${createHash('sha256').update(key).digest('hex')}.json`);
    },
    partialPath(digest, unique) {
      const [algorithm, encoded] = splitDigest(digest);
      return path.join(ingestDir, `${algorithm}-${encoded}.${unique}.partial`);
    },
  };
}
