/**
 * The fill decision of a replica set on memory adapters: a holder first, the
 * lock holder's fill next, the primary under the lock last; resumes when a
 * peer breaks off; verification of every byte from a peer.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobSource } from '../../../src/cache/blob-source.ts';
import { BlobService } from '../../../src/cache/blob-service.ts';
import { PeerFillOrigin } from '../../../src/cache/peer-fill-origin.ts';
import {
  noopIndexReporter,
  noopObserver,
  PeerError,
  type CacheObserver,
  type FillLockResult,
  type PeerBlobResponse,
  type PeerBlobs,
  type PeerDirectory,
  type PeerFillResult,
  type PeerRef,
} from '../../../src/cache/ports.ts';
import { MemoryFillCoordinator } from '../../../src/coordination/memory-fill-coordinator.ts';
import { digestOf, type Digest } from '../../../src/registry/digest.ts';
import { DiskBlobStore } from '../../../src/storage/disk-blob-store.ts';
import { cacheLayout } from '../../../src/storage/layout.ts';
import { FakeUpstream } from '../../support/fake-upstream.ts';
import { everyBlobLinked } from '../../support/memory-cache-ports.ts';

const silent = { debug() {}, info() {}, warn() {}, error() {} };

/** The shared state as a test sets it up: holders per digest, one lock table. */
class FakeDirectory implements PeerDirectory {
  holdersOf = new Map<string, PeerRef[]>();
  lockOwnerOf = new Map<string, PeerRef>();
  dropped: string[] = [];
  released: { digest: string; cached: boolean }[] = [];
  down = false;

  async holders(digest: Digest): Promise<PeerRef[]> {
    if (this.down) throw new Error('Redis unreachable');
    return this.holdersOf.get(digest) ?? [];
  }

  notHeld(digest: Digest, peerId: string): void {
    this.dropped.push(`${peerId}:${digest}`);
    this.holdersOf.set(digest, (this.holdersOf.get(digest) ?? []).filter((p) => p.id !== peerId));
  }

  async lock(digest: Digest): Promise<FillLockResult> {
    if (this.down) return { kind: 'unavailable' };
    const owner = this.lockOwnerOf.get(digest);
    if (owner) return { kind: 'held', owner };
    this.lockOwnerOf.set(digest, { id: 'self', url: '' });
    return {
      kind: 'acquired',
      lock: {
        release: (cached) => {
          this.lockOwnerOf.delete(digest);
          this.released.push({ digest, cached });
        },
      },
    };
  }

  async lockOwner(digest: Digest): Promise<string | undefined> {
    return this.lockOwnerOf.get(digest)?.id;
  }
}

type PeerBehaviour = (digest: Digest, start: number) => Promise<PeerBlobResponse>;

/** Peers answering as each test says; every request is recorded. */
class FakePeers implements PeerBlobs {
  behaviours = new Map<string, PeerBehaviour>();
  calls: string[] = [];

  async get(peer: PeerRef, digest: Digest, _signal: AbortSignal, options: { start?: number }): Promise<PeerBlobResponse> {
    const start = options.start ?? 0;
    this.calls.push(start > 0 ? `${peer.id} from ${start}` : peer.id);
    const behaviour = this.behaviours.get(peer.id);
    if (!behaviour) throw new PeerError('PEER_UNREACHABLE', 'connection refused');
    return behaviour(digest, start);
  }
}

function serving(blob: Buffer): PeerBehaviour {
  return async (_digest, start) => ({ size: blob.byteLength, offset: start, body: Readable.from([blob.subarray(start)]), mediaType: undefined });
}

async function drain(source: BlobSource): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let position = 0;
  try {
    for (;;) {
      const buffer = Buffer.allocUnsafe(256 * 1024);
      const n = await source.read(buffer, position, buffer.length);
      if (n === 0) break;
      position += n;
      chunks.push(buffer.subarray(0, n));
    }
    await source.settled?.(); // the last byte comes once verified; the cache entry once durable
  } finally {
    await source.close();
  }
  return Buffer.concat(chunks);
}

