/**
 * The in-memory fan-out of a fill this process runs: a bounded window of the
 * most recent chunks, in the order the origin sent them, shared by every
 * reader in this process that keeps up — the client that triggered the fill
 * is one of them. The bytes are hashed once (by the ingest, or by the feed's
 * own check when the blob streams through uncached) and copied once into
 * each reader's send buffer; nobody reads them back from the partial file
 * unless it fell behind the window or joined late.
 *
 *   origin ──► leader ──┬──► ingest (hash, write, fsync) ──► partial file ◄── late / slow readers (fill-source.ts)
 *                       └──► FillFeed window ──► readers that keep up (fill-source.ts, feed-source.ts)
 *
 * Two kinds:
 *
 *   cached    the fill also writes the partial file; a chunk leaves the
 *             window only once it is in the file, so a reader that falls
 *             behind finds its next byte there. The fill never waits for a
 *             reader.
 *   uncached  the blob streams through (larger than the budget, disk full or
 *             unwritable): the window is all there is, so the leader reads
 *             the origin as fast as the readers take it, the window spanning
 *             the slowest to the newest byte. A reader that holds the others
 *             back — a full window behind while a faster one waits — for
 *             longer than a grace period (1 s by default) is cut off: its
 *             bytes leave the window and it continues with its own ranged
 *             fetch. A slow client thus costs the others at most that grace,
 *             once, and never memory. When every reader left, the transfer
 *             stops.
 *
 * Every chunk carries the hash of all bytes before it, so a reader that has
 * to continue elsewhere (a failed fill, its own fetch) knows the hash of
 * exactly the bytes it handed out, without reading anything back.
 *
 * Memory: a cached fill keeps `windowBytes` of recent chunks, more only
 * while a reader has yet to read them, up to 2 × `windowBytes` (plus what
 * the ingest queues anyway — the same buffers); an uncached one spans its
 * slowest kept reader, about `windowBytes`. Plus the one chunk each reader
 * is in, and at most `maxFeeds` feeds per process; a fill beyond that runs
 * without a feed, its readers tail the file as before.
 */
import type { Hash } from 'node:crypto';
import { Wakeups } from './wakeups.ts';
import { createDigester, type Digest } from '../registry/digest.ts';
import { systemClock, type Clock, type FillError } from './ports.ts';

export interface FeedChunk {
  readonly start: number;
  readonly data: Buffer;
  /** The hash of every byte before `start`. */
  readonly before: Hash;
}

export type FeedStatus = 'running' | 'done' | 'failed';

export interface FillFeedOptions {
  digest: Digest;
  /** Bytes of recent chunks kept for readers. */
  windowBytes: number;
  /** Whether the fill writes a file readers can fall back to (cached), or streams through. */
  kind: 'cached' | 'uncached';
  /** The blob's size, when the origin announced it. */
  size: number | undefined;
  /** The partial file of a cached fill (readers check it is the fill they watch). */
  partialPath?: string;
  /** Uncached: how long a reader a window behind may hold back faster ones before it is cut off. */
  laggardGraceMs?: number;
  /** Times the grace; the system clock by default. */
  clock?: Clock;
}

export class FillFeed {
  readonly digest: Digest;
  readonly kind: 'cached' | 'uncached';
  readonly size: number | undefined;
  readonly partialPath: string | undefined;
  private readonly windowBytes: number;
  private chunks: FeedChunk[] = [];
  /** Index of the oldest chunk still in the window. */
  private first = 0;
  private held = 0;
  private persistedBytes = 0;
  private pushed = 0;
  private state: FeedStatus = 'running';
  private failure: FillError | undefined;
  private readonly wakeups = new Wakeups();
  private readonly readers = new Set<FeedReader>();
  private roomWaiter: (() => void) | undefined;
  private readonly laggardGraceMs: number;
  private readonly clock: Clock;
  /** Cached: the most the window holds for readers that have yet to read its oldest chunks. */
  private readonly maxHeldBytes: number;

  constructor(options: FillFeedOptions) {
    this.digest = options.digest;
    this.kind = options.kind;
    this.size = options.size;
    this.partialPath = options.partialPath;
    this.windowBytes = options.windowBytes;
    this.laggardGraceMs = options.laggardGraceMs ?? 1_000;
    this.maxHeldBytes = 2 * options.windowBytes;
    this.clock = options.clock ?? systemClock;
  }

  get status(): FeedStatus {
    return this.state;
  }

  get error(): FillError | undefined {
    return this.failure;
  }

  /** One past the last byte pushed. */
  get end(): number {
    return this.pushed;
  }

  /** The first byte still in the window. */
  get start(): number {
    return this.chunks[this.first]?.start ?? this.pushed;
  }

  /** Bytes held in the window now (for tests and metrics). */
  get windowHeld(): number {
    return this.held;
  }

