/**
 * Where a fill's bytes come from in a replica set, decided by the worker
 * that leads the host's fill of a digest:
 *
 *   1. a replica that holds the blob (the location index): stream it from
 *      that replica's peer endpoint;
 *   2. else, when another replica holds the cluster fill lock, follow that
 *      replica's fill through its peer endpoint (its answer grows with it);
 *   3. else take the lock and fetch from the primary, once for the set.
 *
 * A peer that refuses, answers 404 or sends no headers within `peerStartMs`
 * is skipped, logged with the peer and the cause; shared state that does not
 * answer (Redis down) means the primary at once. A peer that breaks off
 * mid-transfer is replaced by a ranged resume decided the same way (another
 * holder, the lock holder, or the primary), so the fill — and every reader of
 * its partial file — sees one unbroken body. Nothing a peer sends is trusted:
 * the fill verifies size and digest of the whole file before it commits, and
 * a mismatch drops the hints of every peer that supplied bytes.
 */
import { Readable } from 'node:stream';
import type { Digest } from '../registry/digest.ts';
import type { FillBody, FillOrigin, FillOutcome } from './fill-origin.ts';
import { describe } from './lease-scope.ts';
import type { BlobResponse, CacheObserver, ClusterFillLock, FillLockResult, Logger, PeerBlobs, PeerDirectory, PeerFillResult, PeerRef } from './ports.ts';
import { destroyBody, PeerError } from './ports.ts';
import type { BlobTarget } from './repository-target.ts';
import { toRegistryError } from './upstream-failure.ts';

export interface PeerFillOriginOptions {
  directory: PeerDirectory;
  peers: PeerBlobs;
  observer: Pick<CacheObserver, 'peerFill' | 'peerBytes' | 'fillLockWait'>;
  logger: Logger;
  /** Longest a holder may take to connect and send its headers before the next source is used (~1 s). */
  peerStartMs: number;
  /** Longest a holder (serving from its disk) may pause mid-transfer before the rest comes from elsewhere. */
  peerIdleMs: number;
  /** Longest the lock holder may take to send its headers: it may be waiting on the primary itself. */
  followStartMs: number;
  /** While waiting on the lock holder, how often the lock is looked at (a holder that let go is not waited for). */
  lockCheckMs?: number;
}

/** How many times the holders and the lock are looked at before the primary is asked regardless. */
const decisionRounds = 3;

type Supplier = { kind: 'primary' } | { kind: 'peer'; peer: PeerRef };

interface Opened {
  response: BlobResponse;
  from: Supplier;
}

/** What one fill holds and has learnt: the lock, peers that failed it, peers that supplied bytes. */
interface FillRecord {
  digest: Digest;
  lock: ClusterFillLock | undefined;
  failed: Set<string>;
  suppliers: Set<string>;
  peerBytes: number;
}

export class PeerFillOrigin implements FillOrigin {
  private readonly lockCheckMs: number;

  constructor(private readonly options: PeerFillOriginOptions) {
    this.lockCheckMs = options.lockCheckMs ?? 500;
  }

  async open(target: BlobTarget, digest: Digest, signal: AbortSignal): Promise<FillBody> {
    const fill: FillRecord = { digest, lock: undefined, failed: new Set(), suppliers: new Set(), peerBytes: 0 };
    let first: Opened;
    try {
      first = await this.supplier(target, fill, 0, signal);
    } catch (err) {
      fill.lock?.release(false);
      throw err;
    }
    const size = first.response.size;
    const body = Readable.from(this.resuming(target, fill, first, size, signal), { objectMode: false });
    let settled = false;
    return {
      size,
      offset: 0,
      body,
      peerBytes: () => fill.peerBytes,
      fromPrimary: first.from.kind === 'primary',
      settle: (outcome) => {
        if (settled) return;
        settled = true;
        this.settle(fill, outcome);
      },
    };
  }

