/**
 * The peer endpoint (cluster/peer-protocol.ts): another replica of the set
 * fetching a blob or manifest bytes from this one. Answered only from this
 * node's disk or its fill in progress, never forwarded to the primary or to
 * another peer, so peer requests cannot loop. Off (405 UNSUPPORTED) without
 * a peer secret; 401 UNAUTHORIZED without a valid signature.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BlobSource } from '../cache/blob-source.ts';
import type { Clock } from '../cache/ports.ts';
import { peerAuthHeader, peerBlobsPath, verifyPeerRequest } from '../cluster/peer-protocol.ts';
import { parseDigest, type Digest } from '../registry/digest.ts';
import { RegistryError } from '../registry/errors.ts';
import { apiVersionHeader, sendBlobSource } from './send.ts';

export { peerBlobsPath };

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
}

export class PeerRoutes {
  constructor(private readonly deps: PeerRoutesDeps) {}

  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
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
}

/** Aborts when the requesting replica goes away before the response is finished. */
function abortSignalOf(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}
