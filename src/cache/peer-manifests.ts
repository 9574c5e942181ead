/**
 * Manifest bytes by digest from a replica that holds them: a manifest
 * another replica already fetched (a tag it revalidated, a platform of an
 * index) is not fetched over the WAN again. The bytes are read whole
 * (bounded by the manifest size limit) and verified against the digest
 * before anyone sees them; a replica whose bytes do not verify, or that
 * answers 404, loses its hint and the next one (or the primary) is asked.
 */
import type { Readable } from 'node:stream';
import { digestAlgorithm, digestOf, type Digest } from '../registry/digest.ts';
import { describe } from './lease-scope.ts';
import { peerResult } from './peer-fill-origin.ts';
import { destroyBody, type CacheObserver, type Logger, type ManifestResponse, type PeerBlobs, type PeerDirectory } from './ports.ts';

export interface PeerManifestsOptions {
  directory: PeerDirectory;
  peers: PeerBlobs;
  observer: Pick<CacheObserver, 'peerFill' | 'peerBytes'>;
  logger: Logger;
  /** Longest a holder may take to connect and answer (~1 s). */
  peerStartMs: number;
}

export class PeerManifests {
  constructor(private readonly options: PeerManifestsOptions) {}

  /** The verified bytes, or undefined when no replica could serve them. */
  async fetch(digest: Digest, maxBytes: number, signal: AbortSignal): Promise<ManifestResponse | undefined> {
    const { directory, peers, observer, logger } = this.options;
    let holders;
    try {
      holders = await directory.holders(digest);
    } catch {
      return undefined;
    }
    for (const peer of holders) {
      try {
        const response = await peers.get(peer, digest, signal, { startTimeoutMs: this.options.peerStartMs });
        const body = await readWhole(response.body, response.size, maxBytes);
        if (digestOf(body, digestAlgorithm(digest)) !== digest) {
          directory.notHeld(digest, peer.id);
          observer.peerFill('mismatch');
          logger.warn({ digest, peer: peer.id, url: peer.url }, 'manifest bytes from a peer replica do not match the digest; its hint dropped');
          continue;
        }
        observer.peerFill('ok');
        observer.peerBytes(body.byteLength);
        return { body, mediaType: response.mediaType ?? '', digest };
      } catch (err) {
        if (signal.aborted) throw err;
        const result = peerResult(err);
        observer.peerFill(result);
        if (result === 'not_found') directory.notHeld(digest, peer.id);
        logger.warn({ digest, peer: peer.id, url: peer.url, result, cause: describe(err).message }, 'peer replica could not serve the manifest; trying the next source');
      }
    }
    return undefined;
  }
}

async function readWhole(body: Readable, size: number | undefined, maxBytes: number): Promise<Buffer> {
  if (size !== undefined && size > maxBytes) {
    destroyBody(body);
    throw new Error(`larger than the ${maxBytes}-byte manifest limit`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) throw new Error(`larger than the ${maxBytes}-byte manifest limit`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}
