/** Sends a request line exactly as written (no URL normalisation), for path-trick tests. */
import { connect } from 'node:net';

export async function rawRequest(host: string, port: number, method: string, path: string, timeoutMs = 10_000): Promise<{ status: number; headers: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error('raw request timed out')), timeoutMs);
    socket.on('connect', () => socket.write(`${method} ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: close\r\n\r\n`));
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const head = text.slice(0, split);
      resolve({ status: Number(head.split(' ')[1]), headers: head, body: text.slice(split + 4) });
    });
  });
}

export interface RawExchange {
  /** Status of the first response, undefined when none arrived. */
  status: number | undefined;
  /** Head of the first response (status line and headers). */
  head: string;
  /** Body of the first response, as far as it arrived (de-chunked only when complete). */
  body: string;
  /** The first response arrived whole (by Content-Length or the last chunk). */
  complete: boolean;
  /** The server ended the connection (or reset it) before `timeoutMs`; false when the client closed it. */
  closedByServer: boolean;
  /** How long the connection lived. */
  ms: number;
}

export interface RawExchangeOptions {
  timeoutMs?: number;
  /** Half-close after writing `data` (a body cut short, when it declared more). */
  end?: boolean;
  /** After `data`, write these bytes one at a time, `everyMs` apart, until the connection ends. */
  drip?: { bytes: string; everyMs: number };
  /** Close the connection as soon as the first response is complete, instead of waiting for the server to. */
  untilResponse?: boolean;
  /** The request is a HEAD: its response has no body whatever Content-Length says. */
  head?: boolean;
}

/** Parses the first HTTP/1.1 response in `raw`, as far as it arrived. */
export function parseResponse(raw: Buffer, headRequest: boolean): Pick<RawExchange, 'status' | 'head' | 'body' | 'complete'> {
  const text = raw.toString('latin1');
  const split = text.indexOf('\r\n\r\n');
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  const status = match ? Number(match[1]) : undefined;
  if (split < 0) return { status, head: text, body: '', complete: false };
  const head = text.slice(0, split);
  const rest = text.slice(split + 4);
  const length = /\r\ncontent-length: *(\d+)/i.exec(head);
  if (headRequest || status === 204 || status === 304) return { status, head, body: '', complete: true };
  if (length) {
    const size = Number(length[1]);
    return { status, head, body: rest.slice(0, size), complete: rest.length >= size };
  }
  if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
    let body = '';
    let at = 0;
    for (;;) {
      const eol = rest.indexOf('\r\n', at);
      if (eol < 0) return { status, head, body: rest, complete: false };
      const size = parseInt(rest.slice(at, eol), 16);
      if (Number.isNaN(size)) return { status, head, body: rest, complete: false };
      if (size === 0) return { status, head, body, complete: rest.length >= eol + 4 };
      if (rest.length < eol + 2 + size + 2) return { status, head, body: rest, complete: false };
      body += rest.slice(eol + 2, eol + 2 + size);
      at = eol + 2 + size + 2;
    }
  }
  return { status, head, body: rest, complete: false };
}

/**
 * Writes `data` exactly as given on a new connection and collects the first
 * response until the connection ends, the response is complete (with
 * `untilResponse`), or `timeoutMs` passes. For malformed and misbehaving clients.
 */
export async function rawExchange(host: string, port: number, data: string | Buffer, options: RawExchangeOptions = {}): Promise<RawExchange> {
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = connect(port, host);
    const chunks: Buffer[] = [];
    let drip: NodeJS.Timeout | undefined;
    let closedByClient = false;
    const timer = setTimeout(() => {
      closedByClient = true;
      socket.destroy();
    }, options.timeoutMs ?? 10_000);
    socket.on('connect', () => {
      socket.write(data);
      if (options.end) socket.end();
      if (options.drip) {
        const { bytes, everyMs } = options.drip;
        let i = 0;
        drip = setInterval(() => {
          if (!socket.writable) return;
          socket.write(bytes[i % bytes.length] ?? '');
          i += 1;
        }, everyMs);
      }
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (options.untilResponse && parseResponse(Buffer.concat(chunks), options.head === true).complete) {
        closedByClient = true;
        socket.destroy();
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      clearInterval(drip);
      resolve({ ...parseResponse(Buffer.concat(chunks), options.head === true), closedByServer: !closedByClient, ms: Date.now() - started });
    });
  });
}
