/**
 * The ports the cache core depends on. Adapters in storage/, upstream/ and
 * coordination/ implement them; only process/ wires concrete ones in.
 */
import type { Readable } from 'node:stream';

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
  | 'UPSTREAM_ABORTED'; // the caller's signal aborted

export class UpstreamError extends Error {
  readonly code: UpstreamErrorCode;
  readonly status: number | undefined;
  /** Seconds from a Retry-After header, when the primary sent one. */
  readonly retryAfter: number | undefined;

  constructor(
    code: UpstreamErrorCode,
    message: string,
    options: { status?: number; retryAfter?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'UpstreamError';
    this.code = code;
    this.status = options.status;
    this.retryAfter = options.retryAfter;
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
  /** Content-Length, when the primary sent one. */
  size: number | undefined;
  /** The body; the caller must consume or destroy it. */
  body: Readable;
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
  /** Follows redirects to blob storage/CDNs without forwarding Authorization. */
  getBlob(repo: string, digest: string, signal: AbortSignal): Promise<BlobResponse>;
  /** The whole tag list (following the primary's `Link` pagination, bounded). */
  listTags(repo: string, signal: AbortSignal): Promise<string[]>;
  getReferrers(repo: string, digest: string, artifactType: string | undefined, signal: AbortSignal): Promise<ReferrersResponse>;
  close(): Promise<void>;
}
