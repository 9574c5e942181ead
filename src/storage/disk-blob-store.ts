/**
 * Content-addressed blob storage on local disk (see layout.ts for the tree).
 * Ingest writes to a partial file in `ingest/`, hashes while writing, and
 * renames into `blobs/` only when size and digest match, after flushing the
 * file (and then the directory) to stable storage; nothing unverified is
 * ever made visible under `blobs/`.
 *
 * After an unclean shutdown the blobs already there are not trusted until
 * read once (see "Crash safety" in layout.ts): `open` hands out a blob that
 * verifies itself as it is read, and drops it when it does not match.
 */
import { type Hash } from 'node:crypto';
import type { Stats } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { BlobCheckResult, BlobFiles, BlobIngest, BlobStore, BlobVerifier, Clock, OpenBlob, PartialFile } from '../cache/ports.ts';
import { createDigester, digestAlgorithm, digestOfHash, type Digest } from '../registry/digest.ts';
import { readUnverifiedBefore } from './crash-state.ts';
import { fsyncFileSync, makeDirDurable, type FileSync } from './file-sync.ts';
import { writerTag, type CacheLayout } from './layout.ts';
import { ContentCheck, isCorruptBlob, readWhole, VerifyingOpenBlob, type CheckOutcome, type CompleteOptions } from './verifying-blob.ts';

/** Error thrown by commit() when the content does not match its digest or announced size. */
export class IngestVerificationError extends Error {
  readonly code: 'DIGEST_MISMATCH' | 'SIZE_MISMATCH';
  constructor(code: 'DIGEST_MISMATCH' | 'SIZE_MISMATCH', message: string) {
    super(message);
    this.name = 'IngestVerificationError';
    this.code = code;
  }
}

/** Unverified blobs up to this size are hashed whole when opened (manifests, configs, small layers). */
const verifyAtOpenBytes = 4 * 1024 * 1024;
/** Bytes a fill may queue for writing before the network read waits for the disk. */
const ingestHighWaterBytes = 4 * 1024 * 1024;

/** The chunks left after the first `written` bytes of a short writev. */
function remainder(chunks: Uint8Array[], written: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = written;
  for (const chunk of chunks) {
    if (skip >= chunk.byteLength) {
      skip -= chunk.byteLength;
      continue;
    }
    out.push(skip > 0 ? chunk.subarray(skip) : chunk);
    skip = 0;
  }
  return out;
}

/** Bytes a file takes on disk (allocated blocks), which is what the budget counts. */
export function diskBytes(info: { blocks: number; size: number }): number {
  return info.blocks > 0 ? info.blocks * 512 : info.size;
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

class DiskOpenBlob implements OpenBlob {
  constructor(
    private readonly handle: FileHandle,
    readonly size: number,
  ) {}

  async read(buffer: Buffer, position: number, length: number): Promise<number> {
    const { bytesRead } = await this.handle.read(buffer, 0, length, position);
    return bytesRead;
  }

  async readAll(): Promise<Buffer> {
    const { buffer, bytes } = await readWhole(this.handle, this.size);
    if (bytes < this.size) throw new Error('blob shorter than its size');
    return buffer;
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}

/**
 * Writes are queued and flushed with writev while the next chunks arrive,
 * so a fast primary costs a few large writes rather than one syscall per
 * network chunk; `onProgress` reports bytes actually in the file.
 */
class DiskIngest implements BlobIngest {
  private written = 0;
  private hashed = 0;
  private done = false;
  private readonly hash: Hash;
  private queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private flushing: Promise<void> | undefined;
  private failure: unknown;
  private drained: (() => void)[] = [];

  constructor(
    private readonly handle: FileHandle,
    readonly partialPath: string,
    private readonly finalPath: string,
    private readonly digest: Digest,
    private readonly expectedSize: number | undefined,
    private readonly onProgress: (bytesInFile: number) => void,
    private readonly sync: FileSync,
  ) {
    this.hash = createDigester(digest);
  }

  get bytesWritten(): number {
    return this.written;
  }

  hashSoFar(): Hash {
    return this.hash.copy();
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.done) throw new Error('ingest already finished');
    if (this.failure) throw this.failure;
    this.hash.update(chunk);
    this.hashed += chunk.byteLength;
    this.queue.push(chunk);
    this.queuedBytes += chunk.byteLength;
    this.flushing ??= this.flush();
    if (this.queuedBytes > ingestHighWaterBytes) {
      await new Promise<void>((resolve) => this.drained.push(resolve));
      if (this.failure) throw this.failure;
    }
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.failure) {
        const chunks = this.queue;
        this.queue = [];
        this.queuedBytes = 0;
        this.release();
        let total = chunks.reduce((n, c) => n + c.byteLength, 0);
        let pending = chunks;
        while (total > 0) {
          const { bytesWritten } = await this.handle.writev(pending, this.written);
          this.written += bytesWritten;
          total -= bytesWritten;
          if (total > 0) pending = remainder(pending, bytesWritten);
        }
        this.onProgress(this.written);
      }
    } catch (err) {
      this.failure = err;
    } finally {
      this.flushing = undefined;
      this.release();
    }
  }

  private release(): void {
    const waiters = this.drained;
    this.drained = [];
    for (const wake of waiters) wake();
  }

  /** Resolves when every queued byte is in the file (or the writes failed). */
  private async settle(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.failure) throw this.failure;
  }

  async commit(onVerified?: () => void): Promise<number> {
    if (this.done) throw new Error('ingest already finished');
    this.done = true;
    try {
      // The bytes hashed are the bytes written: verify them while the last writes are still on their way.
      if (this.expectedSize !== undefined && this.hashed !== this.expectedSize) {
        throw new IngestVerificationError('SIZE_MISMATCH', `expected ${this.expectedSize} bytes, got ${this.hashed}`);
      }
      const actual = digestOfHash(digestAlgorithm(this.digest), this.hash);
      if (actual !== this.digest) {
        throw new IngestVerificationError('DIGEST_MISMATCH', `content digest ${actual} does not match ${this.digest}`);
      }
      onVerified?.();
      await this.settle();
      if (this.written !== this.hashed) throw new Error(`${this.written} bytes in the partial file, ${this.hashed} written`);
      // Durable before visible: the bytes, then the name.
      await this.sync.file(this.handle);
      const info = await this.handle.stat();
      await this.handle.close();
      await makeDirDurable(path.dirname(this.finalPath), this.sync);
      await rename(this.partialPath, this.finalPath);
      await this.sync.dir(path.dirname(this.finalPath));
      return diskBytes(info);
    } catch (err) {
      await this.handle.close().catch(() => undefined);
      await rm(this.partialPath, { force: true });
      throw err;
    }
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.queue = [];
    await this.settle().catch(() => undefined);
    await this.handle.close().catch(() => undefined);
    await rm(this.partialPath, { force: true });
  }
}

