/**
 * Blobs, from whichever source has them (blob-source.ts):
 *
 *   open(digest) ─┬─ local file ............................ local-source.ts
 *                 ├─ a fill on this host, led or joined ...... fill-source.ts (fill-leader.ts leads; its
 *                 │                                            bytes come from a peer replica or the
 *                 │                                            primary: fill-origin.ts)
 *                 ├─ the primary, streamed through ........... remote-source.ts
 *                 └─ another worker's stream-through ......... sibling-stream.ts
 *
 *   openForPeer(digest) ─┬─ local file
 *                        ├─ a fill on this host, followed
 *                        └─ a stream-through on this host (this worker's, or
 *                           relayed from the sibling running it) — never led,
 *                           so a peer request never reaches the primary or another peer
 *
 * A miss is fetched from the primary exactly once however many clients ask
 * at the same time (the fill coordinator picks one leader per digest). The
 * clients in the leader's process — its own included — that keep up are
 * fed from the bytes as they arrive (fill-feed.ts: hashed once, written
 * once, a bounded window); clients in other workers, late joiners and slow
 * readers read the partial file as it grows. When a blob cannot be cached
 * (larger than the whole budget, disk full or unwritable) it streams
 * through, verified once, shared by this process's concurrent clients
 * through a bounded window (one that falls behind it fetches the rest on its
 * own); while that window holds the first byte, the host's other workers
 * read it from this one (sibling-stream.ts). When a fill fails on this host (a
 * disk error, a leader whose worker died or whose store threw), each reader
 * carries on from where it is: it takes the fill over, or continues from the
 * primary.
 *
 * A blob is served under a repository only when that repository links it
 * (repository-links.ts). Otherwise the primary is asked under that
 * repository first, like a miss: a GET that fills it (which is the answer),
 * or, when the bytes are already here or being fetched for another
 * repository, a HEAD; only a 2xx links it and lets it be served.
 */
