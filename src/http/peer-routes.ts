/**
 * The peer endpoint (cluster/peer-protocol.ts): another replica of the set
 * fetching a blob or manifest bytes from this one. Answered only from this
 * node's disk or its fill in progress, never forwarded to the primary or to
 * another peer, so peer requests cannot loop. Off (405 UNSUPPORTED) without
 * a peer secret; 401 UNAUTHORIZED without a valid signature.
 *
 * And the warm (`POST /api/v0/peer/warm?...`): a prefetch run asking this
 * replica to pull one image into its cache, answered as an NDJSON stream of
 * progress and the result. Signed with the peer secret, or (standalone) with
 * the node-local secret the cluster primary gives its workers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BlobSource } from '../cache/blob-source.ts';
import type { Clock } from '../cache/ports.ts';
import { peerAuthHeader, peerBlobsPath, peerRetentionPath, peerWarmPath, verifyPeerRequest, warmHeartbeatMs } from '../cluster/peer-protocol.ts';
import { MAX_PLATFORMS, parsePlatform, PlatformError } from '../prefetch/platform-filter.ts';
import type { ImageRef, ImageWarmer, WarmProgress } from '../prefetch/ports.ts';
import { looksLikeDigest, parseDigest, type Digest } from '../registry/digest.ts';
import { RegistryError } from '../registry/errors.ts';
import { isValidTag, validateName } from '../registry/reference.ts';
import { abortSignalOf, ProgressThrottle, startNdjson } from './ndjson-response.ts';
import { apiVersionHeader, sendBlobSource } from './send.ts';

export { peerBlobsPath, peerRetentionPath, peerWarmPath };

/** What the warm endpoint needs: the warmer and the names of the primaries this node knows. */
export interface PeerWarmDeps {
  warmer: ImageWarmer;
  /** The secret warms are signed with: the peer secret, else the node-local one. */
  secret: string;
  /** The configured primary's host for a host or alias; undefined when none answers to it. */
  upstreamOf(host: string): string | undefined;
  /** Shortest time between progress lines; default 250 ms. */
  progressIntervalMs?: number;
}

export interface PeerRoutesDeps {
  /** The replica set's peer secret; undefined turns the endpoint off. */
  secret: string | undefined;
  clock: Clock;
  blobs: {
    statForPeer(digest: Digest): Promise<{ size: number } | undefined>;
    openForPeer(digest: Digest, signal: AbortSignal): Promise<BlobSource>;
  };
  /** The media type stored with manifest bytes (sent as Content-Type), undefined for other blobs. */
  mediaType(digest: Digest): Promise<string | undefined>;
  /** `POST /api/v0/peer/warm`; undefined: 404. */
  warm?: PeerWarmDeps;
  /** `POST /api/v0/peer/retention` (prefetch-cluster: scheduled retention sweeps); undefined: 404. */
  retention?: PeerRetentionDeps;
}

// --- retention sweeps (scheduled by the leader, prefetch/retention-sweeps.ts) -------------------

/** What the retention endpoint needs: this node's sweep (run by the cluster primary, which owns the eviction index). */
export interface PeerRetentionDeps {
  sweep(): Promise<{ evicted: number; bytes: number }>;
}

