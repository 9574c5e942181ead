/** Response helpers: the OCI error envelope, JSON bodies, and streaming bodies that break the connection on failure. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
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