  private settle(fill: FillRecord, outcome: FillOutcome): void {
    if (outcome === 'mismatch' && fill.suppliers.size > 0) {
      const peers = [...fill.suppliers];
      for (const peer of peers) this.options.directory.notHeld(fill.digest, peer);
      this.options.observer.peerFill('mismatch');
      this.options.logger.warn({ digest: fill.digest, peers }, 'bytes from a peer replica do not match the digest; nothing cached, its hint dropped');
    }
    fill.lock?.release(outcome === 'cached');
    fill.lock = undefined;
  }

  /**
   * The blob from `start` on: a holder, the lock holder's fill, or the
   * primary (under the lock when this replica could take it).
   */
  private async supplier(target: BlobTarget, fill: FillRecord, start: number, signal: AbortSignal): Promise<Opened> {
    const { directory, logger } = this.options;
    for (let round = 0; round < decisionRounds; round++) {
      let holders: PeerRef[];
      try {
        holders = await directory.holders(fill.digest);
      } catch (err) {
        logger.debug({ digest: fill.digest, err: describe(err) }, 'shared state unavailable; fetching from the primary');
        return this.primary(target, fill.digest, start, signal);
      }
      for (const peer of shuffled(holders)) {
        if (fill.failed.has(peer.id)) continue;
        const opened = await this.fromPeer(peer, fill, start, signal, { startTimeoutMs: this.options.peerStartMs, idleTimeoutMs: this.options.peerIdleMs }, 'holder');
        if (opened) return opened;
      }
      let lock: FillLockResult = { kind: 'unavailable' };
      if (fill.lock === undefined) lock = await directory.lock(fill.digest).catch((): FillLockResult => ({ kind: 'unavailable' }));
      if (lock.kind === 'acquired') {
        fill.lock = lock.lock;
        return this.primary(target, fill.digest, start, signal);
      }
      if (lock.kind === 'unavailable') return this.primary(target, fill.digest, start, signal);
      if (lock.kind === 'announced') continue;
      this.options.observer.fillLockWait();
      if (lock.owner === undefined || fill.failed.has(lock.owner.id)) {
        logger.info({ digest: fill.digest, owner: lock.owner?.id }, 'another replica holds the fill lock but cannot be followed; fetching from the primary');
        return this.primary(target, fill.digest, start, signal);
      }
      const opened = await this.followLockOwner(lock.owner, fill, start, signal);
      if (opened) return opened;
    }
    logger.info({ digest: fill.digest }, 'no replica could serve the blob; fetching from the primary');
    return this.primary(target, fill.digest, start, signal);
  }

  private async primary(target: BlobTarget, digest: Digest, start: number, signal: AbortSignal): Promise<Opened> {
    const response = await target.upstream.getBlob(target.name, digest, signal, start > 0 ? { start } : {});
    return { response, from: { kind: 'primary' } };
  }

  /** The replica holding the lock, followed until it answers — unless it lets the lock go first. */
  private async followLockOwner(owner: PeerRef, fill: FillRecord, start: number, signal: AbortSignal): Promise<Opened | undefined> {
    const moved = new AbortController();
    const watcher = setInterval(() => {
      this.options.directory.lockOwner(fill.digest).then(
        (now) => {
          if (now !== owner.id) moved.abort();
        },
        () => undefined, // unknown: keep waiting, bounded by followStartMs
      );
    }, this.lockCheckMs);
    try {
      // It relays the primary: its pauses are the primary's, bounded like them.
      return await this.fromPeer(owner, fill, start, signal, { startTimeoutMs: this.options.followStartMs }, 'lock holder', moved.signal);
    } finally {
      clearInterval(watcher);
    }
  }