describe('PeerFillOrigin', () => {
  let dir: string;
  let store: DiskBlobStore;
  let upstream: FakeUpstream;
  let directory: FakeDirectory;
  let peers: FakePeers;
  let results: PeerFillResult[];
  let peerBytes: number;
  let lockWaits: number;
  let service: BlobService;
  let linked: boolean;
  const target = () => ({ upstream, upstreamKey: 'registry.test', name: 'library/app' });
  const signal = () => new AbortController().signal;
  const a: PeerRef = { id: 'a', url: 'http://a' };
  const b: PeerRef = { id: 'b', url: 'http://b' };

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'outpost-peer-'));
    store = new DiskBlobStore(cacheLayout(dir));
    await store.init();
    upstream = new FakeUpstream();
    directory = new FakeDirectory();
    peers = new FakePeers();
    results = [];
    peerBytes = 0;
    lockWaits = 0;
    const observer: CacheObserver = {
      ...noopObserver,
      peerFill: (result) => results.push(result),
      peerBytes: (n) => {
        peerBytes += n;
      },
      fillLockWait: () => {
        lockWaits += 1;
      },
    };
    const origin = new PeerFillOrigin({ directory, peers, observer, logger: silent, peerStartMs: 1_000, peerIdleMs: 1_000, followStartMs: 5_000, lockCheckMs: 20 });
    linked = true;
    service = new BlobService({
      links: { has: async () => linked, add: everyBlobLinked.add },
      store,
      coordinator: new MemoryFillCoordinator(),
      observer,
      index: noopIndexReporter,
      logger: silent,
      stallTimeoutMs: 5_000,
      cacheable: () => true,
      origin,
    });
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('fills from a replica that holds the blob and never asks the primary', async () => {
    const blob = randomBytes(900_000);
    const digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    directory.holdersOf.set(digest, [a]);
    peers.behaviours.set('a', serving(blob));
    expect((await drain(await service.open(target(), digest, signal()))).equals(blob)).toBe(true);
    expect(upstream.count('GET blob')).toBe(0);
    expect(await store.stat(digest)).toEqual({ size: blob.length });
    expect(results).toEqual(['ok']);
    expect(peerBytes).toBe(blob.length);
    expect(directory.released).toEqual([]);
  });

  it('asks the primary (HEAD) before serving peer bytes under a repository that does not link the blob', async () => {
    const blob = randomBytes(300_000);
    const digest = digestOf(blob);
    directory.holdersOf.set(digest, [a]);
    peers.behaviours.set('a', serving(blob));
    linked = false;
    // The primary does not have it under this repository: refused, whatever a peer holds.
    await expect(service.open(target(), digest, signal())).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
    expect(upstream.count('HEAD blob')).toBe(1);
    // The primary has it: served, and the bytes still came from the peer.
    upstream.blobs.set(digest, blob);
    expect((await drain(await service.open(target(), digest, signal()))).equals(blob)).toBe(true);
    expect(upstream.count('HEAD blob')).toBe(2);
    expect(upstream.count('GET blob')).toBe(0);
  });

  it('skips a holder that answers 404 (dropping its hint) and fetches from the primary under the lock', async () => {
    const blob = randomBytes(300_000);
    const digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    directory.holdersOf.set(digest, [a]);
    peers.behaviours.set('a', async () => {
      throw new PeerError('PEER_NOT_FOUND', 'not here');
    });
    expect((await drain(await service.open(target(), digest, signal()))).equals(blob)).toBe(true);
    expect(upstream.count('GET blob')).toBe(1);
    expect(directory.dropped).toEqual([`a:${digest}`]);
    expect(results).toEqual(['not_found']);
    expect(directory.released).toEqual([{ digest, cached: true }]);
  });

  it('follows the fill of the replica holding the lock instead of asking the primary', async () => {
    const blob = randomBytes(400_000);
    const digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    directory.lockOwnerOf.set(digest, b);
    peers.behaviours.set('b', serving(blob));
    expect((await drain(await service.open(target(), digest, signal()))).equals(blob)).toBe(true);
    expect(upstream.count('GET blob')).toBe(0);
    expect(lockWaits).toBe(1);
    expect(peers.calls).toEqual(['b']);
  });

  it('resumes from another holder at the byte where a peer broke off, and the client sees one correct body', async () => {
    const blob = randomBytes(1024 * 1024);
    const digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    directory.holdersOf.set(digest, [a, b]);
    const half = 400_000;
    const breaking: PeerBehaviour = async () => {
      const body = new PassThrough();
      body.write(blob.subarray(0, half));
      setTimeout(() => body.destroy(new Error('socket hang up')), 20);
      return { size: blob.byteLength, offset: 0, body, mediaType: undefined };
    };
    // Whichever is asked first breaks off; the other then serves the rest from where it stopped.
    let first = true;
    const either: PeerBehaviour = async (d, start) => {
      if (first) {
        first = false;
        return breaking(d, start);
      }
      return serving(blob)(d, start);
    };
    peers.behaviours.set('a', either);
    peers.behaviours.set('b', either);
    expect((await drain(await service.open(target(), digest, signal()))).equals(blob)).toBe(true);
    expect(peers.calls[1]).toMatch(new RegExp(` from ${half}$`));
    expect(upstream.count('GET blob')).toBe(0);
    expect(results).toEqual(['broken', 'ok']);
  });

  it('resumes from the primary with a Range when no other replica can serve the rest', async () => {
    const blob = randomBytes(800_000);
    const digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    directory.holdersOf.set(digest, [a]);
    peers.behaviours.set('a', async () => {
      // 300,000 bytes, then the connection breaks once they were taken (not on a timer:
      // a timer could fire before they are read, and the unread rest would be lost).
      let sent = false;
      const body = new Readable({
        read() {
          if (sent) this.destroy(new Error('ECONNRESET'));
          else {
            sent = true;
            this.push(blob.subarray(0, 300_000));
          }
        },
      });
      return { size: blob.byteLength, offset: 0, body, mediaType: undefined };
    });
    expect((await drain(await service.open(target(), digest, signal()))).equals(blob)).toBe(true);
    expect(upstream.calls.filter((c) => c.startsWith('GET blob'))).toEqual([`GET blob ${digest} from 300000`]);
    expect(await store.stat(digest)).toEqual({ size: blob.length });
  });

  it('never completes a body from a lying peer: drops its hint, and the next request is served by the primary', async () => {
    const blob = randomBytes(500_000);
    const digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    directory.holdersOf.set(digest, [a]);
    const lie = Buffer.from(blob);
    lie[1000] = lie[1000]! ^ 0xff;
    peers.behaviours.set('a', serving(lie));
    const first = await drain(await service.open(target(), digest, signal())).catch((err: unknown) => err);
    if (Buffer.isBuffer(first)) expect(first.equals(blob)).toBe(true); // never a complete wrong body
    expect(directory.dropped).toEqual([`a:${digest}`]);
    expect(results).toContain('mismatch');
    expect((await drain(await service.open(target(), digest, signal()))).equals(blob)).toBe(true);
    expect(upstream.count('GET blob')).toBeGreaterThanOrEqual(1);
    expect(await store.stat(digest)).toEqual({ size: blob.length });
  });

  it('asks the primary at once when the shared state does not answer', async () => {
    const blob = randomBytes(200_000);
    const digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    directory.down = true;
    const started = Date.now();
    expect((await drain(await service.open(target(), digest, signal()))).equals(blob)).toBe(true);
    expect(Date.now() - started).toBeLessThan(500);
    expect(upstream.count('GET blob')).toBe(1);
    expect(peers.calls).toEqual([]);
  });

  it('serves a peer from disk or from a fill in progress, and never fills for it', async () => {
    const blob = randomBytes(300_000);
    const digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    await expect(service.openForPeer(digest, signal())).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
    expect(upstream.count('GET blob')).toBe(0);
    const body = new PassThrough();
    upstream.blobBody = () => ({ size: blob.byteLength, body });
    const client = await service.open(target(), digest, signal());
    const forPeer = service.openForPeer(digest, signal());
    body.end(blob);
    const [mine, theirs] = await Promise.all([drain(client), forPeer.then(drain)]);
    expect(mine.equals(blob) && theirs.equals(blob)).toBe(true);
    const later = await service.openForPeer(digest, signal());
    expect(later.seekable).toBe(true);
    expect((await drain(later)).equals(blob)).toBe(true);
    expect(upstream.count('GET blob')).toBe(1);
  });
});
