/**
 * Content-addressed blob storage on local disk (see layout.ts for the tree).
 * Ingest writes to a partial file in `ingest/`, hashes while writing, and
 * renames into `blobs/` only when size and digest match; nothing unverified
 * is ever visible under `blobs/`.
 */
import { randomBytes, type Hash } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { BlobIngest, BlobStore, OpenBlob, PartialFile } from '../cache/ports.ts';
import { createDigester, digestAlgorithm, digestOfHash, type Digest } from '../registry/digest.ts';
import type { CacheLayout } from './layout.ts';

/** Error thrown by commit() when the content does not match its digest or announced size. */
export class IngestVerificationError extends Error {
  readonly code: 'DIGEST_MISMATCH' | 'SIZE_MISMATCH';
  constructor(code: 'DIGEST_MISMATCH' | 'SIZE_MISMATCH', message: string) {
    super(message);
    this.name = 'IngestVerificationError';
    this.code = code;
  }
}

/** Bytes a fill may queue for writing before the network read waits for the disk. */
const ingestHighWaterBytes = 8 * 1024 * 1024;

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
    const buffer = Buffer.allocUnsafe(this.size);
    let offset = 0;
    while (offset < this.size) {
      const { bytesRead } = await this.handle.read(buffer, offset, this.size - offset, offset);
      if (bytesRead === 0) throw new Error('blob shorter than its size');
      offset += bytesRead;
    }
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
  ) {
    this.hash = createDigester(digest);
  }

  get bytesWritten(): number {
    return this.written;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.done) throw new Error('ingest already finished');
    if (this.failure) throw this.failure;
    this.hash.update(chunk);
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

  async commit(): Promise<number> {
    if (this.done) throw new Error('ingest already finished');
    this.done = true;
    try {
      await this.settle();
      if (this.expectedSize !== undefined && this.written !== this.expectedSize) {
        throw new IngestVerificationError('SIZE_MISMATCH', `expected ${this.expectedSize} bytes, got ${this.written}`);
      }
      const actual = digestOfHash(digestAlgorithm(this.digest), this.hash);
      if (actual !== this.digest) {
        throw new IngestVerificationError('DIGEST_MISMATCH', `content digest ${actual} does not match ${this.digest}`);
      }
      const info = await this.handle.stat();
      await this.handle.close();
      await mkdir(path.dirname(this.finalPath), { recursive: true });
      await rename(this.partialPath, this.finalPath);
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

export class DiskBlobStore implements BlobStore {
  constructor(private readonly layout: CacheLayout) {}

  async init(): Promise<void> {
    await mkdir(this.layout.ingestDir, { recursive: true });
    await mkdir(path.join(this.layout.root, 'blobs'), { recursive: true });
  }

  async stat(digest: Digest): Promise<{ size: number } | undefined> {
    try {
      const info = await stat(this.layout.blobPath(digest));
      return { size: info.size };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
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
      return new DiskOpenBlob(handle, info.size);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

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
    const partialPath = this.layout.partialPath(digest, randomBytes(6).toString('hex'));
    await mkdir(this.layout.ingestDir, { recursive: true });
    const handle = await open(partialPath, 'wx');
    return new DiskIngest(handle, partialPath, this.layout.blobPath(digest), digest, expectedSize, onProgress);
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
