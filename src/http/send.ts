/** Response helpers: the OCI error envelope, JSON bodies, and streaming bodies that break the connection on failure. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { OpenBlob } from '../cache/ports.ts';
import { errorEnvelope } from '../registry/errors.ts';

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
 * Streams a body to the client. On any error the socket is destroyed so an
 * announced Content-Length (or an unterminated chunked body) is never
 * completed with wrong or missing bytes.
 */
export async function streamBody(res: ServerResponse, body: Readable | AsyncIterable<Buffer>, onBytes?: (n: number) => void): Promise<void> {
  const source = body instanceof Readable ? body : Readable.from(body, { objectMode: false });
  if (onBytes) source.on('data', (chunk: Buffer) => onBytes(chunk.length));
  try {
    await pipeline(source, res);
  } catch (err) {
    source.destroy();
    res.destroy();
    throw err;
  }
}

const sendChunkBytes = 256 * 1024;

/**
 * Sends bytes [start, end] of a local blob: two reused buffers, the next
 * read in flight while the socket takes the current chunk, a buffer reused
 * only once the socket is done with it. No stream objects or per-chunk
 * allocations, so a big blob costs little CPU and no garbage.
 */
export async function sendBlobRange(res: ServerResponse, blob: OpenBlob, start: number, end: number, onBytes?: (n: number) => void): Promise<void> {
  const length = end - start + 1;
  let closed: (err: Error) => void = () => undefined;
  const gone = new Promise<never>((_, reject) => {
    closed = reject;
  });
  gone.catch(() => undefined);
  const onClose = (): void => {
    if (!res.writableFinished) closed(new Error('client went away'));
  };
  res.once('close', onClose);
  try {
    if (length <= sendChunkBytes) {
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
    const buffers = [Buffer.allocUnsafe(sendChunkBytes), Buffer.allocUnsafe(sendChunkBytes)];
    const flushed: Promise<void>[] = [Promise.resolve(), Promise.resolve()];
    let position = start;
    let i = 0;
    while (position <= end) {
      await Promise.race([flushed[i], gone]);
      const want = Math.min(sendChunkBytes, end + 1 - position);
      const n = await blob.read(buffers[i]!, position, want);
      if (n === 0) throw new Error('blob shorter than its size');
      position += n;
      const chunk = n === sendChunkBytes ? buffers[i]! : buffers[i]!.subarray(0, n);
      flushed[i] = new Promise<void>((resolve, reject) => {
        res.write(chunk, (err) => (err ? reject(err) : resolve()));
      });
      flushed[i]!.catch(() => undefined);
      onBytes?.(n);
      i ^= 1;
    }
    await Promise.race([Promise.all(flushed), gone]);
    res.end();
  } catch (err) {
    res.destroy();
    throw err;
  } finally {
    res.off('close', onClose);
    await blob.close();
  }
}
