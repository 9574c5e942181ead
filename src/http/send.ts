/** Response helpers: the OCI error envelope, JSON bodies, and streaming bodies that break the connection on failure. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BlobSource } from '../cache/blob-source.ts';
import { servingRanges } from '../cache/whole-range.ts';
import { ifRangeAllowsRange } from '../registry/conditional-requests.ts';
import { errorEnvelope, RegistryError } from '../registry/errors.ts';
import { contentRange, parseRange } from '../registry/range.ts';
import { sendBufferPool, type SendBuffers } from './send-buffers.ts';

export const apiVersionHeader = { 'docker-distribution-api-version': 'registry/2.0' } as const;

export function sendError(req: IncomingMessage, res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    // Never let a client take a partial body for a complete one.
    res.destroy();
    return;
  }
  const { status, headers, body } = errorEnvelope(err);
  res.writeHead(status, {
    ...apiVersionHeader,
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

export function sendJson(req: IncomingMessage, res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    ...apiVersionHeader,
    ...headers,
    'content-type': headers['content-type'] ?? 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/**
 * Answers a blob GET from any source (the local file, a fill in progress, a
 * remote) the same way, and closes the source: a Range gets a 206 when the
 * size is known (a verified file any range at once; a fill from the range's
 * start as the bytes arrive; a blob streamed through read whole, the range
 * handed out as it passes); otherwise the whole body goes out as a 200, as
 * RFC 9110 allows. An If-Range that does not match `etag` means
 * "send it all" (RFC 9110 §13.1.5).
 */
export async function sendBlobSource(
  req: IncomingMessage,
  res: ServerResponse,
  blob: BlobSource,
  headers: Record<string, string | number>,
  etag: string,
  onBytes?: (n: number) => void,
): Promise<void> {
  // A blob streamed through is read whole even for a Range (cache/whole-range.ts).
  const source = servingRanges(blob);
  try {
    const size = source.size;
    const ranged = source.seekable && size !== undefined && ifRangeAllowsRange(req.headers['if-range'], etag);
    const range = ranged ? parseRange(req.headers.range, size) : { kind: 'none' as const };
    if (range.kind === 'unsatisfiable') {
      throw new RegistryError('RANGE_INVALID', undefined, { headers: { 'content-range': `bytes */${size}` } });
    }
    const out: Record<string, string | number> = { ...headers };
    let start = 0;
    let end = size === undefined ? undefined : size - 1;
    if (range.kind === 'range') {
      ({ start, end } = range.range);
      out['content-range'] = contentRange(range.range, size!);
    }
    if (end !== undefined) out['content-length'] = end - start + 1;
    res.writeHead(range.kind === 'range' ? 206 : 200, out);
    if (size === 0) {
      res.end();
      return;
    }
    // A whole body is verified as it goes (if it needs to be); a range waits for the whole file's check
    // (a fill in progress: its last byte waits for the fill's).
    if (range.kind !== 'range') source.willReadWhole?.();
    else source.willReadRange?.(start, end!);
    await sendBlobRange(res, source, start, end, onBytes);
  } finally {
    await source.close();
  }
}

const sendChunkBytes = 256 * 1024;

/**
 * Sends bytes [start, end] of a blob from any source (the whole rest when
 * `end` is undefined: a fill of unknown length, ended by a 0 read), then
 * closes the source. Reused buffers (two: the next read in flight while
 * the socket takes the current chunk; one beyond the pool), a buffer
 * reused only once the socket is done with it: no stream objects or
 * per-chunk allocations, so a big blob costs little CPU and no garbage. A
 * fill's in-memory window is sent as views instead, as many writes in
 * flight as the lease has buffers, each at most a chunk. A
 * read that fails destroys the socket, so an announced Content-Length (or
 * an unterminated chunked body) is never completed with wrong or missing
 * bytes.
 */
export async function sendBlobRange(res: ServerResponse, blob: BlobSource, start: number, end: number | undefined, onBytes?: (n: number) => void): Promise<void> {
  const length = end === undefined ? undefined : end - start + 1;
  // The client going away fails the writes still waiting for the socket. (Not a
  // Promise.race with a promise that lives as long as the response: every race
  // leaves a reaction on it, ~1,000 promises and closures per 256 MiB response.)
  let gone: Error | undefined;
  const waiting = new Set<(err: Error) => void>();
  const onClose = (): void => {
    if (res.writableFinished) return;
    gone = new Error('client went away');
    for (const fail of waiting) fail(gone);
    waiting.clear();
  };
  // Several views go out corked: one writev, one callback.
  const write = (chunks: Buffer | readonly Buffer[]): Promise<void> => {
    if (gone) return Promise.reject(gone);
    return new Promise<void>((resolve, reject) => {
      waiting.add(reject);
      const done = (err: Error | null | undefined): void => {
        waiting.delete(reject);
        if (err) reject(err);
        else resolve();
      };
      if (Buffer.isBuffer(chunks)) {
        res.write(chunks, done);
        return;
      }
      res.cork();
      chunks.forEach((chunk, k) => res.write(chunk, k === chunks.length - 1 ? done : undefined));
      res.uncork();
    });
  };
  res.once('close', onClose);
  let lease: SendBuffers | undefined;
  try {
    if (length !== undefined && length <= sendChunkBytes) {
      const buffer = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const n = await blob.read(buffer.subarray(got), start + got, length - got);
        if (n === 0) throw new Error('blob shorter than its size');
        got += n;
      }
      onBytes?.(length);
      res.end(buffer);
      return;
    }
    // A big body reads 1 MiB chunks from a bounded pool (send-buffers.ts), or sends views of a fill's
    // window as they are (no copy, no buffer of its own) while the source offers them.
    lease = sendBufferPool.take(length);
    const { chunkBytes, slots } = lease;
    const flushed: Promise<void>[] = Array.from({ length: slots }, () => Promise.resolve());
    let position = start;
    let i = 0;
    while (end === undefined || position <= end) {
      await flushed[i];
      if (gone) throw gone;
      const want = end === undefined ? chunkBytes : Math.min(chunkBytes, end + 1 - position);
      const views = blob.readViews ? await blob.readViews(position, want) : undefined;
      let n: number;
      if (views !== undefined) {
        n = views.reduce((sum, view) => sum + view.length, 0);
        if (n > 0) flushed[i] = write(views);
      } else {
        const buffer = lease.buffer(i);
        n = await blob.read(buffer, position, want);
        if (n > 0) flushed[i] = write(n === buffer.length ? buffer : buffer.subarray(0, n));
      }
      if (n === 0) {
        if (end === undefined) break;
        throw new Error('blob shorter than its size');
      }
      position += n;
      flushed[i]!.catch(() => undefined);
      onBytes?.(n);
      i = (i + 1) % slots;
    }
    await Promise.all(flushed);
    if (gone) throw gone;
    res.end();
  } catch (err) {
    res.destroy();
    throw err;
  } finally {
    // No read is in flight here, and every write has either flushed or died with the socket.
    lease?.release();
    res.off('close', onClose);
    await blob.close();
  }
}