import type { Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import { createDigester, type Digest } from '../registry/digest.ts';
import { RegistryError } from '../registry/errors.ts';
import type { BlobSource } from './blob-source.ts';
import { FeedSource } from './feed-source.ts';
import { FillFeeds, type FeedReader, type FillFeedsOptions } from './fill-feed.ts';
import { FillLeader, type LeaderStart } from './fill-leader.ts';
import type { FillOrigin } from './fill-origin.ts';
import { openFillSource } from './fill-source.ts';
import { localSource } from './local-source.ts';
import { MemoryBlob } from './memory-blob.ts';
import {
  destroyBody,
  systemClock,
  type BlobStore,
  type CacheIndexReporter,
  type CacheObserver,
  type CacheResult,
  type Clock,
  type FillCoordinator,
  type FillWatch,
  type Logger,
  type OpenBlob,
  type BlobResponse,
  type PeerBlobs,
  type PurgeScope,
} from './ports.ts';
import { describe } from './lease-scope.ts';
import { openRemoteSource, remoteSource } from './remote-source.ts';
import { siblingThenPrimary } from './sibling-stream.ts';
import type { RepositoryLinks } from './repository-links.ts';
import type { BlobTarget } from './repository-target.ts';
import { blobFailure, bodyFailure } from './upstream-failure.ts';

export interface BlobServiceOptions {
  store: BlobStore;
  coordinator: FillCoordinator;
  observer: CacheObserver;
  index: CacheIndexReporter;
  logger: Logger;
  /** Times the stall and start timeouts of readers; the system clock by default. */
  clock?: Clock;
  /** How long a reader waits without progress before giving up (the primary's body-idle timeout plus a margin). */
  stallTimeoutMs: number;
  /** Whether a blob of this size may be cached at all (false: larger than the budget). */
  cacheable: (size: number | undefined) => boolean;
  /** Which repository may serve which blob. */
  links: Pick<RepositoryLinks, 'has' | 'add'>;
  /** Bytes of small blobs kept in memory per process (default 16 MiB). */
  smallBlobMemoryBytes?: number;
  /** Where fills get their bytes (peer replicas, then the primary); the primary by default. */
  origin?: FillOrigin;
  /** The in-memory fan-out of this process's fills (window per fill, fills with a window at once). */
  fanOut?: FillFeedsOptions;
  /** The host's other workers, for blobs one of them streams through uncached (sibling-stream.ts); none: each fetches its own. */
  siblings?: SiblingWorkers;
}

/** How this worker reaches the others of its host, and is reached by them (their peer endpoint on the loopback, signed with the node's secret). */
export interface SiblingWorkers {
  client: PeerBlobs;
  /** This worker's own sibling endpoint, once it listens. */
  url(): string | undefined;
  /** Longest a sibling may take to send its headers before the primary is asked instead. */
  startTimeoutMs: number;
}

/** Blobs up to this size are also kept in memory per process (configs, small layers). */
const smallBlobBytes = 64 * 1024;
/** How many times one reader may take over a fill whose leader went away, before it turns to the primary. */
const takeoversPerReader = 1;

export class BlobService {
  private readonly small: LRUCache<string, Buffer>;
  private readonly leader: FillLeader;
  private readonly clock: Clock;
  private readonly feeds: FillFeeds;

  constructor(private readonly options: BlobServiceOptions) {
    this.small = new LRUCache<string, Buffer>({ maxSize: options.smallBlobMemoryBytes ?? 16 * 1024 * 1024, sizeCalculation: (b) => b.byteLength + 64 });
    this.feeds = new FillFeeds({ clock: options.clock, ...options.fanOut });
    this.leader = new FillLeader({ ...options, feeds: this.feeds, siblingUrl: options.siblings?.url });
    this.clock = options.clock ?? systemClock;
  }

  /** Drops purged blobs from this process's memory, so they are fetched again. */
  forget(scope: PurgeScope): void {
    if (scope.kind === 'all') this.small.clear();
    else for (const digest of scope.digests) this.small.delete(digest);
  }

  /** Size of a blob, from disk or a HEAD upstream; never starts a fill. */
  async stat(target: BlobTarget, digest: Digest, signal: AbortSignal): Promise<{ size: number; result: CacheResult }> {
    const small = this.small.get(digest);
    const local = small ? { size: small.byteLength } : await this.options.store.stat(digest);
    const linked = await this.options.links.has(target, 'blob', digest);
    if (local && linked) return this.hit(digest, local.size);
    if (!local && linked) {
      // Being filled here: the size the GET will announce, without asking the primary again.
      const filling = await this.fillingSize(digest);
      if (filling !== undefined) {
        this.options.observer.cacheResult('blob', 'coalesced');
        return { size: filling, result: 'coalesced' };
      }
    }
    let head: { size: number | undefined };
    try {
      head = await target.upstream.headBlob(target.name, digest, signal);
    } catch (err) {
      throw blobFailure(err, this.options.observer);
    }
    await this.options.links.add(target, 'blob', digest);
    if (local) return this.hit(digest, local.size);
    if (head.size === undefined) throw new RegistryError('UPSTREAM_UNAVAILABLE', 'the primary did not report the blob size');
    this.options.observer.cacheResult('blob', 'passthrough');
    return { size: head.size, result: 'passthrough' };
  }

  /** The size of a fill of `digest` in progress on this host (or streamed through in this process), when known. */
  private async fillingSize(digest: Digest): Promise<number | undefined> {
    const feed = this.feeds.get(digest);
    if (feed && feed.status !== 'failed' && feed.size !== undefined) return feed.size;
    const watch = await this.options.coordinator.follow(digest);
    if (!watch) return undefined;
    const state = watch.state();
    watch.close();
    return state.status !== 'pending' && state.status !== 'failed' ? state.size : undefined;
  }

  private hit(digest: Digest, size: number): { size: number; result: CacheResult } {
    this.options.observer.cacheResult('blob', 'hit');
    this.options.index.touched(digest);
    return { size, result: 'hit' };
  }

  /** The blob from whichever source has it; the caller reads it and closes it. */
  async open(target: BlobTarget, digest: Digest, signal: AbortSignal): Promise<BlobSource> {
    const linked = await this.options.links.has(target, 'blob', digest);
    const local = await this.local(digest);
    if (local) {
      if (!linked) await closingOnFailure(local, () => this.confirm(target, digest, signal));
      this.options.observer.cacheResult('blob', 'hit');
      this.options.index.touched(digest);
      return localSource(local);
    }
    const { coordinator, observer } = this.options;
    // Streaming through uncached in this process, still at its first bytes: share that transfer.
    const streamed = this.streamReader(digest);
    if (streamed) {
      if (!linked) await closingOnFailure(streamed, () => this.confirm(target, digest, signal));
      observer.cacheResult('blob', 'coalesced');
      return this.feedSource(target, digest, streamed, 'coalesced', signal);
    }
    const role = await coordinator.acquire(digest);
    if (role.role === 'leader') {
      // The host's fill ended in a stream-through by this process while this request waited for the lease: share it.
      const late = this.streamReader(digest);
      if (late) {
        role.lease.fail({ code: 'PASSTHROUGH', message: 'streamed through uncached' });
        if (!linked) await closingOnFailure(late, () => this.confirm(target, digest, signal));
        observer.cacheResult('blob', 'coalesced');
        return this.feedSource(target, digest, late, 'coalesced', signal);
      }
    }
    if (role.role === 'follower') {
      // The fill may be another repository's: this one must have the blob too.
      if (!linked) await closingOnFailure(role.watch, () => this.confirm(target, digest, signal));
      observer.cacheResult('blob', 'coalesced');
      return this.follow(target, digest, role.watch, 'coalesced', signal);
    }
    const start = await new Promise<LeaderStart>((resolve) => this.leader.lead(target, digest, role.lease, resolve));
    switch (start.kind) {
      case 'local':
        // Cached meanwhile, from wherever: the primary did not answer for this repository yet.
        if (!linked) await closingOnFailure(start.blob, () => this.confirm(target, digest, signal));
        observer.cacheResult('blob', 'hit');
        return localSource(start.blob);
      case 'passthrough':
        // Only the primary's answer for this repository links it; a peer's bytes say nothing about repositories.
        if (start.fromPrimary) await this.options.links.add(target, 'blob', digest);
        else if (!linked) {
          await this.confirm(target, digest, signal).catch((err: unknown) => {
            start.controller.abort();
            destroyBody(start.response.body); // nobody reads it now
            throw err;
          });
        }
        observer.cacheResult('blob', 'passthrough');
        return remoteSource(start.response, start.controller, this.remoteOptions(digest, 0, createDigester(digest), undefined, signal));
      case 'stream':
        // As above; the transfer is this process's to share (fill-feed.ts).
        try {
          if (start.fromPrimary) await this.options.links.add(target, 'blob', digest);
          else if (!linked) await this.confirm(target, digest, signal);
        } catch (err) {
          start.reader.close(); // the last reader gone stops the transfer
          throw err;
        }
        observer.cacheResult('blob', 'passthrough');
        return this.feedSource(target, digest, start.reader, 'passthrough', signal);
      case 'failed':
        // The primary's answer goes to this client as is; anything else failed the lease, and the watch takes over.
        if (start.error instanceof RegistryError) throw start.error;
        if (!linked) await this.confirm(target, digest, signal);
        break;
      case 'follow':
        // The primary answered this repository's GET: it has the blob. A fill from a peer proves nothing for this repository.
        try {
          if (start.fromPrimary) await this.options.links.add(target, 'blob', digest);
          else if (!linked) await this.confirm(target, digest, signal); // the fill goes on for whoever else reads it
        } catch (err) {
          start.reader?.close();
          throw err;
        }
        observer.cacheResult('blob', 'miss');
        return this.follow(target, digest, role.lease.watch(), 'miss', signal, start.reader);
    }
    observer.cacheResult('blob', 'miss');
    return this.follow(target, digest, role.lease.watch(), 'miss', signal);
  }

  /** The primary says whether this repository has the blob (HEAD); links it when it does, rejects with its answer otherwise. */
  private async confirm(target: BlobTarget, digest: Digest, signal: AbortSignal): Promise<void> {
    try {
      await target.upstream.headBlob(target.name, digest, signal);
    } catch (err) {
      throw blobFailure(err, this.options.observer);
    }
    await this.options.links.add(target, 'blob', digest);
  }

  /**
   * Size of a blob this node can serve a peer: on disk, or being filled
   * here with a known size. Never asks anyone else.
   */
  async statForPeer(digest: Digest): Promise<{ size: number } | undefined> {
    const small = this.small.get(digest);
    if (small) return { size: small.byteLength };
    const local = await this.options.store.stat(digest);
    if (local) return local;
    // Being filled or streamed through on this host; else a fill that ended between the two looks has published the file.
    const filling = await this.fillingSize(digest);
    return filling === undefined ? this.options.store.stat(digest) : { size: filling };
  }

  /**
   * The blob for a peer replica: from disk or this host's fill in progress
   * (followed as it grows, last byte held until verified). Never leads a
   * fill and never turns to the primary: a fill here that fails ends the
   * answer (the peer resumes elsewhere), so peer requests cannot loop.
   */
  async openForPeer(digest: Digest, signal: AbortSignal): Promise<BlobSource> {
    const local = await this.local(digest);
    if (local) {
      this.options.index.touched(digest);
      return localSource(local);
    }
    // Streamed through uncached by this process, still at its first bytes: a sibling worker (or a peer) joins it.
    const streamed = this.streamReader(digest);
    if (streamed) return this.feedSource(undefined, digest, streamed, 'coalesced', signal);
    const watch = await this.options.coordinator.follow(digest);
    if (!watch) {
      // A fill that ended between the two looks has published the file.
      const published = await this.local(digest);
      if (!published) throw new RegistryError('BLOB_UNKNOWN', 'this replica neither holds nor fills the blob');
      this.options.index.touched(digest);
      return localSource(published);
    }
    const notHere = (): never => {
      throw new RegistryError('BLOB_UNKNOWN', 'the fill on this replica did not complete');
    };
    return openFillSource(watch, {
      store: this.options.store,
      digest,
      clock: this.clock,
      stallTimeoutMs: this.options.stallTimeoutMs,
      signal,
      result: 'coalesced',
      takeovers: 0,
      takeOver: notHere,
      fromPrimary: notHere,
      // Another worker of this host streams it through: relayed from there, never from the primary.
      fromStream: (url, size) => this.fromStream(digest, url, size, signal),
      feed: () => this.feeds.get(digest),
      onFanOut: this.onFanOut,
    });
  }

  /** A local blob, from memory when it is small and was read before. */
  private async local(digest: Digest): Promise<OpenBlob | undefined> {
    const cached = this.small.get(digest);
    if (cached) return new MemoryBlob(cached);
    const blob = await this.options.store.open(digest);
    if (!blob || blob.size > smallBlobBytes) return blob;
    try {
      const data = await blob.readAll();
      this.small.set(digest, data);
      return new MemoryBlob(data);
    } finally {
      await blob.close();
    }
  }

  private follow(target: BlobTarget, digest: Digest, watch: FillWatch, result: CacheResult, signal: AbortSignal, reader?: FeedReader): Promise<BlobSource> {
    return openFillSource(watch, {
      reader,
      store: this.options.store,
      digest,
      clock: this.clock,
      stallTimeoutMs: this.options.stallTimeoutMs,
      signal,
      result,
      takeovers: takeoversPerReader,
      takeOver: () => this.takeOver(target, digest),
      fromPrimary: (position, hash, size) => this.fromPrimary(target, digest, position, hash, size, signal),
      fromStream: (url, size) => this.fromStream(digest, url, size, signal, target),
      feed: () => this.feeds.get(digest),
      onFanOut: this.onFanOut,
    });
  }

  /** A reader at byte 0 of the uncached transfer of `digest` this process runs, while it still holds that byte. */
  private streamReader(digest: Digest): FeedReader | undefined {
    const feed = this.feeds.get(digest);
    return feed?.kind === 'uncached' && feed.status === 'running' ? feed.reader(0) : undefined;
  }

  private readonly onFanOut = (event: 'joined' | 'fell_behind'): void => this.options.observer.fanOut?.(event);

  /** A reader of this process's stream-through; one that falls behind continues from the primary, or (no `target`: a peer's request) is cut off. */
  private feedSource(target: BlobTarget | undefined, digest: Digest, reader: FeedReader, result: CacheResult, signal: AbortSignal): BlobSource {
    this.onFanOut('joined');
    return new FeedSource(reader, {
      clock: this.clock,
      stallTimeoutMs: this.options.stallTimeoutMs,
      signal,
      result,
      fromPosition: (position, hash, size) => {
        if (target === undefined) return Promise.reject(new RegistryError('BLOB_UNKNOWN', 'fell a window behind the blob streamed through here'));
        this.options.logger.debug({ digest, position }, 'a reader fell behind a blob streamed through; fetching the rest on its own');
        return this.fromPrimary(target, digest, position, hash, size, signal);
      },
      onFanOut: this.onFanOut,
    });
  }

  /** Joins the fill of whoever leads now, or leads a new one (without a client of its own: its reader follows the lease). */
  private async takeOver(target: BlobTarget, digest: Digest): Promise<FillWatch> {
    const role = await this.options.coordinator.acquire(digest);
    if (role.role === 'follower') return role.watch;
    this.options.logger.info({ digest }, 'taking over a fill whose leader went away');
    this.leader.lead(target, digest, role.lease);
    return role.lease.watch();
  }

  /**
   * The whole blob, which another worker of this host streams through
   * uncached, joinable at `url`: from that sibling, continued from the
   * primary if it breaks off; the primary when the sibling cannot serve it.
   * Without `primary` (a peer replica's request) only the sibling: a
   * failure ends the answer, and the peer resumes elsewhere.
   */
  private async fromStream(digest: Digest, url: string, size: number | undefined, signal: AbortSignal, primary?: BlobTarget): Promise<BlobSource> {
    const notHere = (): never => {
      throw new RegistryError('BLOB_UNKNOWN', 'the blob streamed through on this host can no longer be joined');
    };
    const instead = (): Promise<BlobSource> => (primary === undefined ? notHere() : this.fromPrimary(primary, digest, 0, createDigester(digest), undefined, signal));
    // This process's own stream, started since this reader last looked.
    const own = this.streamReader(digest);
    if (own) return this.feedSource(primary, digest, own, 'coalesced', signal);
    const siblings = this.options.siblings;
    if (siblings === undefined || url === siblings.url()) return instead();
    const controller = new AbortController();
    const abort = (): void => controller.abort();
    signal.addEventListener('abort', abort, { once: true });
    let first: BlobResponse;
    try {
      first = await siblings.client.get({ id: 'sibling', url }, digest, controller.signal, { startTimeoutMs: siblings.startTimeoutMs });
    } catch (err) {
      signal.throwIfAborted();
      this.options.logger.debug({ digest, sibling: url, err: describe(err) }, 'could not join the blob a sibling worker streams through');
      return instead();
    } finally {
      signal.removeEventListener('abort', abort);
    }
    const body = Readable.from(
      siblingThenPrimary(first, {
        size: size ?? first.size,
        signal: controller.signal,
        resume: (start) => (primary === undefined ? Promise.resolve().then(notHere) : this.fetchPrimary(primary, digest, start, controller.signal)),
        onBroken: (position, err) =>
          this.options.logger.debug({ digest, sibling: url, position, err: describe(err), resume: primary === undefined ? 'none' : 'primary' }, 'a sibling worker stopped streaming a blob to this one'),
      }),
      { objectMode: false },
    );
    return remoteSource({ size: size ?? first.size, offset: 0, body }, controller, { ...this.remoteOptions(digest, 0, createDigester(digest), size, signal), result: 'coalesced' });
  }

  private fetchPrimary(target: BlobTarget, digest: Digest, start: number, signal: AbortSignal): Promise<BlobResponse> {
    return target.upstream.getBlob(target.name, digest, signal, start > 0 ? { start } : {}).catch((err: unknown) => {
      throw blobFailure(err, this.options.observer);
    });
  }

  /** The blob from `position` on, straight from the primary (uncached), verified against the whole digest. */
  private async fromPrimary(target: BlobTarget, digest: Digest, position: number, hash: Hash, size: number | undefined, signal: AbortSignal): Promise<BlobSource> {
    if (position === 0) {
      // The whole blob, uncached: this process may be streaming it through already.
      const streamed = this.streamReader(digest);
      if (streamed) return this.feedSource(target, digest, streamed, 'coalesced', signal);
      this.options.observer.cacheResult('blob', 'passthrough');
    }
    return openRemoteSource((start, fetchSignal) => this.fetchPrimary(target, digest, start, fetchSignal), this.remoteOptions(digest, position, hash, size, signal));
  }

  private remoteOptions(digest: Digest, position: number, hash: Hash, size: number | undefined, signal: AbortSignal) {
    return { digest, position, hash, size, result: 'passthrough' as const, signal, bodyFailure };
  }
}

/** Runs `check`; closes `resource` when it rejects. */
async function closingOnFailure(resource: { close(): unknown }, check: () => Promise<void>): Promise<void> {
  try {
    await check();
  } catch (err) {
    await resource.close();
    throw err;
  }
}
