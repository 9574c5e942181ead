/**
 * Blobs from other replicas' peer endpoints (cluster/peer-protocol.ts), on
 * one undici agent with keep-alive per peer.
 *
 * Error contract ({@link PeerBlobs}): `get` resolves with a 200 or 206
 * answer, or rejects with a PeerError — PEER_TIMEOUT when connecting and the
 * response headers together took longer than `startTimeoutMs`,
 * PEER_UNREACHABLE (refused, reset, DNS), PEER_NOT_FOUND (404), PEER_REFUSED
 * (401/403: another secret), PEER_BAD_RESPONSE (any other answer),
 * PEER_ABORTED (the caller's signal). Once it resolved, the body is undici's
 * stream: a peer that dies or stays silent for the idle timeout surfaces as
 * an 'error' on it, and the caller's signal stays bound to it.
 */
import { Agent } from 'undici';
import type { Clock } from '../cache/ports.ts';
import { destroyBody, PeerError, type PeerBlobResponse, type PeerBlobs, type PeerRef } from '../cache/ports.ts';
import { peerAuthHeader, peerBlobsPath, signPeerRequest } from '../cluster/peer-protocol.ts';
import type { Digest } from '../registry/digest.ts';

export interface PeerClientOptions {
  /** This replica's id, named in the signature. */
  nodeId: string;
  secret: string;
  /** Longest gap between two body chunks, unless a request says otherwise (a peer relaying a slow primary waits on it). */
  bodyIdleTimeoutMs: number;
  /** Time allowed to open a connection to a peer, whatever the start timeout. */
  connectTimeoutMs: number;
  clock: Clock;
  /** Connections per peer (64 by default: a fill waiting on a lock holder holds one for as long as it waits). */
  connections?: number;
}

const unreachableCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);
const timeoutCodes = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'ETIMEDOUT']);

export class PeerClient implements PeerBlobs {
  private readonly agent: Agent;

  constructor(private readonly options: PeerClientOptions) {
    this.agent = new Agent({
      connect: { timeout: options.connectTimeoutMs },
      connections: options.connections ?? 64,
      keepAliveTimeout: 30_000,
      bodyTimeout: options.bodyIdleTimeoutMs,
      // Bounded by the caller's start timeout instead (a lock holder may be waiting on the primary).
      headersTimeout: 0,
    });
  }

  async get(peer: PeerRef, digest: Digest, signal: AbortSignal, options: { start?: number; startTimeoutMs: number; idleTimeoutMs?: number }): Promise<PeerBlobResponse> {
    const start = options.start ?? 0;
    let url: URL;
    try {
      url = new URL(`${peerBlobsPath}${digest}`, peer.url);
    } catch (err) {
      throw new PeerError('PEER_UNREACHABLE', `bad advertise URL ${JSON.stringify(peer.url)}`, { cause: err });
    }
    const path = url.pathname;
    const headers: Record<string, string> = {
      [peerAuthHeader]: signPeerRequest(this.options.secret, 'GET', path, this.options.nodeId, this.options.clock.now()),
      ...(start > 0 ? { range: `bytes=${start}-` } : {}),
    };
    const late = new AbortController();
    const timer = setTimeout(() => late.abort(), options.startTimeoutMs);
    let res;
    try {
      res = await this.agent.request({
        origin: url.origin,
        path,
        method: 'GET',
        headers,
        signal: AbortSignal.any([signal, late.signal]),
        bodyTimeout: options.idleTimeoutMs ?? this.options.bodyIdleTimeoutMs,
      });
    } catch (err) {
      if (signal.aborted) throw new PeerError('PEER_ABORTED', 'the fill was aborted', { cause: err });
      if (late.signal.aborted) throw new PeerError('PEER_TIMEOUT', `no answer within ${options.startTimeoutMs} ms`, { cause: err });
      const code = String((err as { code?: unknown })?.code ?? '');
      const cause = `${code || 'error'}: ${(err as Error)?.message ?? String(err)}`;
      if (timeoutCodes.has(code)) throw new PeerError('PEER_TIMEOUT', cause, { cause: err });
      if (unreachableCodes.has(code)) throw new PeerError('PEER_UNREACHABLE', cause, { cause: err });
      throw new PeerError('PEER_UNREACHABLE', cause, { cause: err });
    } finally {
      clearTimeout(timer);
    }
    const status = res.statusCode;
    if (status !== 200 && status !== 206) {
      res.body.dump().catch(() => undefined);
      if (status === 404) throw new PeerError('PEER_NOT_FOUND', 'the peer neither holds nor fills the blob');
      if (status === 401 || status === 403) throw new PeerError('PEER_REFUSED', `the peer refused the request (${status}): another peer secret?`);
      throw new PeerError('PEER_BAD_RESPONSE', `the peer answered ${status}`);
    }
    try {
      const length = byteCount(res.headers['content-length']);
      const type = single(res.headers['content-type']);
      const mediaType = type === undefined || type === 'application/octet-stream' ? undefined : type;
      if (status === 200) return { size: length, offset: 0, body: res.body, mediaType };
      const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(single(res.headers['content-range']) ?? '');
      if (range === null || Number(range[1]) !== start) throw new PeerError('PEER_BAD_RESPONSE', 'a 206 without the Content-Range asked for');
      return { size: Number(range[3]), offset: start, body: res.body, mediaType };
    } catch (err) {
      destroyBody(res.body);
      throw err instanceof PeerError ? err : new PeerError('PEER_BAD_RESPONSE', String((err as Error)?.message ?? err), { cause: err });
    }
  }

  async close(): Promise<void> {
    await this.agent.close().catch(() => undefined);
  }
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function byteCount(value: string | string[] | undefined): number | undefined {
  const v = single(value);
  if (v === undefined) return undefined;
  const n = /^\d{1,16}$/.test(v.trim()) ? Number(v.trim()) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new PeerError('PEER_BAD_RESPONSE', 'Content-Length is not a byte count');
  return n;
}
