/**
 * The buffers a response reads a blob into before the socket takes them.
 *
 * A big verified file goes out in 1 MiB chunks: a quarter of the reads,
 * threadpool hops, promises and socket writes of 256 KiB chunks, measured at
 * 0.61× the CPU per GB for one client and 0.90× for eight (bench --compare,
 * see bench/README.md). Those chunks come from a bounded pool that keeps the
 * buffers it lends for the next response (no allocation per response, and
 * nothing for the allocator to hold on to afterwards); a response that finds
 * the pool exhausted — many concurrent or slow clients — gets two small
 * buffers of its own instead, so memory stays bounded by the pool plus a
 * small amount per connection. Everything else (fills, short ranges) keeps
 * the 256 KiB chunks it always had: lending the pool to fills too was
 * measured (bench `cold-200`, `slow-200`) and bought no memory, so fills are
 * left as they were.
 */

/** Chunk size of a response that does not use the pool. */
export const defaultChunkBytes = 256 * 1024;

export interface SendBufferPoolOptions {
  /** Size of each pooled buffer. */
  chunkBytes: number;
  /** Upper bound of the bytes the pool lends at once (and keeps for reuse). */
  maxBytes: number;
  /** What a response gets when the pool is exhausted: two buffers of this size. */
  fallbackChunkBytes: number;
  /** Bodies shorter than this never use the pool (a few chunks gain nothing). */
  minBodyBytes: number;
}

/** Two buffers for one response; give them back with `release` once no read or write uses them. */
export interface SendBuffers {
  readonly buffers: readonly [Buffer, Buffer];
  readonly chunkBytes: number;
  release(): void;
}

export class SendBufferPool {
  private readonly free: Buffer[] = [];
  private lent = 0;

  constructor(private readonly options: SendBufferPoolOptions) {}

  /** Bytes lent out now. */
  get lentBytes(): number {
    return this.lent;
  }

  /** Bytes held for reuse now. */
  get idleBytes(): number {
    return this.free.length * this.options.chunkBytes;
  }

  /**
   * Buffers for a body of `bodyBytes` (undefined: unknown length) read from a
   * source that can be read ahead (`seekable`: a verified file).
   */
  take(bodyBytes: number | undefined, seekable: boolean): SendBuffers {
    const { chunkBytes, maxBytes, fallbackChunkBytes, minBodyBytes } = this.options;
    const pooled = seekable && bodyBytes !== undefined && bodyBytes >= minBodyBytes && this.lent + 2 * chunkBytes <= maxBytes;
    if (!pooled) {
      const size = seekable && bodyBytes !== undefined && bodyBytes >= minBodyBytes ? fallbackChunkBytes : defaultChunkBytes;
      return { buffers: [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)], chunkBytes: size, release: () => undefined };
    }
    this.lent += 2 * chunkBytes;
    const buffers: [Buffer, Buffer] = [this.free.pop() ?? Buffer.allocUnsafe(chunkBytes), this.free.pop() ?? Buffer.allocUnsafe(chunkBytes)];
    let released = false;
    return {
      buffers,
      chunkBytes,
      release: () => {
        if (released) return;
        released = true;
        this.lent -= 2 * chunkBytes;
        this.free.push(...buffers);
      },
    };
  }
}

/**
 * This process's pool: 16 MiB of 1 MiB chunks (8 fast responses at once per
 * process), 128 KiB buffers for the rest. 200 slow clients cost a worker
 * about 16 + 100 × 0.25 MiB instead of 100 × 2 MiB.
 */
export const sendBufferPool = new SendBufferPool({
  chunkBytes: 1024 * 1024,
  maxBytes: 16 * 1024 * 1024,
  fallbackChunkBytes: 128 * 1024,
  minBodyBytes: 4 * 1024 * 1024,
});
