/**
 * Reads a blob while it is being filled: tails the partial file as it grows,
 * waking on the fill's progress. The last byte is held back until the fill is
 * verified, so a client can never see a complete body the digest check later
 * rejects; a failed fill ends the stream with an error (the HTTP layer then
 * breaks the connection) — unless the fill failed on the local disk, in which
 * case the reader resumes from its position straight from the primary.
 */
import { createHash, type Hash } from 'node:crypto';
import { parseDigest } from '../registry/digest.ts';
import { RegistryError, type ErrorCode } from '../registry/errors.ts';
import type { BlobStore, FillState, FillWatch, PartialFile } from './ports.ts';

const chunkBytes = 256 * 1024;
/** Below this many new bytes a reader waits briefly for more rather than issue a tiny read. */
const minReadBytes = 64 * 1024;
const coalesceMs = 20;
const minWaitMs = 2;
const maxWaitMs = 50;

/** Continues a blob from `position`, given the hash of the bytes before it. */
export type ResumeFrom = (position: number, hash: Hash, size: number | undefined) => AsyncIterable<Buffer>;

function failure(state: Extract<FillState, { status: 'failed' }>): RegistryError {
  return new RegistryError(state.error.code as ErrorCode, state.error.message, { detail: state.error.detail });
}

/** Waits until the leader has the primary's headers (or failed). */
export async function waitForStart(watch: FillWatch, timeoutMs: number, signal: AbortSignal): Promise<Extract<FillState, { status: 'running' | 'done' }>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = watch.state();
    if (state.status === 'failed') throw failure(state);
    if (state.status !== 'pending') return state;
    signal.throwIfAborted();
    const left = deadline - Date.now();
    if (left <= 0) throw new RegistryError('UPSTREAM_TIMEOUT', 'the fill in progress did not start in time');
    await watch.changed(Math.min(left, 1000));
  }
}

export interface FollowOptions {
  digest: string;
  /** Give up when the fill makes no progress for this long. */
  stallTimeoutMs: number;
  signal: AbortSignal;
  /** Where to continue when the fill fails with one of `resumeCodes`. */
  resume?: ResumeFrom;
  resumeCodes?: ReadonlySet<string>;
}

async function hashPrefix(partial: PartialFile, digest: string, length: number): Promise<Hash> {
  const hash = createHash(parseDigest(digest).algorithm);
  const buffer = Buffer.allocUnsafe(chunkBytes);
  let position = 0;
  while (position < length) {
    const read = await partial.read(buffer, position, Math.min(chunkBytes, length - position));
    if (read === 0) throw new RegistryError('UNKNOWN', 'partial file shorter than what was sent');
    hash.update(buffer.subarray(0, read));
    position += read;
  }
  return hash;
}

export async function* followFill(store: BlobStore, watch: FillWatch, options: FollowOptions): AsyncGenerator<Buffer> {
  const { signal } = options;
  const canResume = (state: FillState): boolean =>
    state.status === 'failed' && options.resume !== undefined && (options.resumeCodes?.has(state.error.code) ?? false);
  const first = await waitForStart(watch, options.stallTimeoutMs, signal);
  const partial = await store.openPartial(first.partialPath);
  if (!partial) {
    // Renamed already (done) or discarded (failed): whichever, the final blob decides.
    const blob = await store.open(options.digest);
    if (blob) {
      watch.close();
      yield* blob.stream() as AsyncIterable<Buffer>;
      return;
    }
    const state = watch.state();
    watch.close();
    if (canResume(state)) {
      yield* options.resume!(0, createHash(parseDigest(options.digest).algorithm), first.size);
      return;
    }
    throw state.status === 'failed' ? failure(state) : new RegistryError('BLOB_UNKNOWN', 'the fill in progress was discarded');
  }
  try {
    let position = 0;
    let waitMs = minWaitMs;
    let lastProgress = Date.now();
    for (;;) {
      signal.throwIfAborted();
      const state = watch.state();
      if (state.status === 'failed') {
        if (canResume(state)) {
          // What the partial file has is still readable through our descriptor; only bytes we sent are hashed.
          const hash = await hashPrefix(partial, options.digest, position);
          yield* options.resume!(position, hash, first.size);
          return;
        }
        throw failure(state);
      }
      const done = state.status === 'done';
      const size = state.status === 'pending' ? undefined : state.size;
      if (done && size !== undefined && position >= size) return;
      // Read what has landed (the fill reports bytes in the file), in pieces worth a syscall;
      // hold back the final byte until the digest is verified.
      let available = state.status === 'pending' ? 0 : state.bytes;
      if (size !== undefined) available = Math.min(available, done ? size : size - 1);
      let want = Math.min(chunkBytes, available - position);
      if (!done && want < minReadBytes && available - position < chunkBytes && Date.now() - lastProgress < coalesceMs) want = 0;
      if (want <= 0 && !done && size === undefined) want = chunkBytes; // unknown length: probe the file
      if (want > 0) {
        const buffer = Buffer.allocUnsafe(want);
        const read = await partial.read(buffer, position, want);
        if (read > 0) {
          position += read;
          waitMs = minWaitMs;
          lastProgress = Date.now();
          yield read === want ? buffer : buffer.subarray(0, read);
          continue;
        }
      }
      if (done) {
        if (size === undefined) return; // unknown length: all bytes read
        throw new RegistryError('UNKNOWN', 'blob shorter than its verified size');
      }
      if (Date.now() - lastProgress > options.stallTimeoutMs) {
        throw new RegistryError('UPSTREAM_TIMEOUT', 'the fill in progress stalled');
      }
      await watch.changed(waitMs);
      waitMs = Math.min(waitMs * 2, maxWaitMs);
    }
  } finally {
    await partial.close();
    watch.close();
  }
}
