/**
 * The ports the cache core depends on. Adapters in storage/, upstream/ and
 * coordination/ implement them; only process/ wires concrete ones in.
 */
import type { Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Digest } from '../registry/digest.ts';

/** Time, injected wherever TTL or LRU logic needs it. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

// ---------------------------------------------------------------------------
// Upstream (the primary registry)
// ---------------------------------------------------------------------------

/**
 * Stable failure codes of an upstream call. The contract of every Upstream
 * method: it resolves with a 2xx answer or rejects with an UpstreamError
 * carrying one of these codes (never a raw undici error).
 */
export type UpstreamErrorCode =
  | 'UPSTREAM_NOT_FOUND' // 404
  | 'UPSTREAM_UNAUTHORIZED' // 401 after the token/basic flow was tried
  | 'UPSTREAM_DENIED' // 403
  | 'UPSTREAM_RATE_LIMITED' // 429
  | 'UPSTREAM_SERVER_ERROR' // 5xx
  | 'UPSTREAM_BAD_RESPONSE' // unexpected status or malformed answer
  | 'UPSTREAM_TIMEOUT' // connect, headers or body-idle timeout, or the caller's deadline
  | 'UPSTREAM_UNREACHABLE' // connection refused/reset, DNS, TLS failure
  | 'UPSTREAM_ABORTED' // the caller's signal aborted
  | 'UPSTREAM_BUSY'; // this node's cap on concurrent requests to the primary is full (queue included)

export class UpstreamError extends Error {
  readonly code: UpstreamErrorCode;
  readonly status: number | undefined;
  /** Seconds from a Retry-After header, when the primary sent one. */
  readonly retryAfter: number | undefined;
  /**
   * What went wrong, for people: "connection refused (ECONNREFUSED)",
   * "DNS lookup failed (ENOTFOUND)", "the primary answered 503". Safe to show
   * to clients and to log: never a URL, credential or token.
   */
  readonly reason: string | undefined;

  constructor(
    code: UpstreamErrorCode,
    message: string,
    options: { status?: number; retryAfter?: number; cause?: unknown; reason?: string } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'UpstreamError';
    this.code = code;
    this.status = options.status;
    this.retryAfter = options.retryAfter;
    this.reason = options.reason;
  }
}

export function isUpstreamError(err: unknown): err is UpstreamError {
  return err instanceof UpstreamError;
}

/** Failures after which the last known tag answer may be served (stale-if-error). */
export function isUpstreamOutage(err: unknown): boolean {
  return (
    isUpstreamError(err) &&
    (err.code === 'UPSTREAM_TIMEOUT' ||
      err.code === 'UPSTREAM_UNREACHABLE' ||
      err.code === 'UPSTREAM_SERVER_ERROR' ||
      err.code === 'UPSTREAM_RATE_LIMITED' ||
      err.code === 'UPSTREAM_BUSY' ||
      err.code === 'UPSTREAM_BAD_RESPONSE')
  );
}

export interface ManifestHead {
  /** From Docker-Content-Digest; undefined when the primary did not send it. */
  digest: string | undefined;
  mediaType: string;
  size: number | undefined;
}

export interface ManifestResponse {
  body: Buffer;
  mediaType: string;
  /** From Docker-Content-Digest; the caller verifies it against the body. */
  digest: string | undefined;
}

export interface BlobResponse {
  /** The blob's total size, when the primary sent it. */
  size: number | undefined;
  /** Offset of the first body byte: the requested start when the primary honoured the Range, else 0. */
  offset: number;
  /** The body; the caller must consume or destroy it. */
  body: Readable;
}

/**
 * Destroys a body nobody will read (any more). Destroying an unfinished body
 * (undici's, a stream in flight) emits an `'error'`, which would be an
 * uncaught exception without a listener: one is added first.
 */
export function destroyBody(body: Readable): void {
  if (body.destroyed) return;
  body.on('error', () => undefined);
  body.destroy();
}

export interface ReferrersResponse {
  body: Buffer;
  mediaType: string;
}

/**
 * One primary registry. `repo` is the repository name as the primary knows
 * it (already normalised, e.g. `library/nginx` for Docker Hub).
 */
