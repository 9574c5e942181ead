/**
 * Blobs: served from local disk when present; otherwise fetched from the
 * primary exactly once however many clients ask at the same time (the fill
 * coordinator picks one leader per digest), with every client — the
 * leader's own included — reading the bytes from the partial file as they
 * land. The fill runs on its own signal: a client that goes away does not
 * stop it.
 */
import type { Readable } from 'node:stream';
import { RegistryError } from '../registry/errors.ts';
import { followFill, waitForStart } from './follow-fill.ts';
import type { BlobStore, CacheObserver, CacheResult, FillCoordinator, FillLease, Logger, OpenBlob, Upstream } from './ports.ts';
import { toRegistryError } from './upstream-failure.ts';

export interface BlobTarget {
  upstream: Upstream;
  /** Repository name as the primary knows it. */
  name: string;
}

/** A blob ready to send: a local file (ranges possible) or a fill in progress. */
export type BlobSource =
  | { kind: 'local'; size: number; blob: OpenBlob; result: CacheResult }
  | { kind: 'fill'; size: number | undefined; body: AsyncIterable<Buffer>; result: CacheResult; cancel: () => void };

export interface BlobServiceOptions {
  store: BlobStore;
  coordinator: FillCoordinator;
  observer: CacheObserver;
  logger: Logger;
  /** How long a follower waits without progress before giving up (the primary's body-idle timeout plus a margin). */
  stallTimeoutMs: number;
}

export class BlobService {
  constructor(private readonly options: BlobServiceOptions) {}

  /** Size of a blob, from disk or a HEAD upstream; never starts a fill. */
  async stat(target: BlobTarget, digest: string, signal: AbortSignal): Promise<{ size: number; result: CacheResult }> {
    const local = await this.options.store.stat(digest);
    if (local) {
      this.options.observer.cacheResult('blob', 'hit');
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
    const local = await store.open(digest);
    if (local) {
      observer.cacheResult('blob', 'hit');
      return { kind: 'local', size: local.size, blob: local, result: 'hit' };
    }
    const role = await coordinator.acquire(digest);
    if (role.role === 'follower') {
      observer.cacheResult('blob', 'coalesced');
      return this.follow(role.watch, digest, 'coalesced', signal);
    }
    // Another fill may have finished between our miss and the lease.
    const raced = await store.open(digest);
    if (raced) {
      role.lease.succeed(raced.size);
      observer.cacheResult('blob', 'hit');
      return { kind: 'local', size: raced.size, blob: raced, result: 'hit' };
    }
    observer.cacheResult('blob', 'miss');
    const watch = role.lease.watch();
    void this.fill(target, digest, role.lease);
    return this.follow(watch, digest, 'miss', signal);
  }

  private async follow(
    watch: ReturnType<FillLease['watch']>,
    digest: string,
    result: CacheResult,
    signal: AbortSignal,
  ): Promise<BlobSource> {
    const start = await waitForStart(watch, this.options.stallTimeoutMs, signal);
    const controller = new AbortController();
    const abort = (): void => controller.abort();
    signal.addEventListener('abort', abort, { once: true });
    const body = followFill(this.options.store, watch, {
      digest,
      stallTimeoutMs: this.options.stallTimeoutMs,
      signal: controller.signal,
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

  /** The detached fill: primary → verify → disk, reporting progress to the lease. */
  private async fill(target: BlobTarget, digest: string, lease: FillLease): Promise<void> {
    const { store, observer, logger } = this.options;
    const controller = new AbortController();
    let body: Readable | undefined;
    let written = 0;
    observer.fillStarted();
    try {
      const response = await target.upstream.getBlob(target.name, digest, controller.signal);
      body = response.body;
      const ingest = await store.beginIngest(digest, response.size);
      try {
        lease.started(response.size, ingest.partialPath);
        const chunks = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
        for (;;) {
          let next: IteratorResult<Buffer>;
          try {
            next = await chunks.next();
          } catch (err) {
            throw bodyFailure(err);
          }
          if (next.done) break;
          await ingest.write(next.value);
          written = ingest.bytesWritten;
          lease.progress(written);
        }
        await ingest.commit();
      } catch (err) {
        await ingest.abort();
        throw err;
      }
      lease.succeed(written);
      observer.fillEnded('ok', written);
      logger.debug({ digest, bytes: written }, 'blob cached');
    } catch (err) {
      if (body && !body.destroyed) {
        body.on('error', () => undefined); // destroying an unfinished body emits an error nobody else listens for
        body.destroy();
      }
      const failure = this.upstreamFailure(err);
      lease.fail({ code: failure.code, message: failure.message });
      observer.fillEnded('failed', written);
      logger.warn({ digest, bytes: written, err: describe(err) }, 'blob fill failed; nothing cached');
    }
  }

  private upstreamFailure(err: unknown): RegistryError {
    if (err instanceof RegistryError) return err;
    const code = (err as { code?: unknown }).code;
    if (code === 'DIGEST_MISMATCH' || code === 'SIZE_MISMATCH') {
      this.options.observer.upstreamFailure(code);
      return new RegistryError('UPSTREAM_UNAVAILABLE', 'the primary sent content that does not match the digest');
    }
    if (typeof code === 'string') this.options.observer.upstreamFailure(code);
    return toRegistryError(err, 'BLOB_UNKNOWN');
  }
}

/** A failure while reading the primary's body: a timeout, or a broken/truncated transfer. */
function bodyFailure(err: unknown): RegistryError {
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