  get readerCount(): number {
    return this.readers.size;
  }

  /** Adds a chunk the origin sent; `before` is the hash of every byte before it. Never waits. */
  push(data: Buffer, before: Hash): void {
    if (this.state !== 'running' || data.length === 0) return;
    this.chunks.push({ start: this.pushed, data, before });
    this.pushed += data.length;
    this.held += data.length;
    this.evict();
    this.wake();
  }

  /** A cached fill's file now holds the first `bytes` bytes: chunks before them may leave the window. */
  persisted(bytes: number): void {
    this.persistedBytes = Math.max(this.persistedBytes, bytes);
    this.evict();
  }

  /** Verified: readers may hand out the last byte (a cached fill's file may still be on its way to disk). */
  succeed(): void {
    if (this.state !== 'running') return;
    this.state = 'done';
    this.wake();
  }

  fail(error: FillError): void {
    if (this.state !== 'running') return;
    this.state = 'failed';
    this.failure = error;
    this.chunks = [];
    this.first = 0;
    this.held = 0;
    this.wake();
    this.roomWaiter?.();
  }

  /** Resolves at the next push or outcome, or after `timeoutMs`. */
  changed(timeoutMs: number): Promise<void> {
    return this.state !== 'running' ? Promise.resolve() : this.wakeups.next(timeoutMs);
  }

  /** A reader at `position`, or undefined when that byte is no longer (or not yet) in the window. */
  reader(position: number): FeedReader | undefined {
    if (this.state === 'failed' || position < this.start || position > this.pushed) return undefined;
    const reader = new FeedReader(this, position);
    this.readers.add(reader);
    return reader;
  }

  /**
   * Uncached feeds: resolves when every reader kept is less than a window
   * behind the newest byte (so reading on from the origin costs no more
   * memory), or when no reader is left (`false`: stop the transfer). A
   * reader a window behind that holds back a faster one for longer than the
   * grace is cut off (it continues with its own fetch).
   */
  async room(): Promise<boolean> {
    let blockedSince: number | undefined;
    for (;;) {
      if (this.state !== 'running') return false;
      if (this.readers.size === 0) return false;
      const { fastest, slowest } = this.span();
      if (this.pushed - slowest < this.windowBytes) return true;
      let waitMs: number | undefined;
      if (this.pushed - fastest < this.windowBytes) {
        // A faster reader could take more; the slowest holds the window.
        const now = this.clock.now();
        blockedSince ??= now;
        if (now - blockedSince >= this.laggardGraceMs) {
          this.cutLaggards();
          blockedSince = undefined;
          continue;
        }
        waitMs = this.laggardGraceMs - (now - blockedSince);
      } else {
        blockedSince = undefined; // every reader is a window behind: nobody waits for anybody
      }
      await new Promise<void>((resolve) => {
        const timer = waitMs === undefined ? undefined : setTimeout(resolve, waitMs);
        this.roomWaiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.roomWaiter = undefined;
    }
  }

  /** The chunk holding byte `position` (or starting at it), when still in the window. */
  chunkAt(position: number): FeedChunk | undefined {
    let lo = this.first;
    let hi = this.chunks.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const chunk = this.chunks[mid]!;
      if (position < chunk.start) hi = mid - 1;
      else if (position >= chunk.start + chunk.data.length) lo = mid + 1;
      else return chunk;
    }
    return undefined;
  }

  /** @internal a reader moved on or left. */
  moved(): void {
    this.roomWaiter?.();
  }

  /** @internal */
  left(reader: FeedReader): void {
    this.readers.delete(reader);
    this.roomWaiter?.();
  }

  /** Positions of the fastest and the slowest reader still kept (not cut off). */
  private span(): { fastest: number; slowest: number } {
    let fastest = 0;
    let slowest = this.pushed;
    for (const reader of this.readers) {
      fastest = Math.max(fastest, reader.position);
      if (!reader.cut) slowest = Math.min(slowest, reader.position);
    }
    return { fastest, slowest };
  }

  /** Readers a window behind no longer hold bytes in the window: they find themselves behind and fetch on their own. */
  private cutLaggards(): void {
    for (const reader of this.readers) if (this.pushed - reader.position >= this.windowBytes) reader.cut = true;
    this.evict();
  }

  private evict(): void {
    // Cached: only what the file already holds may go, and what a reader has yet to read stays up to the hard cap
    // (the triggering client starting a little after the fill, a reader briefly slower). Uncached: never what a
    // reader kept has yet to read (room() and the grace bound it).
    const cached = this.kind === 'cached';
    const slowest = this.span().slowest;
    while (this.held > this.windowBytes) {
      const oldest = this.chunks[this.first];
      if (!oldest) break;
      const end = oldest.start + oldest.data.length;
      if (cached ? end > this.persistedBytes || (end > slowest && this.held <= this.maxHeldBytes) : end > slowest) break;
      this.chunks[this.first] = undefined as unknown as FeedChunk;
      this.first += 1;
      this.held -= oldest.data.length;
    }
    if (this.first > 1024 && this.first * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.first);
      this.first = 0;
    }
  }