class DiskPartialFile implements PartialFile {
  constructor(private readonly handle: FileHandle) {}
  async read(buffer: Buffer, position: number, length: number): Promise<number> {
    const { bytesRead } = await this.handle.read(buffer, 0, length, position);
    return bytesRead;
  }
  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}

export interface DiskBlobStoreOptions {
  /** How writes reach stable storage (default: fdatasync/fsync). */
  sync?: FileSync;
  clock?: Clock;
  /** Told when this process found a blob corrupt and deleted it. */
  onCorrupt?: (digest: Digest) => void;
  /** Written into partial file names (default: this process's pid). */
  pid?: number;
}

export class DiskBlobStore implements BlobStore, BlobFiles, BlobVerifier {
  private readonly sync: FileSync;
  private readonly clock: Clock;
  private readonly pid: number;
  private cutoff: number | undefined;

  constructor(
    private readonly layout: CacheLayout,
    private readonly options: DiskBlobStoreOptions = {},
  ) {
    this.sync = options.sync ?? fsyncFileSync;
    this.clock = options.clock ?? { now: () => Date.now() };
    this.pid = options.pid ?? process.pid;
  }

  /** Creates the directories and learns which blobs are unverified (from `index/unverified-before`). */
  async init(): Promise<void> {
    await mkdir(this.layout.ingestDir, { recursive: true });
    await mkdir(path.join(this.layout.root, 'blobs'), { recursive: true });
    this.cutoff = await readUnverifiedBefore(this.layout);
  }

  /** Blobs whose mtime is older than this are verified before they are served (undefined: none). */
  get unverifiedBefore(): number | undefined {
    return this.cutoff;
  }

  set unverifiedBefore(ms: number | undefined) {
    this.cutoff = ms;
  }

  private unverified(info: { mtimeMs: number }): boolean {
    return this.cutoff !== undefined && info.mtimeMs < this.cutoff;
  }

