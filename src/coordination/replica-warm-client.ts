/**
 * Asks one replica (this node included) to warm one image, over its
 * `POST /api/v0/peer/warm` (cluster/peer-protocol.ts), signed with the
 * replica set's peer secret (or, standalone, the node-local one), on one
 * undici agent with keep-alive per replica.
 *
 * The answer is an NDJSON stream from another process: every line is
 * bounded (`maxLineBytes`), parsed field by field (prefetch/warm-lines.ts)
 * and must name the image asked for; the stream may go silent for at most
 * `idleTimeoutMs` (the replica repeats its progress every few seconds).
 *
 * Error contract: `warm` resolves with the replica's result (which may say
 * the image failed there), or rejects with a {@link ReplicaWarmError} —
 * WARM_UNREACHABLE (refused, reset, DNS, a bad URL), WARM_TIMEOUT (no
 * answer within `headersTimeoutMs`, or the stream idle for `idleTimeoutMs`),
 * WARM_REFUSED (401/403: another secret), WARM_REJECTED (another 4xx/5xx;
 * the message carries the replica's OCI code), WARM_BAD_RESPONSE (not the
 * stream the protocol describes), WARM_ABORTED (the caller's signal).
 */
import { Agent, type Dispatcher } from 'undici';
import { destroyBody, type Clock } from '../cache/ports.ts';
import { peerAuthHeader, peerWarmTarget, signPeerRequest } from '../cluster/peer-protocol.ts';
import { ndjsonLines } from '../prefetch/ndjson-lines.ts';
import { formatImageRef, type ImageRef, type ReplicaTarget, type ReplicaWarmClient, type WarmOptions, type WarmResult } from '../prefetch/ports.ts';
import { parseWarmLine } from '../prefetch/warm-lines.ts';

export type ReplicaWarmErrorCode = 'WARM_UNREACHABLE' | 'WARM_TIMEOUT' | 'WARM_REFUSED' | 'WARM_REJECTED' | 'WARM_BAD_RESPONSE' | 'WARM_ABORTED';

export class ReplicaWarmError extends Error {
  override readonly name = 'ReplicaWarmError';

  constructor(
    readonly code: ReplicaWarmErrorCode,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, options);
  }
}

export interface ReplicaWarmClientOptions {
  /** This node's id, named in the signature. */
  nodeId: string;
  secret: string;
  clock: Clock;
  connectTimeoutMs?: number;
  /** Until the replica's answer starts (it validates the request first). */
  headersTimeoutMs?: number;
  /** Longest silence of the stream; above the replica's heartbeat (10 s). */
  idleTimeoutMs?: number;
  maxLineBytes?: number;
  /** Connections per replica. */
  connections?: number;
}

const unreachableCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);
const timeoutCodes = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);
const maxErrorBodyBytes = 8 * 1024;

export class HttpReplicaWarmClient implements ReplicaWarmClient {
  private readonly agent: Agent;
  private readonly maxLineBytes: number;

  constructor(private readonly options: ReplicaWarmClientOptions) {
    this.maxLineBytes = options.maxLineBytes ?? 64 * 1024;
    this.agent = new Agent({
      connect: { timeout: options.connectTimeoutMs ?? 5_000 },
      connections: options.connections ?? 16,
      keepAliveTimeout: 30_000,
      headersTimeout: options.headersTimeoutMs ?? 30_000,
      bodyTimeout: options.idleTimeoutMs ?? 60_000,
    });
  }

