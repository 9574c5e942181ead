/**
 * Big-blob clients: N concurrent keep-alive connections (undici Pool), each
 * doing GETs one after another and either discarding the bytes (throughput
 * runs) or hashing them (correctness of cold, coalesced transfers).
 */
import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { Pool } from 'undici';

export interface GetOutcome {
  status: number;
  bytes: number;
  /** `sha256:<hex>` of the body when hashing was asked for. */
  digest: string | undefined;
  ms: number;
  error: string | undefined;
}

export interface ParallelGetsResult {
  wallMs: number;
  bytes: number;
  outcomes: GetOutcome[];
}

async function getOnce(pool: Pool, path: string, hash: boolean): Promise<GetOutcome> {
  const started = performance.now();
  try {
    const { statusCode, body } = await pool.request({ method: 'GET', path });
    const hasher = hash ? createHash('sha256') : undefined;
    let bytes = 0;
    await new Promise<void>((resolve, reject) => {
      body.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hasher?.update(chunk);
      });
      body.once('end', resolve);
      body.once('error', reject);
    });
    return { status: statusCode, bytes, digest: hasher ? `sha256:${hasher.digest('hex')}` : undefined, ms: performance.now() - started, error: undefined };
  } catch (err) {
    return { status: 0, bytes: 0, digest: undefined, ms: performance.now() - started, error: (err as Error).message };
  }
}

/** `clients` connections start together; each does `getsPerClient` sequential GETs of `path`. */
export async function parallelGets(
  origin: string,
  path: string,
  options: { clients: number; getsPerClient: number; hash: boolean },
): Promise<ParallelGetsResult> {
  const pool = new Pool(origin, { connections: options.clients, pipelining: 1, headersTimeout: 600_000, bodyTimeout: 120_000 });
  try {
    const started = performance.now();
    const perClient = await Promise.all(
      Array.from({ length: options.clients }, async () => {
        const outcomes: GetOutcome[] = [];
        for (let i = 0; i < options.getsPerClient; i++) outcomes.push(await getOnce(pool, path, options.hash));
        return outcomes;
      }),
    );
    const wallMs = performance.now() - started;
    const outcomes = perClient.flat();
    return { wallMs, bytes: outcomes.reduce((sum, o) => sum + o.bytes, 0), outcomes };
  } finally {
    await pool.close();
  }
}

export interface SlowGetsResult {
  /** Bytes each client had read when it hung up. */
  bytes: number[];
  /** Status of each client's response (0: none). */
  statuses: number[];
  /** Clients whose request failed before they hung up, with the first message. */
  errors: number;
  firstError: string | undefined;
  wallMs: number;
}

/**
 * `clients` concurrent GETs of `path`, each reading at most `bytesPerSec`
 * (the body is consumed only as fast as the budget allows, so the socket
 * pushes back on the server like a slow client's would), all hanging up
 * after `seconds`. The server sees 200 responses that never finish.
 */
export async function slowGets(
  origin: string,
  path: string,
  options: { clients: number; bytesPerSec: number; seconds: number },
): Promise<SlowGetsResult> {
  const pool = new Pool(origin, { connections: options.clients, pipelining: 1, headersTimeout: 120_000, bodyTimeout: 120_000 });
  const stop = new AbortController();
  // One signal for every client's request: that many listeners is the point, not a leak.
  setMaxListeners(options.clients + 10, stop.signal);
  const started = performance.now();
  const deadline = started + options.seconds * 1000;
  const timer = setTimeout(() => stop.abort(new Error('hang up')), options.seconds * 1000);
  let errors = 0;
  let firstError: string | undefined;
  try {
    const perClient = await Promise.all(
      Array.from({ length: options.clients }, async () => {
        let bytes = 0;
        let status = 0;
        try {
          const { statusCode, body } = await pool.request({ method: 'GET', path, signal: stop.signal });
          status = statusCode;
          const clientStarted = performance.now();
          for await (const chunk of body as AsyncIterable<Buffer>) {
            bytes += chunk.length;
            const due = Math.min(clientStarted + (bytes / options.bytesPerSec) * 1000, deadline);
            const wait = due - performance.now();
            if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
            if (stop.signal.aborted) break;
          }
          if (!stop.signal.aborted) body.destroy();
        } catch (err) {
          if (!stop.signal.aborted) {
            errors += 1;
            firstError ??= (err as Error).message;
          }
        }
        return { bytes, status };
      }),
    );
    return { bytes: perClient.map((c) => c.bytes), statuses: perClient.map((c) => c.status), errors, firstError, wallMs: performance.now() - started };
  } finally {
    clearTimeout(timer);
    await pool.destroy();
  }
}
