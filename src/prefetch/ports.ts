/**
 * The contracts of prefetch: what a run needs from the rest of the node.
 *
 *   job config ──JobImageSource──▶ ImageRef[] ──RunExecutor──▶ ReplicaWarmClient ──▶ replica's ImageWarmer
 *                                       │                                   (peer endpoint, HMAC)
 *                                   RunStore (etcd, fenced; memory standalone)
 *
 * - `ImageWarmer` runs in a worker, with the node's own services: the warm is
 *   an ordinary pull whose bodies are drained, so single flight, peer fill,
 *   verification and the disk budget all apply.
 * - `ReplicaWarmClient` asks one replica (this one included) to warm one
 *   image, over `POST /api/v0/peer/warm` signed like every peer request.
 * - `JobImageSource` turns a job's patterns into image references, reading
 *   the primary's `_catalog` and `tags/list` (paged) only when a pattern
 *   needs them.
 */
import type { PrefetchJobConfig } from '../config/types.ts';

/** One image to warm: a tag or digest of a repository on a configured primary. */
export interface ImageRef {
  /** The primary's host (`PrimaryNames.host`), e.g. `registry-1.docker.io` or `ghcr.io`. */
  upstream: string;
  /** Repository as the primary names it (Docker Hub: with `library/`). */
  repository: string;
  /** A tag, or a digest `sha256:...`. */
  reference: string;
}

/** `upstream/repository:tag` or `upstream/repository@digest`, for logs and progress lines. */
export function formatImageRef(ref: ImageRef): string {
  const separator = ref.reference.includes(':') ? '@' : ':';
  return `${ref.upstream}/${ref.repository}${separator}${ref.reference}`;
}

export interface WarmProgress {
  image: string;
  blobsDone: number;
  /** Known once the manifests are read; 0 before. */
  blobsTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface WarmResult {
  image: string;
  ok: boolean;
  /** Manifest digest the reference resolved to (when it did). */
  digest: string | undefined;
  /** Blobs (layers and configs of every selected platform) and their bytes. */
  blobs: number;
  bytes: number;
  /** Of those, already on this replica's disk before the warm. */
  cachedBlobs: number;
  /** Why it failed (one line, no credentials); undefined when ok. */
  error: string | undefined;
  /** Set (with `ok`) when nothing was to be warmed: an index none of whose platforms is selected. */
  skipped?: string;
}

export interface WarmOptions {
  /** Only these platforms of an index (`os/arch[/variant]`); empty = all. */
  platforms: readonly string[];
  signal: AbortSignal;
  onProgress?: (progress: WarmProgress) => void;
}

/** Warms one image on this replica (runs in a worker). Never throws for the image's own failures: they are in the result. */
export interface ImageWarmer {
  warm(ref: ImageRef, options: WarmOptions): Promise<WarmResult>;
}

/** A replica a run can send work to. */
export interface ReplicaTarget {
  id: string;
  /** Base URL peers reach it at (its advertise URL). */
  url: string;
}

/** Asks one replica to warm one image (`POST /api/v0/peer/warm`). Throws only when the replica cannot be reached or answers garbage. */
export interface ReplicaWarmClient {
  warm(replica: ReplicaTarget, ref: ImageRef, options: WarmOptions): Promise<WarmResult>;
}

/** Resolves when a job may send its next request to the primary (its `requestsPerSecond`). */
export type Pace = () => Promise<void>;

/** Expands a job's patterns to the images it selects right now (paged catalog and tag lists; `updatedWithinDays` applied). */
export interface JobImageSource {
  /** `pace` is awaited before every request to the primary. */
  expand(job: PrefetchJobConfig, signal: AbortSignal, pace?: Pace): Promise<ImageRef[]>;
}

/** Counts of one run, summed over its images. */
export interface RunCounts {
  /** Images the run selected. */
  images: number;
  /** Images warmed (all their blobs on the target replicas). */
  warmed: number;
  /** Images left out (e.g. older than `updatedWithinDays`, or no selected platform). */
  skipped: number;
  failed: number;
  blobs: number;
  /** Bytes of the warmed images' blobs. */
  bytes: number;
}

/**
 * A job as the admin API (`GET /api/v0/prefetch/jobs` → `{"jobs": [...]}`)
 * and the status page show it: the same from any replica.
 */
export interface PrefetchJobStatus {
  name: string;
  schedule: string;
  timezone: string;
  upstream: string;
  /** ISO 8601; undefined when nothing schedules it (e.g. a replica that is not the leader does not know). */
  nextRunAt: string | undefined;
  lastRun:
    | {
        runId: string;
        /** ISO 8601. */
        startedAt: string;
        finishedAt: string | undefined;
        /** `partial`: finished with some images failed; `failed`: the run itself failed (e.g. the catalog could not be read). */
        result: 'running' | 'succeeded' | 'partial' | 'failed';
        counts: RunCounts;
        /** First errors (bounded), one line each, no credentials. */
        errors: string[];
      }
    | undefined;
}

/**
 * What expanding a job needs of a primary (upstream/registry-catalog.ts):
 * its repositories and a repository's tags, paged and bounded, and when an
 * image was built. Every call rejects with the primary's answer as an
 * UpstreamError (cache/ports.ts), e.g. UPSTREAM_UNAUTHORIZED for a
 * `_catalog` the primary does not open to us.
 */
export interface RegistryCatalog {
  /** `pace`, here and below, is awaited before every request to the primary (each page, each manifest and config). */
  listRepositories(upstream: string, signal: AbortSignal, pace?: Pace): AsyncIterable<string>;
  listTags(upstream: string, repository: string, signal: AbortSignal, pace?: Pace): AsyncIterable<string>;
  /**
   * The image config's `created` (for an index: of its first child on one
   * of `platforms`, any platform when empty); undefined when the config has
   * none or it is not a date.
   */
  imageCreated(ref: ImageRef, platforms: readonly string[], signal: AbortSignal, pace?: Pace): Promise<Date | undefined>;
}
