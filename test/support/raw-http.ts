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
  /** Everything received, as text. */
  text: string;
  /** The connection ended (closed by the server, or reset) before `timeoutMs`. */
  closed: boolean;
  /** How long the connection lived. */
  ms: number;
}

export interface RawExchangeOptions {
  timeoutMs?: number;
  /** Half-close after writing `data` (a body cut short, when it declared more). */
  end?: boolean;
  /** After `data`, write these bytes one at a time, `everyMs` apart, until the connection ends. */
  drip?: { bytes: string; everyMs: number };
}

/**
 * Writes `data` exactly as given on a new connection and collects whatever
 * comes back until the connection ends (or `timeoutMs` passes, then it is
 * destroyed and `closed` is false). For malformed and misbehaving clients.
 */
export async function rawExchange(host: string, port: number, data: string | Buffer, options: RawExchangeOptions = {}): Promise<RawExchange> {
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = connect(port, host);
    const chunks: Buffer[] = [];
    let drip: NodeJS.Timeout | undefined;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
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
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      clearInterval(drip);
      const text = Buffer.concat(chunks).toString('latin1');
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: match ? Number(match[1]) : undefined, text, closed: !timedOut, ms: Date.now() - started });
    });
  });
}
