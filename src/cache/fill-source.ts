/**
 * The fill source: a blob read while it is being filled on this host. When
 * this process runs the fill and the reader keeps up, it copies the bytes
 * out of the fill's in-memory feed as they arrive (fill-feed.ts); otherwise
 * — another worker's fill, a late joiner, a reader that fell behind the
 * feed's window — it tails the partial file as it grows, waking on the
 * fill's progress, and moves to the feed once it caught up. The last byte
 * (of the blob, or of the requested range) is held back until the fill is
 * verified — on the feed, as soon as its digest matches; tailing the file,
 * once the fill also made it durable — so a client never sees a complete
 * body the digest check later rejects.
 *
 * A fill of known size can be read from any position (a Range): the reader
 * starts there and goes on in order. A ranged reader does not recover from
 * a failed fill — it cannot verify the bytes it sent on its own — so its
 * connection is broken and the client asks again.
 *
 * When the fill fails, the reader carries on from where it is — unless the
 * failure is the primary's answer (404, denied, timeout, wrong bytes), which
 * ends the read with that error:
 *
 *   LEADER_GONE          the leader's worker died, or its fill broke off:
 *                        take over — lead or join a new fill — and continue
 *                        at this reader's position in the new partial file
 *                        (once per reader; after that, from the primary);
 *   CACHE_WRITE_FAILED,  the local disk failed, or the leader streamed
 *   PASSTHROUGH          through: continue from the primary with a Range.
 *
 * A fill that turns out not to be cacheable before it started, while its
 * leader's worker still holds the first bytes (`streaming`), is read from
 * that worker instead (blob-service.ts).
 *
 * From the first failure on the reader verifies on its own: the bytes it
 * already handed out are hashed back from its descriptor of the old partial
 * file (still readable when the file is unlinked) and every later byte goes
 * into the same hash, so the digest check covers exactly what the client got.
 *
 * Time (the stall and start timeouts) comes from the injected clock.
 */
import type { Hash } from 'node:crypto';
import { createDigester, digestAlgorithm, digestOfHash, type Digest } from '../registry/digest.ts';
import { errorDescriptors, RegistryError, type ErrorCode } from '../registry/errors.ts';
import type { BlobSource } from './blob-source.ts';
import type { FeedReader, FillFeed } from './fill-feed.ts';
import { fillRecovery, type BlobStore, type CacheResult, type Clock, type FillError, type FillState, type FillWatch, type PartialFile } from './ports.ts';

/** Below this many new bytes a reader waits once more (a little) rather than issue a tiny read. */
const minReadBytes = 64 * 1024;
const coalesceMs = 20;
const minWaitMs = 2;
const maxWaitMs = 50;
/** From the feed: below this many new bytes a reader waits for a few more chunks (each wait ends at the next one). */
const feedReadBytes = 128 * 1024;
const feedCoalesceWaits = 4;
const feedCoalesceMs = 5;
/** How often a reader waiting for the leader's first answer looks at the clock. */
const startPollMs = 250;
const hashChunkBytes = 256 * 1024;

export interface FillSourceOptions {
  store: Pick<BlobStore, 'open' | 'openPartial'>;
  digest: Digest;
  clock: Clock;
  /** Give up when the fill makes no progress (or does not start) for this long. */
  stallTimeoutMs: number;
  /** The client's signal: stop waiting when it goes away. */
  signal: AbortSignal;
  result: CacheResult;
  /** How many times this reader may take over a fill whose leader went away. */
  takeovers: number;
  /** Leads or joins a new fill of the digest; resolves to a watch on it. */
  takeOver: () => Promise<FillWatch>;
  /** The blob from `position` on, from the primary, verified with `hash` (already fed with the bytes before `position`). */
  fromPrimary: (position: number, hash: Hash, size: number | undefined) => Promise<BlobSource>;
  /** The whole blob, which another worker of this host streams through uncached (joinable at `url`). */
  fromStream: (url: string, size: number | undefined) => Promise<BlobSource>;
  /** This process's feed of the fill writing `partialPath`, when this process runs it. */
  feed?: (partialPath: string) => FillFeed | undefined;
  /** Told when the reader joins the feed or falls behind it. */
  onFanOut?: (event: 'joined' | 'fell_behind') => void;
  /** A place in this process's feed of the fill, held for this reader from byte 0 (the fill's own client). */
  reader?: FeedReader;
}

/**
 * Waits for the fill to start (its size is then known, for the response
 * headers) and returns a source reading it; a fill that failed before it
 * started is taken over or fetched from the primary, as above.
 */