  /** The blob file's stat, undefined when there is none. */
  private async statFile(digest: Digest): Promise<Stats | undefined> {
    try {
      return await stat(this.layout.blobPath(digest));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async stat(digest: Digest): Promise<{ size: number } | undefined> {
    const info = await this.statFile(digest);
    if (!info) return undefined;
    if (this.unverified(info) && info.size <= verifyAtOpenBytes) {
      // Cheap enough to settle now: a corrupt small blob is a miss, not a wrong size.
      const blob = await this.open(digest);
      if (!blob) return undefined;
      await blob.close();
      return { size: blob.size };
    }
    return { size: info.size };
  }

  /** The file as it is (a stat: nothing read, nothing verified). */
  async inspect(digest: Digest): Promise<{ bytes: number; size: number } | undefined> {
    const info = await this.statFile(digest);
    return info && { bytes: diskBytes(info), size: info.size };
  }

  async open(digest: Digest): Promise<OpenBlob | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(this.layout.blobPath(digest), 'r');
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    try {
      const info = await handle.stat();
      if (!this.unverified(info)) return new DiskOpenBlob(handle, info.size);
      const check = new ContentCheck(handle, digest, info.size, this.outcome);
      if (info.size > verifyAtOpenBytes) return new VerifyingOpenBlob(handle, info.size, check);
      try {
        await check.complete();
      } catch (err) {
        if (!isCorruptBlob(err)) throw err;
        await handle.close().catch(() => undefined);
        return undefined; // dropped: a miss, so the caller fetches it again
      }
      return new DiskOpenBlob(handle, info.size);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Hashes one blob (a scrub): only when unverified, or always with `all`.
   * A corrupt blob is deleted; an unverified one that matches is marked verified.
   */
  async verify(digest: Digest, options: CompleteOptions & { all?: boolean } = {}): Promise<BlobCheckResult> {
    let handle: FileHandle;
    try {
      handle = await open(this.layout.blobPath(digest), 'r');
    } catch (err) {
      if (isNotFound(err)) return { result: 'missing', bytes: 0 };
      throw err;
    }
    try {
      const info = await handle.stat();
      const unverified = this.unverified(info);
      if (!unverified && !options.all) return { result: 'skipped', bytes: 0 };
      const outcome: CheckOutcome = unverified ? this.outcome : { verified: async () => undefined, corrupt: this.outcome.corrupt };
      try {
        await new ContentCheck(handle, digest, info.size, outcome).complete(options);
        return { result: 'ok', bytes: info.size };
      } catch (err) {
        if (isCorruptBlob(err)) return { result: 'corrupt', bytes: info.size };
        throw err;
      }
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  /** Marks a checked file verified (mtime at or after the cutoff), or deletes a corrupt one. */
  private readonly outcome: CheckOutcome = {
    verified: async (handle) => {
      const cutoff = this.cutoff;
      if (cutoff === undefined) return;
      const info = await handle.stat();
      // A whole second past the cutoff: safe on file systems with coarse timestamps.
      await handle.utimes(info.atime, new Date(Math.max(this.clock.now(), cutoff + 1000)));
    },
    corrupt: async (handle, digest) => {
      const file = this.layout.blobPath(digest);
      const [mine, current] = await Promise.all([handle.stat(), stat(file).catch(() => undefined)]);
      // Only the very file that failed: another reader may have dropped it and a fill put a good one there.
      if (!current || current.ino !== mine.ino || current.dev !== mine.dev) return;
      await rm(file, { force: true });
      await this.sync.dir(path.dirname(file)).catch(() => undefined);
      this.options.onCorrupt?.(digest);
    },
  };

  async put(digest: Digest, data: Uint8Array): Promise<number> {
    const ingest = await this.beginIngest(digest, data.byteLength);
    try {
      await ingest.write(data);
      return await ingest.commit();
    } finally {
      await ingest.abort();
    }
  }

  async remove(digest: Digest): Promise<void> {
    await rm(this.layout.blobPath(digest), { force: true });
    await rm(this.layout.manifestMetaPath(digest), { force: true });
  }

  async beginIngest(digest: Digest, expectedSize: number | undefined, onProgress: (bytesInFile: number) => void = () => undefined): Promise<BlobIngest> {
    const partialPath = this.layout.partialPath(digest, writerTag(this.pid));
    await mkdir(this.layout.ingestDir, { recursive: true });
    const handle = await open(partialPath, 'wx');
    return new DiskIngest(handle, partialPath, this.layout.blobPath(digest), digest, expectedSize, onProgress, this.sync);
  }

  /** The path crosses process boundaries (fill state over IPC): only ever a file directly in ingest/. */
  private isPartialPath(partialPath: string): boolean {
    return path.dirname(path.resolve(partialPath)) === this.layout.ingestDir && path.basename(partialPath).endsWith('.partial');
  }

  async openPartial(partialPath: string): Promise<PartialFile | undefined> {
    if (!this.isPartialPath(partialPath)) return undefined;
    try {
      return new DiskPartialFile(await open(partialPath, 'r'));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async discardPartial(partialPath: string): Promise<void> {
    if (this.isPartialPath(partialPath)) await rm(partialPath, { force: true });
  }

  async sweep(): Promise<number> {
    let entries: string[];
    try {
      entries = await readdir(this.layout.ingestDir);
    } catch (err) {
      if (isNotFound(err)) return 0;
      throw err;
    }
    await Promise.all(entries.map((entry) => rm(path.join(this.layout.ingestDir, entry), { force: true, recursive: true })));
    return entries.length;
  }
}
