/**
 * Reading a blob that is not known to be intact (see "Crash safety" in
 * layout.ts): its bytes are hashed as they are read and compared with the
 * digest before the last of them is handed out. A whole sequential read
 * hashes as it goes — the read that returns the final bytes waits for the
 * check, so a reader never receives a complete wrong body; any other read
 * first hashes the whole file. A match marks the file verified; a mismatch
 * drops it and fails the read with {@link CorruptBlobError}.
 */
import type { Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { OpenBlob } from '../cache/ports.ts';
import { createDigester, digestAlgorithm, digestOfHash, type Digest } from '../registry/digest.ts';

/** A cached blob whose bytes do not match its digest; it has been dropped from the cache. */
export class CorruptBlobError extends Error {
  readonly code = 'BLOB_CORRUPT';
  constructor(readonly digest: Digest) {
    super(`cached blob ${digest} does not match its digest; dropped`);
    this.name = 'CorruptBlobError';
  }
}

/** Reads up to `size` bytes from the start of a file into a new buffer; returns it and how many bytes the file really had. */
export async function readWhole(handle: FileHandle, size: number): Promise<{ buffer: Buffer; bytes: number }> {
  const buffer = Buffer.allocUnsafe(size);
  let bytes = 0;
  while (bytes < size) {
    const { bytesRead } = await handle.read(buffer, bytes, size - bytes, bytes);
    if (bytesRead === 0) break;
    bytes += bytesRead;
  }
  return { buffer, bytes };
}

export function isCorruptBlob(err: unknown): err is CorruptBlobError {
  return err instanceof CorruptBlobError;
}

/** What a check does with its outcome (the store: mark the file verified, or drop it). */
export interface CheckOutcome {
  verified(handle: FileHandle): Promise<void>;
  corrupt(handle: FileHandle, digest: Digest): Promise<void>;
}

export interface CompleteOptions {
  /** Called after each chunk read (a scrub's rate limit). */
  throttle?: (bytes: number) => Promise<void>;
  signal?: AbortSignal;
}

const checkChunkBytes = 1024 * 1024;

/** The hash of a blob file's content, fed in order from byte 0. */
export class ContentCheck {
  private readonly hash: Hash;
  private hashedBytes = 0;
  private outcome: Promise<void> | undefined;
  private ok = false;

  constructor(
    private readonly handle: FileHandle,
    private readonly digest: Digest,
    private readonly size: number,
    private readonly report: CheckOutcome,
  ) {
    this.hash = createDigester(digest);
  }

  /** Bytes hashed so far: the only position at which a sequential read can go on hashing. */
  get hashed(): number {
    return this.hashedBytes;
  }

  get verified(): boolean {
    return this.ok;
  }

  /** Hashes bytes read at `position`; ignored unless they continue what was hashed. */
  feed(chunk: Uint8Array, position: number): void {
    if (this.outcome || position !== this.hashedBytes || chunk.byteLength === 0) return;
    this.hash.update(chunk);
    this.hashedBytes += chunk.byteLength;
  }

  /** Compares what was hashed with the digest; rejects with CorruptBlobError (after dropping the file) on a mismatch. */
  finish(): Promise<void> {
    this.outcome ??= this.conclude();
    return this.outcome;
  }

  /** Reads and hashes the rest of the file, then finishes. */
  async complete(options: CompleteOptions = {}): Promise<void> {
    if (!this.outcome) {
      const buffer = Buffer.allocUnsafe(Math.min(checkChunkBytes, Math.max(this.size - this.hashedBytes, 1)));
      while (this.hashedBytes < this.size) {
        options.signal?.throwIfAborted();
        const { bytesRead } = await this.handle.read(buffer, 0, Math.min(buffer.length, this.size - this.hashedBytes), this.hashedBytes);
        if (bytesRead === 0) break;
        this.feed(buffer.subarray(0, bytesRead), this.hashedBytes);
        await options.throttle?.(bytesRead);
      }
    }
    return this.finish();
  }

  private async conclude(): Promise<void> {
    const actual = digestOfHash(digestAlgorithm(this.digest), this.hash);
    if (this.hashedBytes === this.size && actual === this.digest) {
      this.ok = true;
      await this.report.verified(this.handle).catch(() => undefined);
      return;
    }
    await this.report.corrupt(this.handle, this.digest).catch(() => undefined);
    throw new CorruptBlobError(this.digest);
  }
}


/** An OpenBlob over a file that is verified by the reading itself. */
export class VerifyingOpenBlob implements OpenBlob {
  private whole = false;

  constructor(
    private readonly handle: FileHandle,
    readonly size: number,
    private readonly check: ContentCheck,
  ) {}

  willReadWhole(): void {
    this.whole = true;
  }

  async read(buffer: Buffer, position: number, length: number): Promise<number> {
    if (!this.check.verified) {
      if (!this.whole || position !== this.check.hashed) {
        await this.check.complete();
      } else {
        const { bytesRead } = await this.handle.read(buffer, 0, length, position);
        this.check.feed(buffer.subarray(0, bytesRead), position);
        // The read that reaches the end (or finds the file short) returns only once the digest matched.
        if (bytesRead === 0 || this.check.hashed >= this.size) await this.check.finish();
        return bytesRead;
      }
    }
    const { bytesRead } = await this.handle.read(buffer, 0, length, position);
    return bytesRead;
  }

  async readAll(): Promise<Buffer> {
    const { buffer, bytes: offset } = await readWhole(this.handle, this.size);
    if (!this.check.verified) {
      if (this.check.hashed === 0) {
        this.check.feed(buffer.subarray(0, offset), 0);
        await this.check.finish();
      } else {
        await this.check.complete();
      }
    }
    if (offset < this.size) throw new Error('blob shorter than its size');
    return buffer;
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}
