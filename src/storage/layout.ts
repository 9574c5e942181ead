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
 *   │           ├── _manifests/sha256-abcdef…   empty link: this repository holds that manifest
 *   │           └── _layers/sha256-abcdef…      empty link: this repository references that blob (config or layer)
 *   ├── index/
 *   │   ├── lru.snapshot                  eviction order and each blob's logical size (see index-snapshot.ts)
 *   │   ├── pins.json                     pins added through the admin API (see disk-pin-store.ts)
 *   │   ├── clean-shutdown                written by a clean stop, removed at start (see below, and crash-state.ts)
 *   │   └── unverified-before             ms since epoch: blobs older than this are not yet verified
 *   └── ingest/
 *       ├── sha256-abcdef….<pid>-<random>.partial   fills in progress
 *       └── <name>.<pid>-<random>.tmp               small atomic writes in progress
 *
 * Every file under `ingest/` carries the pid of the process writing it: a
 * worker that dies leaves orphans the primary can name (ingest-leftovers.ts), count in the budget
 * and sweep; everything in `ingest/` is swept at start.
 *
 * Crash safety. A blob is flushed (fdatasync) before it is renamed into
 * `blobs/`, and `blobs/<alg>/<shard>/` is flushed after the rename; small
 * files go the same way (atomic-file.ts). A clean stop writes
 * `index/clean-shutdown`; start-up removes it. When start-up finds none (a
 * crash, a kill -9, a power loss) it does not trust the bytes on disk:
 *
 *   1. every blob is stat'ed, and one whose size differs from the size the
 *      index snapshot recorded for it is deleted;
 *   2. `index/unverified-before` is set to a time T (whole seconds) later
 *      than the start and than every blob's mtime. A blob whose mtime is
 *      older than T is *unverified*: the first read hashes it (a whole
 *      sequential read as it goes, holding the last bytes back until the
 *      digest matches; any other read, or a blob of 4 MiB or less, first
 *      hashes the whole file). A match sets the file's mtime to at least
 *      T + 1 s, so every worker and every later start sees it as verified
 *      without asking anyone; a mismatch deletes the file and the reader
 *      gets an error (a broken connection once headers are out), so the
 *      next request fetches the blob again;
 *   3. the cluster primary scrubs every unverified blob in the background
 *      at `cache.scrubRate`, then removes `index/unverified-before`.
 *
 * Workers read `index/unverified-before` when they start (the primary
 * writes it before forking them), so they need no IPC per request.
 *
 * Links are what lets a repository serve content by digest: a manifest or
 * blob is served under a repository only when that repository links it
 * (written when the primary served it under that repository, or a manifest
 * of that repository that the primary served references it); see
 * cache/repository-links.ts.
 *
 * Repository name components start with [a-z0-9], so `_tags`, `_layers` and
 * `_manifests` never collide with a nested repository name. Every path
 * segment comes from a parsed {@link Digest} (the type admits nothing else),
 * a validated name or tag, or a hash.
 */
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { digestAlgorithm, digestHex, type Digest } from '../registry/digest.ts';

export interface CacheLayout {
  root: string;
  ingestDir: string;
  indexDir: string;
  /** Present only between a clean stop and the next start. */
  cleanShutdownPath: string;
  /** Holds the time before which blobs are unverified (absent: every blob is verified). */
  unverifiedBeforePath: string;
  /** Pins added through the admin API (a JSON array of references). */
  pinsPath: string;
  /** Every upstream's repositories (tags, links, relayed answers). */
  repositoriesRoot: string;
  blobPath(digest: Digest): string;
  manifestMetaPath(digest: Digest): string;
  repositoriesDir(upstream: string): string;
  tagPath(upstream: string, name: string, tag: string): string;
  manifestLinkPath(upstream: string, name: string, digest: Digest): string;
  manifestLinksDir(upstream: string, name: string): string;
  blobLinkPath(upstream: string, name: string, digest: Digest): string;
  partialPath(digest: Digest, unique: string): string;
  relayedPath(upstream: string, name: string, key: string): string;
}

/** The unique part of a temp file's name: the writer's pid and random hex. */
export function writerTag(pid: number = process.pid): string {
  return `${pid}-${randomBytes(6).toString('hex')}`;
}

/** The pid that wrote a file in `ingest/` (`….<pid>-<hex>.partial|.tmp`), if its name says. */
export function writerPid(fileName: string): number | undefined {
  const match = /\.(\d+)-[0-9a-f]+\.(?:partial|tmp)$/.exec(fileName);
  return match ? Number(match[1]) : undefined;
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
  const indexDir = path.join(abs, 'index');
  return {
    root: abs,
    ingestDir,
    indexDir,
    cleanShutdownPath: path.join(indexDir, 'clean-shutdown'),
    unverifiedBeforePath: path.join(indexDir, 'unverified-before'),
    pinsPath: path.join(indexDir, 'pins.json'),
    repositoriesRoot: path.join(abs, 'repositories'),
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
    blobLinkPath(upstream, name, digest) {
      const [algorithm, encoded] = splitDigest(digest);
      return path.join(abs, 'repositories', upstreamDirName(upstream), name, '_layers', `${algorithm}-${encoded}`);
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
