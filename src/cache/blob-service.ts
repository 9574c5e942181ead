/**
 * Blobs: served from local disk when present; otherwise fetched from the
 * primary exactly once however many clients ask at the same time (the fill
 * coordinator picks one leader per digest), with every client — the
 * leader's own included — reading the bytes from the partial file as they
 * land. The fill runs on its own signal: a client that goes away does not
 * stop it.
 *
 * When a blob cannot be cached — larger than the whole budget, or the disk
 * is full or unwritable — it streams straight through, verified on the way.
 * A disk that fills up mid-fill does not break anyone: each reader resumes
 * from where it is with a ranged request to the primary.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Readable } from 'node:stream';
import { parseDigest } from '../registry/digest.ts';
import { RegistryError } from '../registry/errors.ts';
import { followFill, waitForStart, type ResumeFrom } from './follow-fill.ts';
import { MemoryBlob } from './memory-blob.ts';
import {
  isDiskWriteError,
  type BlobResponse,
  type BlobStore,
  type CacheIndexReporter,
  type CacheObserver,
  type CacheResult,
  type FillCoordinator,
  type FillLease,
  type FillWatch,
  type Logger,
  type OpenBlob,
  type Upstream,
} from './ports.ts';
import { toRegistryError } from './upstream-failure.ts';
import { verifiedBody } from './verified-body.ts';

export interface BlobTarget {
  upstream: Upstream;
  /** Repository name as the primary knows it. */
  name: string;
}

/** A blob ready to send: a local file (ranges possible) or bytes on their way. */
export type BlobSource =
  | { kind: 'local'; size: number; blob: OpenBlob; result: CacheResult }
  | { kind: 'fill'; size: number | undefined; body: AsyncIterable<Buffer>; result: CacheResult; cancel: () => void };

type StreamingSource = Extract<BlobSource, { kind: 'fill' }>;

export interface BlobServiceOptions {
  store: BlobStore;
  coordinator: FillCoordinator;
  observer: CacheObserver;
  index: CacheIndexReporter;
  logger: Logger;
  /** How long a follower waits without progress before giving up (the primary's body-idle timeout plus a margin). */
  stallTimeoutMs: number;
  /** Whether a blob of this size may be cached at all (false: larger than the budget). */
  cacheable: (size: number | undefined) => boolean;
  /** Bytes of small blobs kept in memory per process (default 16 MiB). */
  smallBlobMemoryBytes?: number;
}

/** Fill outcomes that send followers to the primary themselves instead of failing. */
const streamThroughCodes = new Set(['PASSTHROUGH', 'CACHE_WRITE_FAILED']);

/** Blobs up to this size are also kept in memory per process (configs, small layers). */
const smallBlobBytes = 64 * 1024;

export class BlobService {
  private readonly small: LRUCache<string, Buffer>;

  constructor(private readonly options: BlobServiceOptions) {
    this.small = new LRUCache<string, Buffer>({ maxSize: options.smallBlobMemoryBytes ?? 16 * 1024 * 1024, sizeCalculation: (b) => b.byteLength + 64 });
  }

  /** A local blob, from memory when it is small and was read before. */
  private async local(digest: string): Promise<OpenBlob | undefined> {
    const cached = this.small.get(digest);
    if (cached) return new MemoryBlob(cached);
    const blob = await this.options.store.open(digest);
    if (!blob || blob.size > smallBlobBytes) return blob;
    try {
      const data = await blob.readAll();
      this.small.set(digest, data);
      return new MemoryBlob(data);
    } finally {
      await blob.close();
    }
  }

  /** Size of a blob, from disk or a HEAD upstream; never starts a fill. */
  async stat(target: BlobTarget, digest: string, signal: AbortSignal): Promise<{ size: number; result: CacheResult }> {
    const small = this.small.get(digest);
    const local = small ? { size: small.byteLength } : await this.options.store.stat(digest);
    if (local) {
      this.options.observer.cacheResult('blob', 'hit');
      this.options.index.touched(digest);
      return { size: local.size, result: 'hit' };
    }
    try {
      const head = await target.upstream.headBlob(target.name, digest, signal);
      if (head.size === undefined) throw new RegistryError('UPSTREAM_UNAVAILABLE', 'the primary did not report the blob size');
      this.options.observer.cacheResult('blob', 'passthrough');
      return { size: head.size, result: 'passthrough' };
    } catch (err) {
      throw this.upstreamFailure(err);
    }
  }