  /** One peer request; undefined (logged, counted) when the peer cannot serve. `moved` gives up on a lock holder that let go. */
  private async fromPeer(
    peer: PeerRef,
    fill: FillRecord,
    start: number,
    signal: AbortSignal,
    timeouts: { startTimeoutMs: number; idleTimeoutMs?: number },
    role: 'holder' | 'lock holder',
    moved?: AbortSignal,
  ): Promise<Opened | undefined> {
    try {
      const request = moved === undefined ? signal : AbortSignal.any([signal, moved]);
      const response = await this.options.peers.get(peer, fill.digest, request, { start, ...timeouts });
      return { response, from: { kind: 'peer', peer } };
    } catch (err) {
      if (signal.aborted) throw err;
      if (moved?.aborted) {
        this.options.logger.debug({ digest: fill.digest, peer: peer.id }, 'the lock holder let the lock go before its fill started; deciding again');
        return undefined;
      }
      const result = peerResult(err);
      this.options.observer.peerFill(result);
      fill.failed.add(peer.id);
      if (result === 'not_found' && role === 'holder') this.options.directory.notHeld(fill.digest, peer.id);
      this.options.logger.warn(
        { digest: fill.digest, peer: peer.id, url: peer.url, role, result, cause: describe(err).message },
        'peer replica could not serve the blob; trying the next source',
      );
      return undefined;
    }
  }

  /**
   * The fill's body: the first supplier's bytes, continued from where they
   * stopped by another supplier when a peer breaks off. A supplier that
   * ignores the Range and starts at 0 has the bytes already passed skipped
   * (the whole file is verified before it is committed). The primary's own
   * failures end the fill, as without peers.
   */
  private async *resuming(target: BlobTarget, fill: FillRecord, first: Opened, size: number | undefined, signal: AbortSignal): AsyncGenerator<Buffer> {
    let current = first;
    let position = 0;
    try {
      for (;;) {
        const { response, from } = current;
        let skip = position - response.offset;
        try {
          if (skip < 0) throw new PeerError('PEER_BAD_RESPONSE', `answered from byte ${response.offset}, not ${position}`);
          for await (const raw of response.body as AsyncIterable<Buffer>) {
            let chunk = raw;
            if (skip > 0) {
              if (chunk.length <= skip) {
                skip -= chunk.length;
                continue;
              }
              chunk = chunk.subarray(skip);
              skip = 0;
            }
            if (from.kind === 'peer') {
              if (size !== undefined && position + chunk.length > size) throw new PeerError('PEER_BAD_RESPONSE', `sent more than the ${size} bytes announced`);
              fill.peerBytes += chunk.length;
              fill.suppliers.add(from.peer.id);
              this.options.observer.peerBytes(chunk.length);
            }
            position += chunk.length;
            yield chunk;
          }
          if (from.kind === 'peer') {
            if (size !== undefined && position < size) throw new PeerError('PEER_BAD_RESPONSE', `ended after ${position} of ${size} bytes`);
            this.options.observer.peerFill('ok');
            this.options.logger.debug({ digest: fill.digest, peer: from.peer.id, bytes: position }, 'blob received from a peer replica');
          }
          return;
        } catch (err) {
          if (from.kind === 'primary' || signal.aborted) throw err;
          destroyBody(response.body);
          fill.failed.add(from.peer.id);
          this.options.observer.peerFill(err instanceof PeerError && err.code === 'PEER_BAD_RESPONSE' ? 'error' : 'broken');
          this.options.logger.warn(
            { digest: fill.digest, peer: from.peer.id, url: from.peer.url, position, cause: describe(err).message },
            'transfer from a peer replica broke off; resuming from another source',
          );
        }
        try {
          current = await this.supplier(target, fill, position, signal);
        } catch (err) {
          throw toRegistryError(err, 'BLOB_UNKNOWN');
        }
        if (size !== undefined && current.response.size !== undefined && current.response.size !== size) {
          throw toRegistryError(new PeerError('PEER_BAD_RESPONSE', `the blob is now ${current.response.size} bytes, not ${size}`), 'BLOB_UNKNOWN');
        }
      }
    } finally {
      destroyBody(current.response.body);
    }
  }
}

/** How a failed peer request is counted (`outpost_peer_fills_total{result}`). */
export function peerResult(err: unknown): PeerFillResult {
  if (!(err instanceof PeerError)) return 'error';
  switch (err.code) {
    case 'PEER_NOT_FOUND':
      return 'not_found';
    case 'PEER_UNREACHABLE':
      return 'unreachable';
    case 'PEER_TIMEOUT':
      return 'timeout';
    case 'PEER_REFUSED':
      return 'refused';
    default:
      return 'error';
  }
}

function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