export async function openFillSource(watch: FillWatch, options: FillSourceOptions): Promise<BlobSource> {
  let current = watch;
  let takeovers = options.takeovers;
  let reader = options.reader;
  for (;;) {
    let state: Exclude<FillState, { status: 'pending' }>;
    try {
      state = await waitForStart(current, options);
    } catch (err) {
      reader?.close();
      current.close();
      throw err;
    }
    if (state.status === 'running' || state.status === 'done') return new FillSource(current, state.size, { ...options, takeovers, reader });
    reader?.close();
    reader = undefined;
    current.close();
    if (state.status === 'streaming') return options.fromStream(state.url, state.size);
    const recovery = fillRecovery(state.error);
    if (recovery === undefined) throw fillFailure(state.error);
    if (recovery === 'take-over' && takeovers > 0) {
      takeovers -= 1;
      current = await options.takeOver();
      continue;
    }
    return options.fromPrimary(0, createDigester(options.digest), undefined);
  }
}

/** Waits until the leader has the primary's headers, or the fill failed. */
async function waitForStart(
  watch: FillWatch,
  options: Pick<FillSourceOptions, 'clock' | 'stallTimeoutMs' | 'signal'>,
): Promise<Exclude<FillState, { status: 'pending' }>> {
  const deadline = options.clock.now() + options.stallTimeoutMs;
  for (;;) {
    const state = watch.state();
    if (state.status !== 'pending') return state;
    options.signal.throwIfAborted();
    const left = deadline - options.clock.now();
    if (left <= 0) throw new RegistryError('UPSTREAM_TIMEOUT', 'the fill in progress did not start in time');
    await watch.changed(Math.min(left, startPollMs));
  }
}

export function fillFailure(error: FillError): RegistryError {
  const code: ErrorCode = Object.hasOwn(errorDescriptors, error.code) ? (error.code as ErrorCode) : 'UNKNOWN';
  return new RegistryError(code, error.message, { detail: error.detail });
}

/** What a reader reads from: the fill's partial file, or the final blob once it was renamed. */
type FillFile = Pick<PartialFile, 'read' | 'close'>;

type Running = Extract<FillState, { status: 'running' | 'done' }>;

class FillSource implements BlobSource {
  private position = 0;
  private file: FillFile | undefined;
  /** While the reader keeps up with this process's fill: its place in the feed. */
  private reader: FeedReader | undefined;
  /** From the first failure on: the hash of every byte handed out so far. */
  private hash: Hash | undefined;
  private verified = false;
  /** Where the rest comes from once the fill is given up for the primary. */
  private remote: BlobSource | undefined;
  private lastProgress: number;
  private takeovers: number;
  private closed = false;
  private started = false;
  /** The last byte of the requested range (a Range request), held back like the blob's last byte. */
  private rangeEnd: number | undefined;
  /** The most bytes the fill was seen to hold: a fill that grows is not stalled, even while this reader waits (a range's last byte). */
  private seenBytes = 0;

  constructor(
    private watch: FillWatch,
    readonly size: number | undefined,
    private readonly options: FillSourceOptions,
  ) {
    this.lastProgress = options.clock.now();
    this.takeovers = options.takeovers;
    this.reader = options.reader;
    if (this.reader) options.onFanOut?.('joined');
  }

  /** A fill of known size serves any range: read in order from its start. */
  get seekable(): boolean {
    return this.size !== undefined;
  }

  get result(): CacheResult {
    return this.options.result;
  }

  willReadRange(start: number, end: number): void {
    if (this.started) throw new RangeError('a range must be chosen before the first read');
    this.position = start;
    this.rangeEnd = end;
    if (this.reader && this.reader.position !== start) this.leaveFeed(); // joins again at `start` if the window has it
  }

  /**
   * While this reader is on this process's feed of the fill: up to `length`
   * bytes as views of the feed's window, nothing copied ([] at the end).
   * Undefined when the bytes must come from elsewhere (the partial file,
   * the primary): the caller then uses read().
   */
  async readViews(position: number, length: number): Promise<Buffer[] | undefined> {
    if (position !== this.position) throw new RangeError(`a fill in progress is read in order (at ${this.position}, asked for ${position})`);
    if (this.closed) throw new Error('read after close');
    this.started = true;
    const coalesce = { waits: 0 };
    for (;;) {
      if (this.remote) return undefined;
      this.options.signal.throwIfAborted();
      if (!this.reader && !this.joinFeed(this.watch.state())) return undefined;
      const views: Buffer[] = [];
      const n = await this.fromFeed(this.reader!, views, length, coalesce);
      if (n !== undefined) return views;
    }
  }

