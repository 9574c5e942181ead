/**
 * The leader of a fill: asks its origin for the blob (the primary, or in a
 * replica set a peer replica first: fill-origin.ts), then pumps it into a
 * partial file, and publishes it once size and digest are verified. Each
 * chunk also goes into the fill's in-memory feed (fill-feed.ts), which the
 * readers in this process that keep up — its own client included — read
 * from; readers in other workers, late joiners and slow readers tail the
 * partial file.
 *
 * When the blob may not be cached (larger than the budget, disk full or
 * unwritable) it streams through: verified once, fanned out to every reader
 * in this process through an uncached feed (bounded: a reader that falls
 * behind the window gets its own ranged fetch); while the window holds the
 * first byte, readers in other workers join it through this worker's
 * sibling endpoint and other replicas through the peer endpoint.
 *
 * A fill runs detached from any client — one going away does not stop it
 * (distribution's proxy does the same with a detached context) — and inside
 * `runLeased`, so its lease is settled whatever happens.
 */
import { createDigester, digestAlgorithm, digestOfHash, type Digest } from '../registry/digest.ts';
import { RegistryError } from '../registry/errors.ts';
import type { FeedReader, FillFeed, FillFeeds } from './fill-feed.ts';
import { primaryOrigin, type FillBody, type FillOrigin } from './fill-origin.ts';
import { describe, runLeased } from './lease-scope.ts';
import {
  destroyBody,
  isDiskWriteError,
  type BlobIngest,
  type BlobResponse,
  type BlobStore,
  type CacheIndexReporter,
  type CacheObserver,
  type FillError,
  type FillLease,
  type Logger,
  type OpenBlob,
} from './ports.ts';
import type { BlobTarget } from './repository-target.ts';
import { blobFailure, bodyFailure } from './upstream-failure.ts';

/** How the leader's own client is answered. */
export type LeaderStart =
  /** The fill runs: read it through the lease's watch, like every follower (from the feed, on `reader`, while it keeps up). */
  | { kind: 'follow'; fromPrimary: boolean; reader?: FeedReader }
  /** Another fill published the blob between the miss and the lease. */
  | { kind: 'local'; blob: OpenBlob }
  /** Not cached: stream this response (the other readers were told to fetch their own). */
  | { kind: 'passthrough'; response: BlobResponse; controller: AbortController; fromPrimary: boolean }
  /** Not cached: read the uncached feed this reader is on (other readers in this process may join it). */
  | { kind: 'stream'; reader: FeedReader; fromPrimary: boolean }
  /** The fill failed before it started; the lease says how. */
  | { kind: 'failed'; error: unknown };

export interface FillLeaderOptions {
  store: BlobStore;
  observer: CacheObserver;
  index: CacheIndexReporter;
  logger: Logger;
  /** Whether a blob of this size may be cached at all (false: larger than the budget). */
  cacheable: (size: number | undefined) => boolean;
  /** Where fills get their bytes; the primary by default. */
  origin?: FillOrigin;
  /** The in-memory fan-outs of this process's fills. */
  feeds: FillFeeds;
  /** Where the host's other workers can read a blob this process streams through (its sibling endpoint); none: they fetch their own. */
  siblingUrl?: () => string | undefined;
}

const passthrough = { code: 'PASSTHROUGH', message: 'streamed through uncached' };

export class FillLeader {
  private readonly origin: FillOrigin;

  constructor(private readonly options: FillLeaderOptions) {
    this.origin = options.origin ?? primaryOrigin;
  }

  /**
   * Leads a fill of `digest` under `lease`, detached. `handOff` is told once
   * how the leader's own client is answered; without it (a reader taking
   * over) nothing is handed off and every reader follows the lease.
   */
  lead(target: BlobTarget, digest: Digest, lease: FillLease, handOff?: (start: LeaderStart) => void): void {
    let handed = false;
    const hand = (start: LeaderStart): void => {
      if (handed) return;
      handed = true;
      if (handOff) handOff(start);
      else this.release(start);
    };
    // runLeased never rejects: it settles the lease and logs whatever the fill threw.
    void runLeased(lease, this.options.logger, { digest }, async (scoped) => {
      try {
        await this.fill(target, digest, scoped, hand);
      } catch (err) {
        hand({ kind: 'failed', error: err });
        throw err;
      } finally {
        hand({ kind: 'follow', fromPrimary: false }); // a no-op once handed: only a fill that never said how it started gets here
      }
    });
  }

