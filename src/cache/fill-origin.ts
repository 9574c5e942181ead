/**
 * Where the bytes of a fill come from. The leader of a host's fill asks its
 * origin for the blob and pumps what it gets into the partial file; how the
 * origin finds them is its own business:
 *
 *   primaryOrigin ........ the primary, always (a standalone node, or no Redis)
 *   PeerFillOrigin ....... a replica that holds it, the replica filling it
 *                          now, or the primary under the cluster fill lock
 *                          (peer-fill-origin.ts)
 *
 * Either way the fill verifies size and digest of the whole file before it
 * commits: an origin hands out bytes, never trust.
 */
import type { Digest } from '../registry/digest.ts';
import type { BlobResponse } from './ports.ts';
import type { BlobTarget } from './repository-target.ts';

/** How the fill that used a body ended. */
export type FillOutcome =
  /** Verified and on disk. */
  | 'cached'
  /** Verified, streamed through uncached (too large, disk unwritable). */
  | 'uncached'
  /** Failed: the primary's answer, a broken transfer, a local error. */
  | 'failed'
  /** The bytes did not verify. */
  | 'mismatch';

/** A blob body for one fill, from offset 0; the caller consumes or destroys `body` and settles once. */
export interface FillBody extends BlobResponse {
  /** Bytes of `body` that came from peer replicas so far (the rest came from the primary). */
  peerBytes(): number;
  /**
   * Whether the primary itself answered this repository's GET (so it has the
   * blob): a body from a peer says nothing about which repositories may
   * serve the blob.
   */
  readonly fromPrimary: boolean;
  /** Says how the fill ended: releases what the origin holds for it (the cluster fill lock) and drops hints proved false. */
  settle(outcome: FillOutcome): void;
}

export interface FillOrigin {
  /** Rejects with the primary's failure (an UpstreamError) when nobody can serve the blob. */
  open(target: BlobTarget, digest: Digest, signal: AbortSignal): Promise<FillBody>;
}

/** Every fill from the primary. */
export const primaryOrigin: FillOrigin = {
  async open(target, digest, signal) {
    const response = await target.upstream.getBlob(target.name, digest, signal);
    return { ...response, fromPrimary: true, peerBytes: () => 0, settle: () => undefined };
  },
};