  async open(target: BlobTarget, digest: string, signal: AbortSignal): Promise<BlobSource> {
    const { store, coordinator, observer } = this.options;
    const local = await this.local(digest);
    if (local) {
      observer.cacheResult('blob', 'hit');
      this.options.index.touched(digest);
      return { kind: 'local', size: local.size, blob: local, result: 'hit' };
    }
    const role = await coordinator.acquire(digest);
    if (role.role === 'follower') {
      observer.cacheResult('blob', 'coalesced');
      return this.follow(target, role.watch, digest, 'coalesced', signal);
    }
    // Another fill may have finished between our miss and the lease.
    const raced = await store.open(digest);
    if (raced) {
      role.lease.succeed(raced.size);
      observer.cacheResult('blob', 'hit');
      return { kind: 'local', size: raced.size, blob: raced, result: 'hit' };
    }
    const started = await this.startFill(target, digest, role.lease);
    if (started.mode === 'passthrough') {
      observer.cacheResult('blob', 'passthrough');
      return started.source;
    }
    observer.cacheResult('blob', 'miss');
    return this.follow(target, role.lease.watch(), digest, 'miss', signal);
  }

  private async follow(target: BlobTarget, watch: FillWatch, digest: string, result: CacheResult, signal: AbortSignal): Promise<BlobSource> {
    let start;
    try {
      start = await waitForStart(watch, this.options.stallTimeoutMs, signal);
    } catch (err) {
      watch.close();
      if (streamThroughCodes.has((err as { code?: string }).code ?? '')) return this.streamThrough(target, digest, signal);
      throw err;
    }
    const controller = new AbortController();
    const abort = (): void => controller.abort();
    signal.addEventListener('abort', abort, { once: true });
    const resume: ResumeFrom = (position, hash, size) => this.resumeFrom(target, digest, position, hash, size, controller.signal);
    const body = followFill(this.options.store, watch, {
      digest,
      stallTimeoutMs: this.options.stallTimeoutMs,
      signal: controller.signal,
      resume,
      resumeCodes: streamThroughCodes,
    });
    return {
      kind: 'fill',
      size: start.size,
      body,
      result,
      cancel: () => {
        signal.removeEventListener('abort', abort);
        controller.abort();
      },
    };
  }

  /** Leads a fill: asks the primary, then either pumps to disk (detached) or streams through. */
  private async startFill(
    target: BlobTarget,
    digest: string,
    lease: FillLease,
  ): Promise<{ mode: 'disk' } | { mode: 'passthrough'; source: StreamingSource }> {
    const { store, observer, logger } = this.options;
    const controller = new AbortController();
    let response: BlobResponse;
    try {
      response = await target.upstream.getBlob(target.name, digest, controller.signal);
    } catch (err) {
      const failure = this.upstreamFailure(err);
      lease.fail({ code: failure.code, message: failure.message, detail: failure.detail });
      throw failure;
    }
    if (!this.options.cacheable(response.size)) {
      logger.info({ digest, size: response.size }, 'blob larger than the cache budget; streaming through uncached');
      lease.fail({ code: 'PASSTHROUGH', message: 'streamed through uncached' });
      return { mode: 'passthrough', source: this.verifiedSource(digest, response, controller) };
    }
    let ingest;
    try {
      ingest = await store.beginIngest(digest, response.size, (bytes) => lease.progress(bytes));
    } catch (err) {
      if (!isDiskWriteError(err)) {
        destroy(response.body);
        lease.fail({ code: 'UNKNOWN', message: 'the cache could not start writing' });
        throw err;
      }
      const code = (err as { code: string }).code;
      observer.cacheWriteFailed(code);
      logger.warn({ digest, code }, 'cache not writable; streaming through uncached');
      lease.fail({ code: 'PASSTHROUGH', message: 'streamed through uncached' });
      return { mode: 'passthrough', source: this.verifiedSource(digest, response, controller) };
    }
    lease.started(response.size, ingest.partialPath);
    observer.fillStarted();
    void this.pump(digest, response.body, ingest, lease);
    return { mode: 'disk' };
  }

  /** Primary → verify → disk, reporting progress to the lease. */
  private async pump(digest: string, body: Readable, ingest: Awaited<ReturnType<BlobStore['beginIngest']>>, lease: FillLease): Promise<void> {
    const { observer, logger, index } = this.options;
    let written = 0;
    try {
      const chunks = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
      for (;;) {
        let next: IteratorResult<Buffer>;
        try {
          next = await chunks.next();
        } catch (err) {
          throw bodyFailure(err);
        }
        if (next.done) break;
        try {
          await ingest.write(next.value);
        } catch (err) {
          throw new CacheWriteError(err);
        }
        written += next.value.length;
      }
      let onDisk: number;
      try {
        onDisk = await ingest.commit();
      } catch (err) {
        if (isDiskWriteError(err)) throw new CacheWriteError(err);
        throw err;
      }
      written = ingest.bytesWritten;
      index.added(digest, onDisk, 'blob');
      lease.succeed(written);
      observer.fillEnded('ok', written);
      logger.debug({ digest, bytes: written }, 'blob cached');
    } catch (err) {
      destroy(body);
      await ingest.abort();
      observer.fillEnded('failed', written);
      if (err instanceof CacheWriteError) {
        observer.cacheWriteFailed(err.errno);
        logger.warn({ digest, bytes: written, code: err.errno }, 'cache write failed mid-fill; readers continue from the primary');
        lease.fail({ code: 'CACHE_WRITE_FAILED', message: 'the cache could not be written' });
        return;
      }
      const failure = this.upstreamFailure(err);
      lease.fail({ code: failure.code, message: failure.message, detail: failure.detail });
      logger.warn({ digest, bytes: written, err: describe(err) }, 'blob fill failed; nothing cached');
    }
  }