  async read(buffer: Buffer, position: number, length: number): Promise<number> {
    if (position !== this.position) throw new RangeError(`a fill in progress is read in order (at ${this.position}, asked for ${position})`);
    if (this.closed) throw new Error('read after close');
    this.started = true;
    let waitMs = minWaitMs;
    let coalesced = false;
    const coalesce = { waits: 0 };
    for (;;) {
      if (this.remote) return this.fromRemote(this.remote, buffer, length);
      this.options.signal.throwIfAborted();
      const state = this.watch.state();
      if (this.reader || this.joinFeed(state)) {
        const n = await this.fromFeed(this.reader!, buffer, length, coalesce);
        if (n !== undefined) return n;
        waitMs = minWaitMs;
        continue;
      }
      if (state.status === 'failed') {
        await this.recover(state.error);
        waitMs = minWaitMs;
        continue;
      }
      if (state.status === 'running' || state.status === 'done') {
        this.seen(state.bytes);
        if (this.size !== undefined && state.size !== undefined && state.size !== this.size) {
          throw new RegistryError('UPSTREAM_UNAVAILABLE', `the blob is now ${state.size} bytes, not ${this.size}`);
        }
        const done = state.status === 'done';
        if (done && this.position >= state.size) return this.end();
        this.file ??= await this.openFile(state);
        if (this.file) {
          // Read what has landed; hold back the final byte until the fill is verified.
          let available = state.bytes;
          if (done) available = Math.min(available, state.size);
          else if (this.heldByte(state.size) !== undefined) available = Math.min(available, this.heldByte(state.size)!);
          let want = Math.min(length, available - this.position);
          if (!done && !coalesced && want > 0 && want < minReadBytes && available - this.position < length) {
            // Worth one more short wait: a tiny read costs a syscall and a socket write for little.
            coalesced = true;
            await this.watch.changed(coalesceMs);
            continue;
          }
          if (want <= 0 && !done && state.size === undefined) want = length; // unknown length: probe the file
          if (want > 0) {
            const n = await this.file.read(buffer, this.position, want);
            if (n > 0) return this.handOut(buffer, n, state.size);
          }
          if (done) throw new RegistryError('UNKNOWN', 'blob shorter than its verified size');
        }
      }
      if (this.options.clock.now() - this.lastProgress > this.options.stallTimeoutMs) {
        throw new RegistryError('UPSTREAM_TIMEOUT', 'the fill in progress stalled');
      }
      await this.watch.changed(waitMs);
      waitMs = Math.min(waitMs * 2, maxWaitMs);
    }
  }