  private wake(): void {
    this.wakeups.wakeAll();
  }
}

/** One reader's place in a feed: copies bytes out of the window, in order. */
export class FeedReader {
  /** The chunk the reader is in (kept even after it left the window: it carries the hash before it). */
  private chunk: FeedChunk | undefined;
  private open = true;
  /** Uncached: cut off for holding faster readers back; the window no longer keeps its bytes. */
  cut = false;

  constructor(
    readonly feed: FillFeed,
    public position: number,
  ) {}

  /**
   * Copies up to `length` bytes from the reader's position, never at or past
   * `limit`; returns how many (0: none there yet), or 'behind' when the next
   * byte already left the window.
   */
  read(buffer: Buffer, length: number, limit: number): number | 'behind' {
    let copied = 0;
    return this.take(length, limit, (data) => {
      copied += data.copy(buffer, copied);
    });
  }

  /**
   * Like read(), but hands out the bytes as views of the window's chunks
   * (appended to `views`), copying nothing. The chunks are never written
   * to; a view keeps its chunk's memory alive for as long as it is held, so
   * a caller holds views only until the socket has taken them.
   */
  views(views: Buffer[], length: number, limit: number): number | 'behind' {
    return this.take(length, limit, (data) => views.push(data));
  }

  /** Walks the window from the reader's position to at most `length` bytes, never at or past `limit`. */
  private take(length: number, limit: number, out: (data: Buffer) => void): number | 'behind' {
    let taken = 0;
    const stop = Math.min(limit, this.position + length);
    while (this.position < stop) {
      let chunk = this.chunk;
      if (!chunk || this.position >= chunk.start + chunk.data.length || this.position < chunk.start) {
        chunk = this.feed.chunkAt(this.position);
        if (!chunk) {
          if (taken > 0 || this.position >= this.feed.end) break;
          return 'behind';
        }
        this.chunk = chunk;
      }
      const from = this.position - chunk.start;
      const to = Math.min(chunk.data.length, from + (stop - this.position));
      out(chunk.data.subarray(from, to));
      taken += to - from;
      this.position += to - from;
    }
    if (taken > 0) this.feed.moved();
    return taken;
  }

  /** The hash of every byte before the reader's position (undefined when it holds no chunk that says). */
  sentHash(): Hash | undefined {
    if (this.position === 0) return createDigester(this.feed.digest);
    const chunk = this.chunk ?? this.feed.chunkAt(this.position);
    if (!chunk || this.position < chunk.start || this.position > chunk.start + chunk.data.length) return undefined;
    return chunk.before.copy().update(chunk.data.subarray(0, this.position - chunk.start));
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    this.chunk = undefined;
    this.feed.left(this);
  }
}

export interface FillFeedsOptions {
  /**
   * Bytes of recent chunks kept per fill. Default 4 MiB for a cached fill
   * (a reader that falls behind reads the file) and 8 MiB for a blob
   * streamed through (the window is how far apart its readers may be).
   */
  windowBytes?: number;
  /** Fills with a feed at once in this process (default 8); more run without one. */
  maxFeeds?: number;
  /** Uncached: how long a reader a window behind may hold back faster ones (default 1 s). */
  laggardGraceMs?: number;
  clock?: Clock;
}

/** The feeds of the fills this process runs now, by digest. */
export class FillFeeds {
  private readonly feeds = new Map<string, FillFeed>();
  private readonly maxFeeds: number;

  constructor(private readonly options: FillFeedsOptions = {}) {
    this.maxFeeds = options.maxFeeds ?? 8;
  }

  /** A new feed for a fill of `digest`, or undefined when this process already runs as many as it may. */
  open(digest: Digest, options: Omit<FillFeedOptions, 'windowBytes' | 'digest'>): FillFeed | undefined {
    if (this.feeds.size >= this.maxFeeds && !this.feeds.has(digest)) return undefined;
    const windowBytes = this.options.windowBytes ?? (options.kind === 'cached' ? 4 : 8) * 1024 * 1024;
    const feed = new FillFeed({ ...options, digest, windowBytes, laggardGraceMs: this.options.laggardGraceMs, clock: this.options.clock });
    this.feeds.set(digest, feed);
    return feed;
  }

  get(digest: string): FillFeed | undefined {
    return this.feeds.get(digest);
  }

  /** Unregisters `feed` (readers that joined keep it). */
  close(digest: string, feed: FillFeed): void {
    if (this.feeds.get(digest) === feed) this.feeds.delete(digest);
  }

  get size(): number {
    return this.feeds.size;
  }
}