  /** A reader's own uncached fetch (after the leader streamed through). */
  private async streamThrough(target: BlobTarget, digest: string, signal: AbortSignal): Promise<BlobSource> {
    const controller = new AbortController();
    const abort = (): void => controller.abort();
    signal.addEventListener('abort', abort, { once: true });
    let response: BlobResponse;
    try {
      response = await target.upstream.getBlob(target.name, digest, controller.signal);
    } catch (err) {
      signal.removeEventListener('abort', abort);
      throw this.upstreamFailure(err);
    }
    this.options.observer.cacheResult('blob', 'passthrough');
    const source = this.verifiedSource(digest, response, controller);
    return {
      ...source,
      cancel: () => {
        signal.removeEventListener('abort', abort);
        source.cancel();
      },
    };
  }

  private verifiedSource(digest: string, response: BlobResponse, controller: AbortController): StreamingSource {
    const hash = createHash(parseDigest(digest).algorithm);
    return {
      kind: 'fill',
      size: response.size,
      body: verifiedBody(response.body, { digest, hash, offset: 0, size: response.size, bodyFailure }),
      result: 'passthrough',
      cancel: () => {
        controller.abort();
        destroy(response.body);
      },
    };
  }

  /** The rest of a blob from `position` on, straight from the primary, verified against the whole digest. */
  private async *resumeFrom(
    target: BlobTarget,
    digest: string,
    position: number,
    hash: ReturnType<typeof createHash>,
    size: number | undefined,
    signal: AbortSignal,
  ): AsyncGenerator<Buffer> {
    let response: BlobResponse;
    try {
      response = await target.upstream.getBlob(target.name, digest, signal, { start: position });
    } catch (err) {
      throw this.upstreamFailure(err);
    }
    let body: AsyncIterable<Buffer> = verifiedBody(response.body, { digest, hash, offset: position, size: size ?? response.size, bodyFailure });
    if (response.offset !== position) {
      // The primary ignored the Range: start again from the beginning, with a fresh hash.
      const fresh = createHash(parseDigest(digest).algorithm);
      body = skip(verifiedBody(response.body, { digest, hash: fresh, offset: 0, size: size ?? response.size, bodyFailure }), position);
    }
    yield* body;
  }

  /**
   * The client's error for a failed fill or upstream call. Failed upstream
   * calls are counted where they happen (the instrumented Upstream); only
   * content that fails verification, which the Upstream cannot see, is
   * reported here.
   */
  private upstreamFailure(err: unknown): RegistryError {
    if (err instanceof RegistryError) return err;
    const code = (err as { code?: unknown }).code;
    if (code === 'DIGEST_MISMATCH' || code === 'SIZE_MISMATCH') {
      this.options.observer.upstreamFailure(code);
      return new RegistryError('UPSTREAM_UNAVAILABLE', 'the primary sent content that does not match the digest');
    }
    return toRegistryError(err, 'BLOB_UNKNOWN');
  }
}

class CacheWriteError extends Error {
  readonly errno: string;
  constructor(cause: unknown) {
    super('cache write failed', { cause });
    this.errno = String((cause as { code?: unknown } | undefined)?.code ?? 'EIO');
  }
}

async function* skip(body: AsyncIterable<Buffer>, bytes: number): AsyncGenerator<Buffer> {
  let left = bytes;
  for await (const chunk of body) {
    if (left >= chunk.length) {
      left -= chunk.length;
      continue;
    }
    yield left > 0 ? chunk.subarray(left) : chunk;
    left = 0;
  }
}

function destroy(body: Readable): void {
  if (body.destroyed) return;
  body.on('error', () => undefined); // destroying an unfinished body emits an error nobody else listens for
  body.destroy();
}

/** A failure while reading the primary's body: a timeout, or a broken/truncated transfer. */
function bodyFailure(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === 'UND_ERR_BODY_TIMEOUT' || code === 'UPSTREAM_TIMEOUT') {
    return new RegistryError('UPSTREAM_TIMEOUT', 'the primary stopped sending the blob', { cause: err });
  }
  return new RegistryError('UPSTREAM_UNAVAILABLE', 'the transfer from the primary broke off', { cause: err });
}

function describe(err: unknown): { code?: unknown; message: string } {
  const e = err as { code?: unknown; message?: unknown };
  return { code: e?.code, message: String(e?.message ?? err) };
}
