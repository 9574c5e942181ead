/**
 * The buffers a response reads a blob into before the socket takes them.
 *
 * A big body of known size — a verified file, or a fill in progress —
 * goes out in 1 MiB chunks: a quarter of the reads, threadpool hops,
 * promises and socket writes of 256 KiB chunks, measured at 0.61–0.72× the
 * CPU per GB for one warm client and 0.84–0.90× for eight (bench --compare,
 * see bench/README.md). Those chunks come from a bounded pool that keeps the
 * buffers it lends for the next response (no allocation per response); a
 * response that finds the pool exhausted — many concurrent or slow clients,
 * e.g. ~100 followers of one fill per worker — gets one 128 KiB buffer of
 * its own instead, read and written in turn: with that many responses
 * the next read in flight gains nothing, and each holds half as much
 * (with the workers' fixed mmap threshold, worker-exec.ts: bench
 * `slow-200` worst peak − idle 57 vs 72 MiB, `cold-200` 82 vs 93; cold
 * pull and cold GETs ≈). Small bodies and fills of unknown
 * length keep two 256 KiB chunks.
 */

/** Chunk size of a response that does not use the pool. */
export const defaultChunkBytes = 256 * 1024;

export interface SendBufferPoolOptions {
  /** Size of each pooled buffer. */
  chunkBytes: number;
  /** Upper bound of the bytes the pool lends at once (and keeps for reuse). */
  maxBytes: number;
  /** What a big body gets when the pool is exhausted: one buffer of this size. */
  fallbackChunkBytes: number;
  /** Bodies shorter than this never use the pool (a few chunks gain nothing). */
  minBodyBytes: number;
}

/**
 * The buffers of one response, `slots` of them (two: the next read in
 * flight while the socket takes a chunk; one: read, then write, then read
 * again), allocated (or taken from the pool) when first asked for: a
 * response that sends views of a fill's window (BlobSource.readViews) needs
 * none, and only uses `chunkBytes` as the most it holds per write and
 * `slots` as the most writes it has in flight. Give them back with
 * `release` once no read or write uses them.
 */
export interface SendBuffers {
  buffer(i: number): Buffer;
  readonly chunkBytes: number;
  readonly slots: 1 | 2;
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

  /** Buffers for a body of `bodyBytes` (undefined: unknown length, a fill that has not said). */
  take(bodyBytes: number | undefined): SendBuffers {
    const { chunkBytes, maxBytes, fallbackChunkBytes, minBodyBytes } = this.options;
    const big = bodyBytes !== undefined && bodyBytes >= minBodyBytes;
    const pooled = big && this.lent + 2 * chunkBytes <= maxBytes;
    const buffers: Array<Buffer | undefined> = [undefined, undefined];
    if (!pooled) {
      const size = big ? fallbackChunkBytes : defaultChunkBytes;
      return { buffer: (i) => (buffers[i] ??= Buffer.allocUnsafe(size)), chunkBytes: size, slots: big ? 1 : 2, release: () => undefined };
    }
    this.lent += 2 * chunkBytes;
    let released = false;
    return {
      buffer: (i) => (buffers[i] ??= this.free.pop() ?? Buffer.allocUnsafe(chunkBytes)),
      chunkBytes,
      slots: 2,
      release: () => {
        if (released) return;
        released = true;
        this.lent -= 2 * chunkBytes;
        for (const buffer of buffers) if (buffer) this.free.push(buffer);
      },
    };
  }
}

/**
 * This process's pool: 16 MiB of 1 MiB chunks (8 fast responses at once per
 * process), one 128 KiB buffer for each of the rest. 200 slow clients cost a
 * worker about 16 + 100 × 0.125 MiB instead of 100 × 2 MiB.
 */
export const sendBufferPool = new SendBufferPool({
  chunkBytes: 1024 * 1024,
  maxBytes: 16 * 1024 * 1024,
  fallbackChunkBytes: 128 * 1024,
  minBodyBytes: 4 * 1024 * 1024,
});