  private async fill(target: BlobTarget, digest: Digest, lease: FillLease, hand: (start: LeaderStart) => void): Promise<void> {
    const { store, observer, logger } = this.options;
    const raced = await store.open(digest);
    if (raced) {
      lease.succeed(raced.size);
      hand({ kind: 'local', blob: raced });
      return;
    }
    const controller = new AbortController(); // the fill's own: no client's signal
    let response: FillBody;
    try {
      response = await this.origin.open(target, digest, controller.signal);
    } catch (err) {
      throw blobFailure(err, observer);
    }
    if (!this.options.cacheable(response.size)) {
      logger.info({ digest, size: response.size }, 'blob larger than the cache budget; streaming through uncached');
      await this.streamThrough(digest, response, controller, lease, hand);
      return;
    }
    let ingest: BlobIngest;
    let feed: FillFeed | undefined;
    try {
      ingest = await store.beginIngest(digest, response.size, (bytes) => {
        lease.progress(bytes);
        feed?.persisted(bytes);
      });
    } catch (err) {
      if (!isDiskWriteError(err)) {
        destroyBody(response.body);
        response.settle('failed');
        throw err;
      }
      const code = (err as { code: string }).code;
      observer.cacheWriteFailed(code);
      logger.warn({ digest, code }, 'cache not writable; streaming through uncached');
      await this.streamThrough(digest, response, controller, lease, hand);
      return;
    }
    feed = this.options.feeds.open(digest, { kind: 'cached', size: response.size, partialPath: ingest.partialPath });
    lease.started(response.size, ingest.partialPath);
    observer.fillStarted();
    logger.info({ digest, size: response.size, fanOut: feed !== undefined }, 'blob fill started');
    // The triggering client's place in the feed, held from byte 0 before it even asks (it is a reader like the others).
    hand({ kind: 'follow', fromPrimary: response.fromPrimary, reader: feed?.reader(0) });
    try {
      await this.pump(digest, response, ingest, lease, feed);
    } finally {
      if (feed) {
        // A pump that threw fails the lease in runLeased; the feed's readers recover the same way.
        feed.fail({ code: 'LEADER_GONE', message: 'the fill broke off' });
        this.options.feeds.close(digest, feed);
      }
    }
  }

  /**
   * Origin → verify → disk, reporting progress to the lease, and into the
   * feed for this process's readers; settles the lease, the feed and the
   * origin's body.
   */
  private async pump(digest: Digest, origin: FillBody, ingest: BlobIngest, scoped: FillLease, feed: FillFeed | undefined): Promise<void> {
    const { observer, logger, index } = this.options;
    const body = origin.body;
    let written = 0;
    const lease = {
      succeed(size: number) {
        feed?.succeed();
        scoped.succeed(size);
      },
      fail(error: FillError) {
        feed?.fail(error);
        scoped.fail(error);
      },
    };
    try {
      const chunks = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
      for (;;) {
        const chunk = await nextChunk(chunks);
        if (chunk === undefined) break;
        // The hash before the chunk goes with it: a reader that must continue elsewhere knows what it sent.
        feed?.push(chunk, ingest.hashSoFar());
        try {
          await ingest.write(chunk);
        } catch (err) {
          throw new CacheWriteError(err);
        }
        written += chunk.length;
      }
      let onDisk: number;
      try {
        // Verified is enough for this process's readers of the feed: their last byte need not wait for the disk.
        onDisk = await ingest.commit(() => feed?.succeed());
      } catch (err) {
        if (isDiskWriteError(err)) throw new CacheWriteError(err);
        throw err;
      }
      written = ingest.bytesWritten;
      index.added(digest, onDisk, 'blob', written);
      origin.settle('cached');
      lease.succeed(written);
      observer.fillEnded('ok', written - origin.peerBytes());
      logger.debug({ digest, bytes: written, fromPeers: origin.peerBytes() }, 'blob cached');
    } catch (err) {
      destroyBody(body);
      // A read-only or failing disk can refuse even the cleanup: log it, the fill's outcome stands.
      await ingest.abort().catch((abortErr: unknown) => logger.warn({ digest, err: describe(abortErr) }, 'could not discard the partial file of a failed fill'));
      observer.fillEnded('failed', written - origin.peerBytes());
      const mismatch = isVerificationFailure(err);
      origin.settle(mismatch ? 'mismatch' : 'failed');
      if (mismatch && origin.peerBytes() > 0) {
        // Not the primary's answer: readers take over, and the new fill asks elsewhere (the hint is gone).
        lease.fail({ code: 'PEER_MISMATCH', message: 'bytes from a peer replica do not match the digest' });
        return;
      }
      if (err instanceof CacheWriteError) {
        observer.cacheWriteFailed(err.errno);
        logger.warn({ digest, bytes: written, code: err.errno }, 'cache write failed mid-fill; readers continue from the primary');
        lease.fail({ code: 'CACHE_WRITE_FAILED', message: 'the cache could not be written' });
        return;
      }
      const failure = blobFailure(err, observer);
      lease.fail({ code: failure.code, message: failure.message, detail: failure.detail });
      logger.warn({ digest, bytes: written, err: describe(err) }, 'blob fill failed; nothing cached');
    }
  }

