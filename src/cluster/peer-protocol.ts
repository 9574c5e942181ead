/**
 * The HTTP protocol between replicas: one endpoint, and how a request to it
 * is authenticated with the replica set's peer secret.
 *
 *   GET|HEAD /api/v0/peer/blobs/<digest>
 *     X-Outpost-Peer: v1 <node-id> <unix ms> <hex HMAC-SHA256>
 *     Range: bytes=<start>-          (optional; honoured for blobs on disk)
 *   → 200 / 206 with Content-Length, Docker-Content-Digest, and for a
 *     manifest its media type as Content-Type; 404 BLOB_UNKNOWN when this
 *     replica neither holds nor fills the blob; 401 UNAUTHORIZED without a
 *     valid signature.
 *
 *   POST /api/v0/peer/warm?upstream=<host>&repository=<name>&reference=<tag|digest>[&platform=os/arch]...
 *     X-Outpost-Peer: as above, over the whole request target (path and query); no body
 *   → 200 application/x-ndjson: `{"progress":{...}}` lines (at most ~4/s, and one
 *     at least every {@link warmHeartbeatMs}), then one `{"result":{...}}`
 *     (prefetch/ports.ts WarmProgress, WarmResult); 400 bad parameters;
 *     404 NAME_UNKNOWN for a primary this replica does not know. Without a
 *     peer secret (standalone) it takes the node-local secret the cluster
 *     primary hands its workers, so the node's own scheduler can call them.
 *
 * The HMAC covers the method, the path (for a warm: with the query), the time and the caller's node id,
 * with the label `outpost-peer-request` so a signature made for anything
 * else (a membership record) never verifies here. A signature is accepted
 * for {@link peerSignatureWindowMs} either side of this replica's clock:
 * replicas need roughly synchronised clocks (NTP), as etcd leases do.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const peerBlobsPath = '/api/v0/peer/blobs/';
export const peerAuthHeader = 'x-outpost-peer';
export const peerSignatureWindowMs = 60_000;
export const peerWarmPath = '/api/v0/peer/warm';
/**
 * `POST /api/v0/peer/retention` (no body, signed like the others): the leader
 * asks this replica for a retention sweep now → 200 `{"evicted": n, "bytes": n}`.
 */
export const peerRetentionPath = '/api/v0/peer/retention';
/** Longest a warm's stream stays silent: a progress line is repeated at least this often. */
export const warmHeartbeatMs = 10_000;

/** The request target (path and query) of a warm of `ref` on `platforms`; what the signature covers. */
export function peerWarmTarget(ref: { upstream: string; repository: string; reference: string }, platforms: readonly string[]): string {
  const query = new URLSearchParams({ upstream: ref.upstream, repository: ref.repository, reference: ref.reference });
  for (const platform of platforms) query.append('platform', platform);
  return `${peerWarmPath}?${query.toString()}`;
}

function mac(secret: string, method: string, path: string, at: number, nodeId: string): Buffer {
  return createHmac('sha256', secret).update(`outpost-peer-request\n${method}\n${path}\n${at}\n${nodeId}`).digest();
}

/** The `X-Outpost-Peer` value for a request from `nodeId` at `at` (ms since epoch). */
export function signPeerRequest(secret: string, method: string, path: string, nodeId: string, at: number): string {
  return `v1 ${nodeId} ${at} ${mac(secret, method, path, at, nodeId).toString('hex')}`;
}

export type PeerAuthResult = { ok: true; nodeId: string } | { ok: false; reason: string };

/** Checks an `X-Outpost-Peer` header against the secret, the request line and the clock. */
export function verifyPeerRequest(secret: string, method: string, path: string, header: string | string[] | undefined, now: number): PeerAuthResult {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value === '') return { ok: false, reason: 'no peer signature' };
  const parts = value.split(' ');
  if (parts.length !== 4 || parts[0] !== 'v1') return { ok: false, reason: 'malformed peer signature' };
  const [, nodeId = '', rawAt = '', hex = ''] = parts;
  const at = /^\d{1,16}$/.test(rawAt) ? Number(rawAt) : Number.NaN;
  if (!Number.isSafeInteger(at) || !/^[0-9a-f]{64}$/.test(hex) || nodeId === '' || nodeId.length > 253) return { ok: false, reason: 'malformed peer signature' };
  if (Math.abs(now - at) > peerSignatureWindowMs) return { ok: false, reason: 'peer signature too old or from the future (are the clocks in sync?)' };
  const expected = mac(secret, method, path, at, nodeId);
  const given = Buffer.from(hex, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'peer signature does not verify (another secret?)' };
  return { ok: true, nodeId };
}
