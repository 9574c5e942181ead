/**
 * The remote source: a blob streamed from a remote registry — the primary
 * today, a peer replica later — to one client without touching the disk,
 * verified on the way (verified-body.ts).
 *
 * It also finishes what another source started: given the position the
 * client is at and the hash of every byte it already received, it asks for
 * the rest with a Range. When the remote ignores the Range and answers from
 * byte 0, the skipped prefix is hashed and compared with what was sent; and
 * the hash that decides at the end covers exactly the bytes the client got —
 * the sent prefix plus this body — so a client never completes a body whose
 * two halves came from different bytes.
 */
import { createDigester, type Digest } from '../registry/digest.ts';
import { RegistryError } from '../registry/errors.ts';
import type { Hash } from 'node:crypto';
import type { BlobSource } from './blob-source.ts';
import { destroyBody, type BlobResponse, type CacheResult } from './ports.ts';
import { afterSentPrefix, verifiedBody } from './verified-body.ts';

/** Asks the remote for the blob from `start` on (a Range when `start` > 0). */
export type RemoteFetch = (start: number, signal: AbortSignal) => Promise<BlobResponse>;

export interface RemoteSourceOptions {
  digest: Digest;
  /** Where the client is: the bytes before it were already sent (0 for a whole blob). */
  position: number;
  /** Hash of the bytes before `position` (a fresh one at 0). */
  hash: Hash;
  /** The size the client was told, if any; the remote must agree. */
  size: number | undefined;
  result: CacheResult;
  /** The client's signal: its going away stops the transfer. */
  signal: AbortSignal;
  /** Maps a failure while reading the remote's body. */
  bodyFailure: (err: unknown) => RegistryError;
}

/** Fetches the blob (from `options.position`) and returns it as a source. */
export async function openRemoteSource(fetch: RemoteFetch, options: RemoteSourceOptions): Promise<BlobSource> {
  options.signal.throwIfAborted();
  const controller = new AbortController();
  const abort = (): void => controller.abort();
  options.signal.addEventListener('abort', abort, { once: true });
  let response: BlobResponse;
  try {
    response = await fetch(options.position, controller.signal);
  } catch (err) {
    throw err;
  } finally {
    options.signal.removeEventListener('abort', abort);
  }
  return remoteSource(response, controller, options);
}

/** A source over a response already in hand (a leader that streams through what it fetched). */
export function remoteSource(response: BlobResponse, controller: AbortController, options: RemoteSourceOptions): BlobSource {
  const source = new RemoteSource(response, controller, options);
  if (response.offset !== options.position && response.offset !== 0) {
    source.stop();
    throw new RegistryError('UPSTREAM_UNAVAILABLE', 'the primary answered a Range with bytes from elsewhere');
  }
  if (options.size !== undefined && response.size !== undefined && response.size !== options.size) {
    source.stop();
    throw new RegistryError('UPSTREAM_UNAVAILABLE', `the primary now reports ${response.size} bytes, not ${options.size}`);
  }
  return source;
}

class RemoteSource implements BlobSource {
  readonly seekable = false;
  readonly size: number | undefined;
  private position: number;
  private chunk: Buffer = Buffer.alloc(0);
  private readonly chunks: AsyncIterator<Buffer>;

  constructor(
    private readonly response: BlobResponse,
    private readonly controller: AbortController,
    private readonly options: RemoteSourceOptions,
  ) {
    this.size = options.size ?? response.size;
    this.position = options.position;
    let body = response.body as AsyncIterable<Buffer>;
    if (response.offset !== options.position) {
      // The remote ignored the Range and starts at 0: check the prefix the client already has, continue after it.
      body = afterSentPrefix(body, options.position, options.hash, createDigester(options.digest));
    }
    this.chunks = verifiedBody(body, { digest: options.digest, hash: options.hash, offset: options.position, size: this.size, bodyFailure: options.bodyFailure })[
      Symbol.asyncIterator
    ]();
    if (options.signal.aborted) this.stop();
    else options.signal.addEventListener('abort', this.stop, { once: true });
  }

  /** Going away, or closing, destroys the body: a read waiting on the remote rejects at once. */
  readonly stop = (): void => {
    this.options.signal.removeEventListener('abort', this.stop);
    this.controller.abort();
    destroyBody(this.response.body);
  };

  get result(): CacheResult {
    return this.options.result;
  }

  async read(buffer: Buffer, position: number, length: number): Promise<number> {
    if (position !== this.position) throw new RangeError(`a streamed blob is read in order (at ${this.position}, asked for ${position})`);
    while (this.chunk.length === 0) {
      const next = await this.chunks.next();
      if (next.done) return 0;
      this.chunk = next.value;
    }
    const n = this.chunk.copy(buffer, 0, 0, Math.min(length, this.chunk.length));
    this.chunk = this.chunk.subarray(n);
    this.position += n;
    return n;
  }

  async close(): Promise<void> {
    this.stop();
  }
}