  /**
   * Streams a blob that is not cached: this process's readers share one
   * verified transfer through an uncached feed, the leader's own client
   * first. While the feed still holds the first byte, others can join it:
   * the lease says `streaming` with this worker's sibling endpoint, where
   * the host's other workers read it, and the origin is not settled yet, so
   * a cluster fill lock stays held and other replicas follow this one. Then
   * the lease fails with PASSTHROUGH and the origin settles: later readers
   * fetch their own. Without room for another feed, the response goes to the
   * leader's client alone.
   */
  private async streamThrough(digest: Digest, response: FillBody, controller: AbortController, lease: FillLease, hand: (start: LeaderStart) => void): Promise<void> {
    const feed = this.options.feeds.open(digest, { kind: 'uncached', size: response.size });
    const reader = feed?.reader(0);
    const url = reader ? this.options.siblingUrl?.() : undefined;
    if (url === undefined) lease.fail(passthrough);
    else lease.streaming(response.size, url);
    let joinable = true;
    const closeToOthers = (): void => {
      if (!joinable) return;
      joinable = false;
      if (url !== undefined) lease.fail(passthrough);
      response.settle('uncached');
    };
    if (!feed || !reader) {
      closeToOthers();
      hand({ kind: 'passthrough', response, controller, fromPrimary: response.fromPrimary });
      return;
    }
    hand({ kind: 'stream', reader, fromPrimary: response.fromPrimary });
    const { logger, observer } = this.options;
    const body = response.body;
    const size = response.size;
    const hash = createDigester(digest);
    let total = 0;
    try {
      const chunks = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
      for (;;) {
        if (!(await feed.room())) {
          // Every reader left (or fell behind onto its own fetch): nobody needs the rest.
          logger.debug({ digest, bytes: total }, 'no reader left on a streamed-through blob; stopping its transfer');
          feed.fail({ code: 'LEADER_GONE', message: 'nobody reads the streamed-through blob any more' });
          controller.abort();
          destroyBody(body);
          return;
        }
        const chunk = await nextChunk(chunks);
        if (chunk === undefined) break;
        const before = hash.copy();
        hash.update(chunk);
        total += chunk.length;
        if (size !== undefined && total > size) throw new RegistryError('UPSTREAM_UNAVAILABLE', `the primary sent more than the ${size} bytes it announced`);
        feed.push(chunk, before);
        if (feed.start > 0) closeToOthers(); // the first byte is gone: nobody else can join
      }
      if (size !== undefined && total !== size) throw new RegistryError('UPSTREAM_UNAVAILABLE', `the primary sent ${total} of ${size} bytes`);
      if (digestOfHash(digestAlgorithm(digest), hash) !== digest) {
        throw new RegistryError('UPSTREAM_UNAVAILABLE', 'the primary sent content that does not match the digest');
      }
      feed.succeed();
      logger.debug({ digest, bytes: total }, 'blob streamed through uncached');
    } catch (err) {
      controller.abort();
      destroyBody(body);
      const failure = err instanceof RegistryError ? err : blobFailure(err, observer);
      feed.fail({ code: failure.code, message: failure.message, detail: failure.detail });
      logger.warn({ digest, bytes: total, err: describe(err) }, 'streaming a blob through failed; its readers are cut off');
    } finally {
      closeToOthers();
      this.options.feeds.close(digest, feed);
    }
  }

  /** Drops what a leader without a client of its own (a takeover) would have handed off. */
  private release(start: LeaderStart): void {
    if (start.kind === 'local') {
      start.blob.close().catch((err: unknown) => this.options.logger.debug({ err: describe(err) }, 'could not close a blob'));
    } else if (start.kind === 'passthrough') {
      start.controller.abort();
      destroyBody(start.response.body);
    } else if (start.kind === 'stream' || start.kind === 'follow') {
      start.reader?.close();
    }
  }
}

/** The ingest's verdict on the bytes (size or digest not the announced one). */
function isVerificationFailure(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === 'DIGEST_MISMATCH' || code === 'SIZE_MISMATCH';
}

class CacheWriteError extends Error {
  readonly errno: string;
  constructor(cause: unknown) {
    super('cache write failed', { cause });
    this.errno = String((cause as { code?: unknown } | undefined)?.code ?? 'EIO');
  }
}

/** The origin's next chunk, undefined at the end; a body that breaks off is the origin's failure. */
async function nextChunk(chunks: AsyncIterator<Buffer>): Promise<Buffer | undefined> {
  try {
    const next = await chunks.next();
    return next.done ? undefined : next.value;
  } catch (err) {
    throw bodyFailure(err);
  }
}
