/**
 * The fill source: a blob read while it is being filled on this host. It
 * tails the partial file as it grows, waking on the fill's progress, straight
 * into the caller's buffer. The last byte is held back until the fill is
 * verified, so a client never sees a complete body the digest check later
 * rejects.
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
import { fillRecovery, type BlobStore, type CacheResult, type Clock, type FillError, type FillState, type FillWatch, type PartialFile } from './ports.ts';

/** Below this many new bytes a reader waits once more (a little) rather than issue a tiny read. */
const minReadBytes = 64 * 1024;
const coalesceMs = 20;
const minWaitMs = 2;
const maxWaitMs = 50;
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
}

/**
 * Waits for the fill to start (its size is then known, for the response
 * headers) and returns a source reading it; a fill that failed before it
 * started is taken over or fetched from the primary, as above.
 */
export async function openFillSource(watch: FillWatch, options: FillSourceOptions): Promise<BlobSource> {
  let current = watch;
  let takeovers = options.takeovers;
  for (;;) {
    let state: Exclude<FillState, { status: 'pending' }>;
    try {
      state = await waitForStart(current, options);
    } catch (err) {
      current.close();
      throw err;
    }
    if (state.status !== 'failed') return new FillSource(current, state.size, { ...options, takeovers });
    current.close();
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

function fillFailure(error: FillError): RegistryError {
  const code: ErrorCode = Object.hasOwn(errorDescriptors, error.code) ? (error.code as ErrorCode) : 'UNKNOWN';
  return new RegistryError(code, error.message, { detail: error.detail });
}

/** What a reader reads from: the fill's partial file, or the final blob once it was renamed. */
type FillFile = Pick<PartialFile, 'read' | 'close'>;

class FillSource implements BlobSource {
  readonly seekable = false;
  private position = 0;
  private file: FillFile | undefined;
  /** From the first failure on: the hash of every byte handed out so far. */
  private hash: Hash | undefined;
  private verified = false;
  /** Where the rest comes from once the fill is given up for the primary. */
  private remote: BlobSource | undefined;
  private lastProgress: number;
  private takeovers: number;
  private closed = false;

  constructor(
    private watch: FillWatch,
    readonly size: number | undefined,
    private readonly options: FillSourceOptions,
  ) {
    this.lastProgress = options.clock.now();
    this.takeovers = options.takeovers;
  }

  get result(): CacheResult {
    return this.options.result;
  }

  async read(buffer: Buffer, position: number, length: number): Promise<number> {
    if (position !== this.position) throw new RangeError(`a fill in progress is read in order (at ${this.position}, asked for ${position})`);
    if (this.closed) throw new Error('read after close');
    let waitMs = minWaitMs;
    let coalesced = false;
    for (;;) {
      if (this.remote) return this.fromRemote(this.remote, buffer, length);
      this.options.signal.throwIfAborted();
      const state = this.watch.state();
      if (state.status === 'failed') {
        await this.recover(state.error);
        waitMs = minWaitMs;
        continue;
      }
      if (state.status !== 'pending') {
        if (this.size !== undefined && state.size !== undefined && state.size !== this.size) {
          throw new RegistryError('UPSTREAM_UNAVAILABLE', `the blob is now ${state.size} bytes, not ${this.size}`);
        }
        const done = state.status === 'done';
        if (done && this.position >= state.size) return this.end();
        this.file ??= await this.openFile(state);
        if (this.file) {
          // Read what has landed; hold back the final byte until the fill is verified.
          let available = state.bytes;
          if (state.size !== undefined) available = Math.min(available, done ? state.size : state.size - 1);
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
            if (n > 0) return this.handOut(buffer, n, state);
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

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watch.close();
    await this.file?.close();
    await this.remote?.close();
  }

  /** The partial file, or the final blob when the partial is already renamed; undefined while neither is there. */
  private async openFile(state: Extract<FillState, { status: 'running' | 'done' }>): Promise<FillFile | undefined> {
    const partial = state.partialPath === '' ? undefined : await this.options.store.openPartial(state.partialPath);
    if (partial) return partial;
    const blob = await this.options.store.open(this.options.digest);
    if (blob) return blob;
    // Discarded: its failure is on its way (over IPC it can trail the file's removal).
    if (state.status === 'done') throw new RegistryError('BLOB_UNKNOWN', 'the blob was removed as soon as it was cached');
    return undefined;
  }

  private handOut(buffer: Buffer, n: number, state: Extract<FillState, { status: 'running' | 'done' }>): number {
    this.lastProgress = this.options.clock.now();
    if (this.hash) {
      this.hash.update(buffer.subarray(0, n));
      // The chunk with the last byte leaves only once everything this client got is verified.
      if (state.size !== undefined && this.position + n === state.size) this.verify(state.size);
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

  /** The hash of every byte handed out so far; hashed back from the file they came from the first time. */
  private async sentHash(): Promise<Hash> {
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
