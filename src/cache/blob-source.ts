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
   * True when any byte range can be read now (a verified file), so a Range
   * request gets a 206. False while bytes are still arriving: the blob is
   * read in order from 0 and sent whole (200), which RFC 9110 allows.
   */
  readonly seekable: boolean;
  /** Reads up to `length` bytes at `position` into `buffer`; 0 at the end. Unseekable sources want positions in order. */
  read(buffer: Buffer, position: number, length: number): Promise<number>;
  /** Says the whole blob will be read from 0 in order (a local file that still needs verifying then hashes as it goes). */
  willReadWhole?(): void;
  /** Releases descriptors, watches and the remote's body. Safe to call more than once. */
  close(): Promise<void>;
}