export class PeerRoutes {
  constructor(private readonly deps: PeerRoutesDeps) {}

  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (path === peerWarmPath) return this.warm(req, res);
    if (path === peerRetentionPath) return this.retention(req, res);
    const { secret } = this.deps;
    if (secret === undefined) throw new RegistryError('UNSUPPORTED', 'peer fill is off: set OUTPOST_PEER_SECRET');
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') throw new RegistryError('UNSUPPORTED', 'the peer endpoint is read-only', { headers: { allow: 'GET, HEAD' } });
    const auth = verifyPeerRequest(secret, method, path, req.headers[peerAuthHeader], this.deps.clock.now());
    if (!auth.ok) {
      throw new RegistryError('UNAUTHORIZED', 'a valid peer signature is required', {
        detail: { reason: auth.reason },
        headers: { 'www-authenticate': 'OutpostPeer realm="outpost-peer"' },
      });
    }
    const digest = parseDigest(path.slice(peerBlobsPath.length));
    const etag = `"${digest}"`;
    const headers = {
      ...apiVersionHeader,
      'docker-content-digest': digest,
      'content-type': (await this.deps.mediaType(digest).catch(() => undefined)) ?? 'application/octet-stream',
      'accept-ranges': 'bytes',
    };
    if (method === 'HEAD') {
      const stat = await this.deps.blobs.statForPeer(digest);
      if (stat === undefined) throw new RegistryError('BLOB_UNKNOWN', 'this replica neither holds nor fills the blob');
      res.writeHead(200, { ...headers, 'content-length': stat.size });
      res.end();
      return;
    }
    const source = await this.deps.blobs.openForPeer(digest, abortSignalOf(res));
    await sendBlobSource(req, res, source, { ...headers, 'x-outpost-cache': source.result }, etag);
  }

  /** `POST /api/v0/peer/warm?...`: checks everything, then streams the warm's progress and result. */
  /** The leader asks for a retention sweep now (peer secret only: never the node-local one, nothing on this node calls it over HTTP). */
  private async retention(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { secret, retention } = this.deps;
    if (retention === undefined) throw new RegistryError('NAME_UNKNOWN', 'no retention endpoint on this node');
    if (secret === undefined) throw new RegistryError('UNSUPPORTED', 'the peer endpoint is off: set OUTPOST_PEER_SECRET');
    if (req.method !== 'POST') throw new RegistryError('UNSUPPORTED', 'a retention sweep is asked with POST', { headers: { allow: 'POST' } });
    const auth = verifyPeerRequest(secret, 'POST', peerRetentionPath, req.headers[peerAuthHeader], this.deps.clock.now());
    if (!auth.ok) {
      throw new RegistryError('UNAUTHORIZED', 'a valid peer signature is required', {
        detail: { reason: auth.reason },
        headers: { 'www-authenticate': 'OutpostPeer realm="outpost-peer"' },
      });
    }
    req.resume();
    const result = await retention.sweep();
    const body = JSON.stringify({ evicted: result.evicted, bytes: result.bytes });
    res.writeHead(200, { ...apiVersionHeader, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  }

  private async warm(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const warm = this.deps.warm;
    if (warm === undefined) throw new RegistryError('UNSUPPORTED', 'this node does not warm images for peers');
    const method = req.method ?? 'GET';
    if (method !== 'POST') throw new RegistryError('UNSUPPORTED', 'a warm is a POST', { headers: { allow: 'POST' } });
    const target = req.url ?? '';
    const auth = verifyPeerRequest(warm.secret, method, target, req.headers[peerAuthHeader], this.deps.clock.now());
    if (!auth.ok) {
      throw new RegistryError('UNAUTHORIZED', 'a valid peer signature is required', {
        detail: { reason: auth.reason },
        headers: { 'www-authenticate': 'OutpostPeer realm="outpost-peer"' },
      });
    }
    const length = req.headers['content-length'];
    if ((length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined) {
      throw new RegistryError('BODY_INVALID', 'a warm takes no body: everything is in the query');
    }
    const { ref, platforms } = parseWarmQuery(target, warm.upstreamOf);
    const signal = abortSignalOf(res);
    const write = startNdjson(res);
    const progress = new ProgressThrottle<WarmProgress>((p) => write({ progress: p }), {
      intervalMs: warm.progressIntervalMs ?? 250,
      heartbeatMs: warmHeartbeatMs,
    });
    try {
      const result = await warm.warmer.warm(ref, { platforms, signal, onProgress: (p) => progress.update(p) });
      progress.stop();
      write({ result });
      res.end();
    } finally {
      progress.stop();
    }
  }
}

const warmParameters = new Set(['upstream', 'repository', 'reference', 'platform']);

/** The image and platforms of a warm's query; 400 (404 for an unknown primary) naming what is wrong. */
export function parseWarmQuery(target: string, upstreamOf: (host: string) => string | undefined): { ref: ImageRef; platforms: string[] } {
  const q = target.indexOf('?');
  const query = new URLSearchParams(q < 0 ? '' : target.slice(q + 1));
  const bad = (message: string): RegistryError => new RegistryError('BODY_INVALID', message);
  for (const key of new Set(query.keys())) {
    if (!warmParameters.has(key)) throw bad(`unknown query parameter ${JSON.stringify(key.slice(0, 50))} (upstream, repository, reference, platform)`);
  }
  const one = (name: string): string => {
    const values = query.getAll(name);
    if (values.length !== 1 || values[0] === '') throw bad(`the query needs exactly one ${name}`);
    return values[0]!;
  };
  const host = one('upstream');
  const upstream = upstreamOf(host);
  if (upstream === undefined) {
    throw new RegistryError('NAME_UNKNOWN', 'this node has no primary configured for that registry', { detail: { upstream: host.slice(0, 200) } });
  }
  const repository = validateName(one('repository'));
  const reference = one('reference');
  if (looksLikeDigest(reference)) parseDigest(reference);
  else if (!isValidTag(reference)) throw new RegistryError('TAG_INVALID', 'invalid tag', { detail: { reference: reference.slice(0, 200) } });
  const raw = query.getAll('platform');
  if (raw.length > MAX_PLATFORMS) throw bad(`at most ${MAX_PLATFORMS} platforms`);
  let platforms: string[];
  try {
    platforms = [...new Set(raw.map(parsePlatform))];
  } catch (err) {
    if (err instanceof PlatformError) throw bad(err.message);
    throw err;
  }
  return { ref: { upstream, repository, reference }, platforms };
}