  async settled(): Promise<void> {
    const deadline = this.options.clock.now() + this.options.stallTimeoutMs;
    while (!this.remote && !this.closed && this.watch.state().status === 'running') {
      this.options.signal.throwIfAborted();
      if (this.options.clock.now() >= deadline) throw new RegistryError('UPSTREAM_TIMEOUT', 'the fill did not finish in time');
      await this.watch.changed(maxWaitMs);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.reader?.close();
    this.reader = undefined;
    this.watch.close();
    await this.file?.close();
    await this.remote?.close();
  }

  private seen(bytes: number): void {
    if (bytes <= this.seenBytes) return;
    this.seenBytes = bytes;
    this.lastProgress = this.options.clock.now();
  }

  /** The index of the byte held back until the fill is verified: the range's last, or the blob's. */
  private heldByte(size: number | undefined): number | undefined {
    return this.rangeEnd ?? (size === undefined ? undefined : size - 1);
  }

  /** Starts reading from this process's feed of the fill, when it runs here and still holds the reader's next byte. */
  private joinFeed(state: FillState): boolean {
    if (state.status !== 'running' || !this.options.feed) return false;
    const feed = this.options.feed(state.partialPath);
    // Only the feed of the very fill this reader watches: its bytes and its outcome are the file's.
    if (!feed || feed.kind !== 'cached' || feed.partialPath !== state.partialPath || feed.status !== 'running') return false;
    if (this.size !== undefined && feed.size !== undefined && feed.size !== this.size) return false;
    this.reader = feed.reader(this.position);
    if (this.reader) this.options.onFanOut?.('joined');
    return this.reader !== undefined;
  }

  /**
   * One step on the feed, into `into` (copied into a buffer, or appended as
   * views): the bytes handed out, 0 at the end, or undefined when the caller
   * should loop (waited, fell behind onto the file, or recovered from a
   * failure).
   */
  private async fromFeed(reader: FeedReader, into: Buffer | Buffer[], length: number, coalesce: { waits: number }): Promise<number | undefined> {
    const feed = reader.feed;
    if (feed.status === 'failed') {
      await this.recover(feed.error!);
      return undefined;
    }
    const done = feed.status === 'done';
    if (done && this.position >= feed.end) return this.end();
    let limit = feed.end;
    if (!done) limit = Math.min(limit, this.heldByte(feed.size) ?? feed.end - 1);
    this.seen(feed.end);
    const available = limit - this.position;
    if (!done && available > 0 && available < Math.min(length, feedReadBytes) && coalesce.waits < feedCoalesceWaits) {
      // A chunk or two: worth a few short waits for more, rather than a socket write per network chunk.
      coalesce.waits += 1;
      await feed.changed(feedCoalesceMs);
      return undefined;
    }
    const n = Array.isArray(into) ? reader.views(into, length, limit) : reader.read(into, length, limit);
    if (n === 'behind') {
      // Slower than the fill: the bytes are in the partial file (the feed keeps what is not yet written).
      this.options.onFanOut?.('fell_behind');
      this.leaveFeed();
      return undefined;
    }
    if (n > 0) return this.handOut(into, n, feed.size);
    if (this.options.clock.now() - this.lastProgress > this.options.stallTimeoutMs) {
      throw new RegistryError('UPSTREAM_TIMEOUT', 'the fill in progress stalled');
    }
    await feed.changed(maxWaitMs);
    return undefined;
  }

  private leaveFeed(): void {
    this.reader?.close();
    this.reader = undefined;
  }

  /** The partial file, or the final blob when the partial is already renamed; undefined while neither is there. */
  private async openFile(state: Running): Promise<FillFile | undefined> {
    const partial = state.partialPath === '' ? undefined : await this.options.store.openPartial(state.partialPath);
    if (partial) return partial;
    const blob = await this.options.store.open(this.options.digest);
    if (blob) return blob;
    // Discarded: its failure is on its way (over IPC it can trail the file's removal).
    if (state.status === 'done') throw new RegistryError('BLOB_UNKNOWN', 'the blob was removed as soon as it was cached');
    return undefined;
  }

  private handOut(bytes: Buffer | Buffer[], n: number, size: number | undefined): number {
    this.lastProgress = this.options.clock.now();
    if (this.hash) {
      if (Array.isArray(bytes)) for (const view of bytes) this.hash.update(view);
      else this.hash.update(bytes.subarray(0, n));
      // The chunk with the last byte leaves only once everything this client got is verified.
      if (size !== undefined && this.position + n === size) this.verify(size);
    }
    this.position += n;
    return n;
  }

  private end(): number {
    if (this.hash) this.verify(this.position);
    return 0;
  }

  private verify(size: number): void {
    if (this.verified) return;
    this.verified = true;
    if (digestOfHash(digestAlgorithm(this.options.digest), this.hash!) !== this.options.digest) {
      throw new RegistryError('UPSTREAM_UNAVAILABLE', `the ${size} bytes sent do not match the digest`);
    }
  }

  private async fromRemote(remote: BlobSource, buffer: Buffer, length: number): Promise<number> {
    const n = await remote.read(buffer, this.position, length);
    this.position += n;
    return n;
  }

  /** Carries on after the fill failed: take over, or continue from the primary, or report the primary's answer. */
  private async recover(error: FillError): Promise<void> {
    const recovery = fillRecovery(error);
    if (recovery === undefined) throw fillFailure(error);
    if (this.rangeEnd !== undefined) {
      // The bytes of a range cannot be verified on their own: break off, the client asks again.
      throw new RegistryError('UPSTREAM_UNAVAILABLE', 'the fill serving this range failed', { detail: { reason: error.code } });
    }
    const hash = await this.sentHash();
    this.watch.close();
    if (recovery === 'take-over' && this.takeovers > 0) {
      this.takeovers -= 1;
      this.watch = await this.options.takeOver();
      this.lastProgress = this.options.clock.now();
      return;
    }
    this.remote = await this.options.fromPrimary(this.position, hash, this.size);
  }

  /**
   * The hash of every byte handed out so far: from the feed chunk the reader
   * is in (it carries the hash before it), else hashed back from the file
   * the bytes came from, the first time.
   */
  private async sentHash(): Promise<Hash> {
    if (!this.hash && this.reader) this.hash = this.reader.sentHash();
    this.leaveFeed();
    if (!this.hash) {
      const hash = createDigester(this.options.digest);
      if (this.position > 0) {
        if (!this.file) throw new RegistryError('UNKNOWN', 'lost the file the bytes already sent came from');
        const buffer = Buffer.allocUnsafe(Math.min(hashChunkBytes, this.position));
        for (let at = 0; at < this.position; ) {
          const n = await this.file.read(buffer, at, Math.min(buffer.length, this.position - at));
          if (n === 0) throw new RegistryError('UNKNOWN', 'partial file shorter than what was sent');
          hash.update(buffer.subarray(0, n));
          at += n;
        }
      }
      this.hash = hash;
    }
    await this.file?.close();
    this.file = undefined;
    return this.hash;
  }
}
