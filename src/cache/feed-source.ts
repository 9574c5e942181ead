/**
 * The feed source: a blob that streams through uncached (larger than the
 * budget, disk full or unwritable), read from the uncached feed this process
 * shares for it (fill-feed.ts). The feed verifies the whole transfer once;
 * the last byte is held back until it did, so a lying primary breaks every
 * reader's connection before a body looks complete.
 *
 * A reader that falls behind the feed's window does not hold memory: it
 * continues with its own fetch from its position (a Range), verified
 * against the hash of exactly the bytes it handed out (remote-source.ts).
 */
import type { Hash } from 'node:crypto';
import { RegistryError } from '../registry/errors.ts';
import type { BlobSource } from './blob-source.ts';
import type { FeedReader } from './fill-feed.ts';
import { fillFailure } from './fill-source.ts';
import { fillRecovery, type CacheResult, type Clock } from './ports.ts';

export interface FeedSourceOptions {
  clock: Clock;
  /** Give up when the feed makes no progress for this long. */
  stallTimeoutMs: number;
  /** The client's signal: stop waiting when it goes away. */
  signal: AbortSignal;
  result: CacheResult;
  /** The blob from `position` on, verified with `hash` (the hash of every byte before `position`). */
  fromPosition: (position: number, hash: Hash, size: number | undefined) => Promise<BlobSource>;
  /** Told when the reader falls behind the window. */
  onFanOut?: (event: 'joined' | 'fell_behind') => void;
}

const waitMs = 50;

export class FeedSource implements BlobSource {
  readonly seekable = false;
  readonly size: number | undefined;
  private position = 0;
  private remote: BlobSource | undefined;
  private lastProgress: number;
  private closed = false;

  constructor(
    private readonly reader: FeedReader,
    private readonly options: FeedSourceOptions,
  ) {
    this.size = reader.feed.size;
    this.lastProgress = options.clock.now();
  }

  get result(): CacheResult {
    return this.options.result;
  }

  async read(buffer: Buffer, position: number, length: number): Promise<number> {
    if (position !== this.position) throw new RangeError(`a streamed blob is read in order (at ${this.position}, asked for ${position})`);
    if (this.closed) throw new Error('read after close');
    const feed = this.reader.feed;
    for (;;) {
      if (this.remote) {
        const n = await this.remote.read(buffer, this.position, length);
        this.position += n;
        return n;
      }
      this.options.signal.throwIfAborted();
      if (feed.status === 'failed') {
        // The primary's answer ends the read; a transfer stopped on this side (nobody read it for a while) goes on from the primary.
        if (fillRecovery(feed.error!) === undefined) throw fillFailure(feed.error!);
        await this.fallBehind();
        continue;
      }
      const done = feed.status === 'done';
      if (done && this.position >= feed.end) return 0;
      // Hold back the last byte until the whole transfer is verified.
      const limit = done ? feed.end : this.size !== undefined ? Math.min(feed.end, this.size - 1) : feed.end - 1;
      const n = this.reader.read(buffer, length, limit);
      if (n === 'behind') {
        await this.fallBehind();
        continue;
      }
      if (n > 0) {
        this.position += n;
        this.lastProgress = this.options.clock.now();
        return n;
      }
      if (this.options.clock.now() - this.lastProgress > this.options.stallTimeoutMs) {
        throw new RegistryError('UPSTREAM_TIMEOUT', 'the streamed-through blob stalled');
      }
      await feed.changed(waitMs);
    }
  }

  /** Off the window: the rest comes from this reader's own fetch. */
  private async fallBehind(): Promise<void> {
    const hash = this.reader.sentHash();
    this.reader.close();
    this.options.onFanOut?.('fell_behind');
    if (!hash) throw new RegistryError('UNKNOWN', 'lost the hash of the bytes already sent');
    this.remote = await this.options.fromPosition(this.position, hash, this.size);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.reader.close();
    await this.remote?.close();
  }
}
