/**
 * A blob as the HTTP layer sends it, whichever source answers: the local
 * file (local-source.ts), a fill in progress on this host (fill-source.ts),
 * the primary streamed through (remote-source.ts) — and later a peer
 * replica, as another remote. One interface, like distribution's proxy blob
 * store, which has the same interface as the local store; HTTP never asks
 * which kind it holds.
 *
 * Every source hands out only verified bytes, or holds back the last byte
 * until the whole blob is verified: a read that rejects means the client must
 * not get a complete-looking body (HTTP breaks the connection).
 */
import type { CacheResult } from './ports.ts';

export interface BlobSource {
  /** The blob's size; undefined only while a fill of unknown length runs. */
  readonly size: number | undefined;
  /** How this request was answered (hit, miss, coalesced, passthrough), for logs and metrics. */
  readonly result: CacheResult;
  /**
   * True when a Range request gets a 206: a verified file (any range at
   * once), or a fill of known size (the range is read in order from its
   * start as the bytes arrive, its last byte held until the fill is
   * verified; see willReadRange). False for a blob streamed through: it is
   * read in order from 0, and a range of it is served by reading it whole
   * (whole-range.ts).
   */
  readonly seekable: boolean;
  /** Reads up to `length` bytes at `position` into `buffer`; 0 at the end. Sources still filling want positions in order. */
  read(buffer: Buffer, position: number, length: number): Promise<number>;
  /**
   * Up to `length` bytes at `position` as views of memory the source shares
   * (a fill's in-memory window, fill-feed.ts), copied nowhere; [] at the
   * end; undefined when this read must go through read(). The views are
   * never written to and are held only until the socket has taken them.
   */
  readViews?(position: number, length: number): Promise<Buffer[] | undefined>;
  /** Says the whole blob will be read from 0 in order (a local file that still needs verifying then hashes as it goes). */
  willReadWhole?(): void;
  /** Says only bytes [start, end] will be read, in order from `start` (a fill in progress then starts there). */
  willReadRange?(start: number, end: number): void;
  /**
   * Resolves once the fill behind this source has ended: the blob is cached,
   * or the fill failed. A fill hands out its last byte as soon as it is
   * verified, before the blob is durable and in the cache; a caller that
   * must know the cache holds what it read (warming) waits for this. Absent
   * or at once for sources that are no fill.
   */
  settled?(): Promise<void>;
  /** Releases descriptors, watches and the remote's body. Safe to call more than once. */
  close(): Promise<void>;
}

/**
 * Reads a source to its end, discarding the bytes (into `buffer`), and waits
 * for the fill behind it to end: what warming a blob into the cache takes
 * (prefetch, pins). `onBytes` is told of every read.
 */
export async function readIntoCache(source: BlobSource, buffer: Buffer, signal?: AbortSignal, onBytes?: (n: number) => void): Promise<void> {
  source.willReadWhole?.();
  for (let position = 0; ; ) {
    signal?.throwIfAborted();
    const n = await source.read(buffer, position, buffer.length);
    if (n === 0) break;
    position += n;
    onBytes?.(n);
  }
  // Cached means durable: the last byte comes once verified, the cache entry a moment later.
  await source.settled?.();
}