  async warm(replica: ReplicaTarget, ref: ImageRef, options: WarmOptions): Promise<WarmResult> {
    const { signal } = options;
    const image = formatImageRef(ref);
    let url: URL;
    try {
      url = new URL(peerWarmTarget(ref, options.platforms), replica.url);
    } catch (err) {
      throw new ReplicaWarmError('WARM_UNREACHABLE', `bad URL ${JSON.stringify(replica.url.slice(0, 200))} for replica ${replica.id}`, { cause: err });
    }
    const target = `${url.pathname}${url.search}`;
    const fail = (err: unknown): ReplicaWarmError => this.failure(err, replica, signal);
    let res: Dispatcher.ResponseData;
    try {
      res = await this.agent.request({
        origin: url.origin,
        path: target,
        method: 'POST',
        headers: { [peerAuthHeader]: signPeerRequest(this.options.secret, 'POST', target, this.options.nodeId, this.options.clock.now()) },
        signal,
      });
    } catch (err) {
      throw fail(err);
    }
    const body = res.body;
    try {
      if (res.statusCode !== 200) throw await rejection(res, replica);
      const type = String(res.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
      if (type !== 'application/x-ndjson') throw new ReplicaWarmError('WARM_BAD_RESPONSE', `replica ${replica.id} answered ${type || 'no content type'}, not application/x-ndjson`);
      let result: WarmResult | undefined;
      for await (const value of ndjsonLines(body, this.maxLineBytes)) {
        if (result !== undefined) throw new ReplicaWarmError('WARM_BAD_RESPONSE', `replica ${replica.id} sent lines after the result`);
        let line;
        try {
          line = parseWarmLine(value, image);
        } catch (err) {
          throw new ReplicaWarmError('WARM_BAD_RESPONSE', `replica ${replica.id}: ${(err as Error).message}`, { cause: err });
        }
        if ('result' in line) result = line.result;
        else {
          try {
            options.onProgress?.(line.progress);
          } catch {
            // A progress listener never fails a warm.
          }
        }
      }
      if (result === undefined) throw new ReplicaWarmError('WARM_BAD_RESPONSE', `replica ${replica.id} ended the stream without a result`);
      return result;
    } catch (err) {
      destroyBody(body);
      throw err instanceof ReplicaWarmError ? err : fail(err);
    }
  }

  private failure(err: unknown, replica: ReplicaTarget, signal: AbortSignal): ReplicaWarmError {
    if (signal.aborted) return new ReplicaWarmError('WARM_ABORTED', 'the warm was aborted', { cause: err });
    const code = String((err as { code?: unknown })?.code ?? '');
    const cause = `${code || 'error'}: ${(err as Error)?.message ?? String(err)}`.slice(0, 300);
    if (timeoutCodes.has(code)) return new ReplicaWarmError('WARM_TIMEOUT', `replica ${replica.id} (${replica.url}): ${cause}`, { cause: err });
    if (unreachableCodes.has(code)) return new ReplicaWarmError('WARM_UNREACHABLE', `replica ${replica.id} (${replica.url}): ${cause}`, { cause: err });
    if (code === 'NDJSON_INVALID') return new ReplicaWarmError('WARM_BAD_RESPONSE', `replica ${replica.id}: ${cause}`, { cause: err });
    return new ReplicaWarmError('WARM_UNREACHABLE', `replica ${replica.id} (${replica.url}): ${cause}`, { cause: err });
  }

  async close(): Promise<void> {
    await this.agent.close().catch(() => undefined);
  }
}

/** The error a non-200 answer stands for, with the replica's OCI code and message when it sent the envelope. */
async function rejection(res: Dispatcher.ResponseData, replica: ReplicaTarget): Promise<ReplicaWarmError> {
  const status = res.statusCode;
  let detail = '';
  try {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > maxErrorBodyBytes) break;
      chunks.push(chunk as Buffer);
    }
    const envelope = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { errors?: { code?: unknown; message?: unknown }[] };
    const first = envelope.errors?.[0];
    if (typeof first?.code === 'string') detail = `: ${first.code.slice(0, 50)} ${String(first.message ?? '').slice(0, 200)}`;
  } catch {
    // No envelope: the status says it.
  }
  if (status === 401 || status === 403) return new ReplicaWarmError('WARM_REFUSED', `replica ${replica.id} refused the warm (${status}): another peer secret?${detail}`);
  return new ReplicaWarmError('WARM_REJECTED', `replica ${replica.id} answered ${status}${detail}`);
}