export interface Upstream {
  /** The registry host this upstream is known by (e.g. `registry-1.docker.io`). */
  readonly host: string;
  headManifest(repo: string, reference: string, signal: AbortSignal): Promise<ManifestHead>;
  /** `maxBytes`: a body larger than this is refused with UPSTREAM_BAD_RESPONSE. */
  getManifest(repo: string, reference: string, maxBytes: number, signal: AbortSignal): Promise<ManifestResponse>;
  headBlob(repo: string, digest: string, signal: AbortSignal): Promise<{ size: number | undefined }>;
  /**
   * Follows redirects to blob storage/CDNs without forwarding Authorization.
   * `start` asks for the bytes from that offset on (Range); check `offset`.
   */
  getBlob(repo: string, digest: string, signal: AbortSignal, options?: { start?: number }): Promise<BlobResponse>;
  /** The whole tag list (following the primary's `Link` pagination, bounded). */
  listTags(repo: string, signal: AbortSignal): Promise<string[]>;
  getReferrers(repo: string, digest: string, artifactType: string | undefined, signal: AbortSignal): Promise<ReferrersResponse>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Local storage
// ---------------------------------------------------------------------------

/** A verified blob opened for reading; the descriptor stays valid even if the file is unlinked. */
export interface OpenBlob {
  readonly size: number;
  /** Reads up to `length` bytes at `position` into `buffer`; 0 at the end. */
  read(buffer: Buffer, position: number, length: number): Promise<number>;
  /** Reads the whole blob into memory (small blobs and manifests only). */
  readAll(): Promise<Buffer>;
  close(): Promise<void>;
  /**
   * Announces that the blob will be read whole, in order, from byte 0. A
   * blob not yet verified then hashes as it is read (the read that returns
   * the last bytes waits for the digest check); without it, the first read
   * of such a blob verifies the whole file first.
   */
  willReadWhole?(): void;
}

/** A fill in progress: bytes are appended, then verified and published atomically. */
export interface BlobIngest {
  /** The file followers tail while the fill runs. */
  readonly partialPath: string;
  /** Bytes in the file so far (queued bytes not included). */
  readonly bytesWritten: number;
  /** Queues a chunk; waits only when too much is queued. Rejects once a write failed. */
  write(chunk: Uint8Array): Promise<void>;
  /** A copy of the running hash of every byte passed to write() so far (the fill's fan-out keeps one per chunk). */
  hashSoFar(): Hash;
  /**
   * Verifies size and digest, then makes the file durable and renames it
   * into place; resolves to the bytes the file takes on disk. Rejects (and
   * discards) on mismatch. `onVerified` is called once the bytes passed to
   * write() are known to be the blob — before they are durable, so readers
   * of those bytes need not wait for the disk.
   */
  commit(onVerified?: () => void): Promise<number>;
  /** Discards the partial file. Safe to call more than once and after commit. */
  abort(): Promise<void>;
}

/** Content-addressed blob storage: blobs and manifest bytes, keyed by digest. */
export interface BlobStore {
  stat(digest: Digest): Promise<{ size: number } | undefined>;
  open(digest: Digest): Promise<OpenBlob | undefined>;
  /** Writes small verified content (manifests) atomically; resolves to the bytes it takes on disk. */
  put(digest: Digest, data: Uint8Array): Promise<number>;
  /** Deletes a blob (and its manifest metadata); readers that have it open keep reading. */
  remove(digest: Digest): Promise<void>;
  /** `onProgress` is told how many bytes are in the partial file, as they land. */
  beginIngest(digest: Digest, expectedSize: number | undefined, onProgress?: (bytesInFile: number) => void): Promise<BlobIngest>;
  /** Opens a partial file by path for tailing; undefined when it is gone. */
  openPartial(partialPath: string): Promise<PartialFile | undefined>;
  /** Removes the partial file of a fill whose leader is gone; readers that have it open keep reading. */
  discardPartial(partialPath: string): Promise<void>;
  /** Removes leftover temp files from an earlier run; returns how many. */
  sweep(): Promise<number>;
}

export interface PartialFile {
  /** Reads up to `length` bytes at `position`; 0 means no more bytes yet. */
  read(buffer: Buffer, position: number, length: number): Promise<number>;
  close(): Promise<void>;
}

export interface ManifestMeta {
  mediaType: string;
  size: number;
}

export interface TagRecord {
  digest: Digest;
  mediaType: string;
  size: number;
  /** When the primary last confirmed this answer (ms since epoch). */
  fetchedAt: number;
}

export type LinkKind = 'manifest' | 'blob';

/** Manifest media types, tag answers and which repositories the cache holds. */
export interface MetadataStore {
  getManifestMeta(digest: Digest): Promise<ManifestMeta | undefined>;
  putManifestMeta(digest: Digest, meta: ManifestMeta): Promise<void>;
  getTag(upstream: string, name: string, tag: string): Promise<TagRecord | undefined>;
  putTag(upstream: string, name: string, tag: string, record: TagRecord): Promise<void>;
  /** Records that `name` holds the manifest `digest` (for the catalog, repository purges, and serving it by digest). */
  linkManifest(upstream: string, name: string, digest: Digest): Promise<void>;
  /** Records that `name` references the blob `digest` (a config or layer): it may be served under that repository. */
  linkBlob(upstream: string, name: string, digest: Digest): Promise<void>;
  /** Whether `name` links that manifest or blob. */
  hasLink(upstream: string, name: string, kind: LinkKind, digest: Digest): Promise<boolean>;
  /** Cached repository names of one upstream, sorted. */
  listRepositories(upstream: string): Promise<string[]>;
  /** Manifest digests a repository holds (its links). */
  listManifestLinks(upstream: string, name: string): Promise<Digest[]>;
  /** Forgets a repository's tags, links and relayed answers (its blobs are the eviction service's business). */
  removeRepository(upstream: string, name: string): Promise<void>;
  /** Forgets every repository of every upstream (a purge of everything). */
  removeAllRepositories(): Promise<void>;
  /** Small relayed answers (tag lists, referrers) kept for stale-if-error across workers and restarts. */
  getRelayed(upstream: string, name: string, key: string): Promise<unknown | undefined>;
  putRelayed(upstream: string, name: string, key: string, value: unknown): Promise<void>;
}

// ---------------------------------------------------------------------------
// The per-host eviction index (cluster primary): what its policy executes
// ---------------------------------------------------------------------------

export type EntryKind = 'blob' | 'manifest';

/** One cached blob or manifest as the eviction index counts it. */
export interface IndexEntry {
  digest: Digest;
  /** Bytes the file takes on disk (what the budget counts). */
  bytes: number;
  kind: EntryKind;
  /** Last hit, ms since epoch. */
  lastAccess: number;
  /** The content's length in bytes, when known: a file of another size is torn. */
  size?: number;
}

/** The index as persisted, reconciled with the files really there. */
export interface LoadedIndex {
  /** Oldest access first, ready to insert in order. */
  entries: IndexEntry[];
  fromSnapshot: number;
  scanned: number;
  /** Files whose size differs from the size the snapshot recorded (only when sizes were checked). */
  torn: Digest[];
  /** The newest blob mtime seen (0 when nothing was stat'ed). */
  newestMtimeMs: number;
}

/** Where the eviction index is kept across restarts. */
export interface IndexPersistence {
  /** `checkSizes`: look at every file and report as torn those whose size is not the recorded one (after an unclean shutdown). */
  load(options: { checkSizes: boolean }): Promise<LoadedIndex>;
  /** Replaces what is persisted, atomically; entries least recently used first (read before the first await). */
  save(entries: Iterable<IndexEntry>): Promise<void>;
}

/** How the last run ended, and which cached blobs that leaves unverified; each write is durable. */
export interface CrashMarkers {
  /** Removes the clean-shutdown marker; true when it was there (the last run stopped cleanly). */
  consumeCleanShutdown(): Promise<boolean>;
  /** Written last by a clean stop. */
  recordCleanShutdown(): Promise<void>;
  /** The time (ms since epoch) before which blobs are unverified; undefined when every blob is verified. */
  readUnverifiedBefore(): Promise<number | undefined>;
  writeUnverifiedBefore(ms: number): Promise<void>;
  clearUnverifiedBefore(): Promise<void>;
}

/** The cached files evictions and purges delete. */
export interface BlobFiles {
  /** A cached blob's file as it is now, without reading it: bytes it takes on disk and its length; undefined when absent. */
  inspect(digest: Digest): Promise<{ bytes: number; size: number } | undefined>;
  /** Deletes a blob (and its manifest metadata); readers that have it open keep reading. */
  remove(digest: Digest): Promise<void>;
}

/** A file a writer left where fills and atomic writes are in progress. */
export interface LeftoverFile {
  path: string;
  /** Bytes it takes on disk. */
  bytes: number;
  mtimeMs: number;
}

/** The partial files of writers that died (the budget counts them until they are swept). */
export interface IngestLeftovers {
  /** Every file the process `pid` was writing. */
  writtenBy(pid: number): Promise<LeftoverFile[]>;
  /** The file as it is now; undefined when it is gone. */
  inspect(path: string): Promise<LeftoverFile | undefined>;
  remove(path: string): Promise<void>;
}

/** Pins added through the admin API, kept across restarts. */
export interface PinStore {
  /** The saved references; none when nothing readable was saved. */
  load(): Promise<string[]>;
  save(references: readonly string[]): Promise<void>;
}

/** What a scrub learns about one blob. */
export interface BlobCheckResult {
  result: 'ok' | 'corrupt' | 'missing' | 'skipped';
  /** Bytes hashed. */
  bytes: number;
}

/** Hashes cached blobs against their digests (a scrub); a corrupt one is deleted and reported by the store. */
export interface BlobVerifier {
  /** Only an unverified blob, or every blob with `all`; `throttle` is called after each chunk read. */
  verify(digest: Digest, options: { all: boolean; throttle: (bytes: number) => Promise<void>; signal: AbortSignal }): Promise<BlobCheckResult>;
}

export type EvictionReason = 'budget' | 'retention' | 'purge';

/** What the eviction service reports; observability/ turns it into metrics. */
export interface IndexObserver {
  budget(maxBytes: number): void;
  usage(bytes: number, entries: number): void;
  evicted(reason: EvictionReason, bytes: number): void;
  /** Cached files deleted at start-up because their size was not the recorded one. */
  tornFiles(count: number): void;
}

export const noopIndexObserver: IndexObserver = {
  budget: () => undefined,
  usage: () => undefined,
  evicted: () => undefined,
  tornFiles: () => undefined,
};

// ---------------------------------------------------------------------------
// Fill coordination (one upstream fetch per blob)
// ---------------------------------------------------------------------------

/** A fill failure as it crosses processes: an OCI error code (or one of {@link fillRecoveries}), a message and the OCI detail (JSON). */
export interface FillError {
  code: string;
  message: string;
  detail?: unknown;
}

/**
 * Fill failures that are not the primary's answer, and how a reader of the
 * fill carries on from where it is:
 * - `LEADER_GONE` — the leader's worker exited, or its fill broke off without
 *   an outcome (its store threw): take over, i.e. lead or join a new fill;
 * - `PEER_MISMATCH` — bytes from another replica did not verify (the hint that
 *   it holds the blob is dropped): take over, the new fill asks elsewhere;
 * - `CACHE_WRITE_FAILED` — the local disk failed mid-fill: continue from the primary;
 * - `PASSTHROUGH` — the leader streamed the blob through uncached: fetch it from the primary.
 * Any other code is the primary's answer (404, denied, timeout, bytes that do
 * not match the digest) and readers report it.
 */
export const fillRecoveries = {
  LEADER_GONE: 'take-over',
  PEER_MISMATCH: 'take-over',
  CACHE_WRITE_FAILED: 'from-primary',
  PASSTHROUGH: 'from-primary',
} as const satisfies Record<string, 'take-over' | 'from-primary'>;

export type FillRecovery = (typeof fillRecoveries)[keyof typeof fillRecoveries];

export function fillRecovery(error: FillError): FillRecovery | undefined {
  return Object.hasOwn(fillRecoveries, error.code) ? fillRecoveries[error.code as keyof typeof fillRecoveries] : undefined;
}

export type FillState =
  | { status: 'pending' } // the leader holds the lease and waits for the primary's headers
  | { status: 'running'; size: number | undefined; partialPath: string; bytes: number }
  | { status: 'done'; size: number; partialPath: string; bytes: number }
  /**
   * Not cached: the leader's worker streams the blob through and still holds
   * its first bytes; the host's other workers read it from that worker's
   * sibling endpoint at `url` (fetched from the primary once for the host).
   * Ends in `failed` (PASSTHROUGH) once its first bytes are gone.
   */
  | { status: 'streaming'; size: number | undefined; url: string }
  | { status: 'failed'; error: FillError };

/** What a follower holds: the state of someone else's fill, and a way to wait for it to move. */
export interface FillWatch {
  state(): FillState;
  /** Resolves at the next change of state or progress, or after `timeoutMs`, whichever comes first. */
  changed(timeoutMs: number): Promise<void>;
  close(): void;
}

/**
 * What the leader holds while it fetches a blob from the primary. A lease is
 * a scoped resource: the leader runs its fill through `runLeased`
 * (cache/lease-scope.ts), which fails the lease whenever the fill throws or
 * ends without settling it.
 */
export interface FillLease {
  started(size: number | undefined, partialPath: string): void;
  progress(bytes: number): void;
  succeed(size: number): void;
  fail(error: FillError): void;
  /** Streams through uncached, joinable at `url` (then fails with PASSTHROUGH); see the `streaming` state. */
  streaming(size: number | undefined, url: string): void;
  /** A watch on this very fill, for the leader's own client. */
  watch(): FillWatch;
}

export type FillRole = { role: 'leader'; lease: FillLease } | { role: 'follower'; watch: FillWatch };

/**
 * Merges concurrent fills of one digest: the first caller leads (fetches),
 * everyone else follows. Scope: one process (memory) or one host (through the
 * cluster primary); across replicas, the cluster fill lock ({@link PeerDirectory}) does it.
 */
export interface FillCoordinator {
  acquire(digest: Digest): Promise<FillRole>;
  /** A watch on the fill of `digest` in progress, if there is one; never starts a fill (peer requests follow, they never lead). */
  follow(digest: Digest): Promise<FillWatch | undefined>;
}

// ---------------------------------------------------------------------------
// The replica set: peer fill, the cluster fill lock, the shared tag cache
// ---------------------------------------------------------------------------

/** Another replica of the set, as the shared state names it. */
export interface PeerRef {
  id: string;
  /** Its advertise URL (`OUTPOST_ADVERTISE_URL`). */
  url: string;
}

/** The cluster-wide fill lock of one digest, held by this replica while it fetches from the primary. */
export interface ClusterFillLock {
  /**
   * Ends the fill: when `cached`, this replica is announced as a holder
   * before the lock goes, so nobody finds neither. Never throws.
   */
  release(cached: boolean): void;
}

export type FillLockResult =
  /** This replica fetches from the primary, for the whole replica set. */
  | { kind: 'acquired'; lock: ClusterFillLock }
  /** Another replica fetches it now; `owner` undefined when its address is not known. */
  | { kind: 'held'; owner: PeerRef | undefined }
  /** A replica announced the blob since the holders were looked at: look again. */
  | { kind: 'announced' }
  /** No shared state now (Redis down): per-node behaviour. */
  | { kind: 'unavailable' };

/**
 * What the replica set knows about blobs (Redis, reached through the cluster
 * primary). Hints only: content from a peer is verified like content from
 * the primary. Every call is bounded by a short deadline; a rejection means
 * "unknown now" and the caller behaves per node at once.
 */
export interface PeerDirectory {
  /** Replicas other than this one that announced the digest (blobs and manifests). */
  holders(digest: Digest): Promise<PeerRef[]>;
  /** A hint proved false (the peer answered 404, or sent bytes that do not verify): drop it. */
  notHeld(digest: Digest, peerId: string): void;
  /** Takes the cluster fill lock of `digest`, or says who holds it. */
  lock(digest: Digest): Promise<FillLockResult>;
  /** The id of the replica holding the fill lock now; undefined when nobody does. */
  lockOwner(digest: Digest): Promise<string | undefined>;
}

/**
 * Failure codes of a peer request. The contract of {@link PeerBlobs}: it
 * resolves with a 200/206 answer or rejects with a PeerError.
 */
export type PeerErrorCode =
  | 'PEER_NOT_FOUND' // 404: the peer holds neither the blob nor a fill of it
  | 'PEER_UNREACHABLE' // connection refused or reset, DNS
  | 'PEER_TIMEOUT' // no response headers within the bound
  | 'PEER_REFUSED' // 401/403: another secret
  | 'PEER_BAD_RESPONSE' // any other status, or a malformed answer
  | 'PEER_ABORTED'; // the caller's signal aborted

export class PeerError extends Error {
  readonly code: PeerErrorCode;
  constructor(code: PeerErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'PeerError';
    this.code = code;
  }
}

export interface PeerBlobResponse extends BlobResponse {
  /** The media type the peer stored with the content (manifests), when it sent one. */
  mediaType: string | undefined;
}

/**
 * Blobs (and manifest bytes) from another replica's peer endpoint, answered
 * only from its disk or its fill in progress. The body is the caller's to
 * consume or destroy; a transfer that breaks off is an 'error' on it.
 */
export interface PeerBlobs {
  /**
   * `start` asks for the bytes from that offset on (check `offset`);
   * `startTimeoutMs` bounds connecting and waiting for the response headers;
   * `idleTimeoutMs`, the longest gap between two body chunks (default: the
   * primary's, for a peer that relays what it gets from the primary).
   */
  get(peer: PeerRef, digest: Digest, signal: AbortSignal, options: { start?: number; startTimeoutMs: number; idleTimeoutMs?: number }): Promise<PeerBlobResponse>;
}

/**
 * Tag answers shared by the replica set: one replica's revalidation serves
 * the others within the tag TTL. Bounded: `get` resolves undefined when the
 * answer is unknown or the shared state unavailable.
 */
export interface SharedTags {
  get(upstream: string, name: string, tag: string): Promise<TagRecord | undefined>;
  put(upstream: string, name: string, tag: string, record: TagRecord): void;
}

// ---------------------------------------------------------------------------
// Observation
// ---------------------------------------------------------------------------

export type CacheKind = 'blob' | 'manifest' | 'tag' | 'tags_list' | 'referrers';
/** How one request to a peer ended: ok, or why the next source was used. */
export type PeerFillResult = 'ok' | 'not_found' | 'unreachable' | 'timeout' | 'refused' | 'broken' | 'mismatch' | 'error';
export type CacheResult = 'hit' | 'miss' | 'coalesced' | 'revalidated' | 'stale' | 'passthrough';

/** What the core reports; observability/ turns it into metrics. */
export interface CacheObserver {
  cacheResult(kind: CacheKind, result: CacheResult): void;
  staleServed(kind: CacheKind, reason: string): void;
  fillStarted(): void;
  /** `bytes`: what the fill fetched from the primary (bytes from peers are {@link peerBytes}). */
  fillEnded(outcome: 'ok' | 'failed', bytes: number): void;
  /** A request to a peer (a holder, or the replica filling the blob) ended. */
  peerFill(result: PeerFillResult): void;
  /** Bytes a fill received from a peer. */
  peerBytes(bytes: number): void;
  /** Another replica held the cluster fill lock: this fill followed it. */
  fillLockWait(): void;
  /**
   * Content from the primary failed verification (DIGEST_MISMATCH,
   * SIZE_MISMATCH). Failed upstream calls are not reported here: the
   * Upstream port's instrumentation counts each one once.
   */
  upstreamFailure(code: string): void;
  /** The cache could not be written (disk full, read-only, permissions): content streams through uncached. */
  cacheWriteFailed(code: string): void;
  /** A reader of a fill this process runs was fed from memory ('joined'), or left the window ('fell_behind'). */
  fanOut?(event: 'joined' | 'fell_behind'): void;
}

/**
 * What an admin purge removed, as every serving process must forget it from
 * memory: everything, or some digests and the repositories they came from.
 */
export type PurgeScope = { kind: 'all' } | { kind: 'some'; digests: Digest[]; repositories: { upstream: string; name: string }[] };

/** Whether a memory key `<upstream>/<name>…` (tag, link, tag list, referrers) belongs to one of the purged repositories. */
export function keyInRepositories(key: string, repositories: readonly { upstream: string; name: string }[]): boolean {
  return repositories.some(({ upstream, name }) => {
    const prefix = `${upstream}/${name}`;
    if (!key.startsWith(prefix)) return false;
    const next = key.charAt(prefix.length);
    return next === '' || next === ':' || next === '@' || next === '?';
  });
}

/** What the core tells the per-host eviction index (touches and additions, batched by the adapter). */
export interface CacheIndexReporter {
  touched(digest: Digest): void;
  /** `size`: the content's length in bytes, recorded so a torn file is recognised after a crash. */
  added(digest: Digest, diskBytes: number, kind: EntryKind, size?: number): void;
}

export const noopIndexReporter: CacheIndexReporter = { touched: () => undefined, added: () => undefined };

/** Local write failures after which content is streamed through uncached. */
export function isDiskWriteError(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'EIO' || code === 'ENOENT';
}

export const noopObserver: CacheObserver = {
  cacheResult: () => undefined,
  staleServed: () => undefined,
  fillStarted: () => undefined,
  fillEnded: () => undefined,
  peerFill: () => undefined,
  peerBytes: () => undefined,
  fillLockWait: () => undefined,
  upstreamFailure: () => undefined,
  cacheWriteFailed: () => undefined,
};

/** The slice of pino the core uses. */
export interface Logger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}
