/**
 * Blobs that cannot be cached, shared across the workers of a host: while
 * the worker streaming one through still holds its first byte, the fill's
 * state says `streaming` with that worker's sibling endpoint, and readers in
 * the other workers join the same transfer there instead of asking the
 * primary again. Two BlobServices stand for two workers: one fill
 * coordinator (the cluster primary's), and a sibling client that reaches
 * the other service's peer side in-process, the way the loopback endpoint
 * does (a broken transfer is an error on the body).
 */
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { beforeEach, describe, expect, it } from 'vitest';
import type { BlobSource } from '../../../src/cache/blob-source.ts';
import { BlobService, type BlobServiceOptions } from '../../../src/cache/blob-service.ts';
import { noopIndexReporter, noopObserver, PeerError, type BlobStore, type PeerBlobs } from '../../../src/cache/ports.ts';
import { MemoryFillCoordinator } from '../../../src/coordination/memory-fill-coordinator.ts';
import { PeerClient } from '../../../src/coordination/peer-client.ts';
import { digestOf, type Digest } from '../../../src/registry/digest.ts';
import { FakeUpstream, heldBlobBody } from '../../support/fake-upstream.ts';
import { ipcCoordinatorPair } from '../../support/ipc-pair.ts';
import { everyBlobLinked } from '../../support/memory-cache-ports.ts';
import { type Handler, useTestServers } from '../upstream/helpers.ts';

const silent = { debug() {}, info() {}, warn() {}, error() {} };
const KiB = 1024;
const signal = (): AbortSignal => new AbortController().signal;

/** Nothing is ever cached: every blob streams through. */
const noDisk: BlobStore = {
  stat: async () => undefined,
  open: async () => undefined,
  put: async () => undefined,
  remove: async () => undefined,
  beginIngest: () => Promise.reject(new Error('not cacheable')),
  openPartial: async () => undefined,
  discardPartial: async () => undefined,
  sweep: async () => ({ partials: 0, bytes: 0 }),
} as unknown as BlobStore;

/** A worker's BlobService that caches nothing, with its sibling endpoint at `siblings.url()`. */
function uncachingWorker(coordinator: BlobServiceOptions['coordinator'], siblings: NonNullable<BlobServiceOptions['siblings']>, overrides: Partial<BlobServiceOptions> = {}): BlobService {
  return new BlobService({
    links: everyBlobLinked,
    store: noDisk,
    coordinator,
    observer: noopObserver,
    index: noopIndexReporter,
    logger: silent,
    stallTimeoutMs: 5_000,
    cacheable: () => false,
    siblings,
    ...overrides,
  });
}

/** Reads a source to its end, the way HTTP sends it; `pauseAfter` stops after that many bytes until `resume()`. */
function reader(source: BlobSource) {
  let position = 0;
  const received: Buffer[] = [];
  const read = async (): Promise<number> => {
    const buffer = Buffer.allocUnsafe(16 * KiB);
    const n = await source.read(buffer, position, buffer.length);
    position += n;
    if (n > 0) received.push(Buffer.from(buffer.subarray(0, n)));
    return n;
  };
  return {
    get position() {
      return position;
    },
    async readAtLeast(bytes: number): Promise<void> {
      while (position < bytes) if ((await read()) === 0) throw new Error('ended early');
    },
    async rest(): Promise<Buffer> {
      try {
        while ((await read()) > 0);
      } finally {
        await source.close();
      }
      return Buffer.concat(received);
    },
  };
}

/** Sibling workers reached in-process: a request to `url` is answered by that service's peer side. */
function siblingNetwork() {
  const workers = new Map<string, BlobService>();
  const requests: string[] = [];
  const client: PeerBlobs = {
    async get(peer, digest, requestSignal) {
      requests.push(peer.url);
      const sibling = workers.get(peer.url);
      if (!sibling) throw new PeerError('PEER_UNREACHABLE', `nothing listens at ${peer.url}`);
      let source: BlobSource;
      try {
        source = await sibling.openForPeer(digest as Digest, requestSignal);
      } catch (err) {
        throw new PeerError('PEER_NOT_FOUND', 'the sibling does not have it', { cause: err });
      }
      const body = Readable.from(
        (async function* () {
          let position = 0;
          try {
            for (;;) {
              const buffer = Buffer.allocUnsafe(16 * KiB);
              // A send that fails mid-body is a cut connection on the other side, whatever the cause.
              const n = await source.read(buffer, position, buffer.length).catch(() => Promise.reject(new Error('other side closed')));
              if (n === 0) return;
              position += n;
              yield buffer.subarray(0, n);
            }
          } finally {
            await source.close();
          }
        })(),
        { objectMode: false, highWaterMark: 16 * KiB },
      );
      return { size: source.size, offset: 0, body, mediaType: undefined };
    },
  };
  return { workers, requests, client };
}

describe('a blob streamed through uncached, across the workers of a host', () => {
  let upstream: FakeUpstream;
  let coordinator: MemoryFillCoordinator;
  let network: ReturnType<typeof siblingNetwork>;
  const target = () => ({ upstream, upstreamKey: 'registry.test', name: 'library/app' });

  beforeEach(() => {
    upstream = new FakeUpstream();
    coordinator = new MemoryFillCoordinator();
    network = siblingNetwork();
  });

  /** The primary's answer for `blob`: a body the test writes (`send` a stretch of the blob in 16 KiB pieces, then `end`). */
  function primaryBody(blob: Buffer) {
    const body = Object.assign(new PassThrough(), {
      send(from: number, to: number): void {
        for (let at = from; at < to; at += 16 * KiB) body.write(blob.subarray(at, Math.min(at + 16 * KiB, to)));
      },
    });
    upstream.blobBody = () => ({ size: blob.length, body });
    return body;
  }

  /** A worker reachable at `url` by the others. */
  function worker(url: string, overrides: Partial<BlobServiceOptions> = {}): BlobService {
    const service = uncachingWorker(coordinator, { client: network.client, url: () => url, startTimeoutMs: 1_000 }, overrides);
    network.workers.set(url, service);
    return service;
  }

  it.each([
    ['one process', () => [coordinator, coordinator]],
    ['the cluster primary, over IPC', () => ipcCoordinatorPair(2).coordinators],
  ])('is fetched from the primary once for concurrent readers in two workers, every body correct (fills coordinated in %s)', async (_, coordinators) => {
    const blob = randomBytes(1024 * KiB + 5);
    const digest = digestOf(blob);
    const body = primaryBody(blob);
    const [forA, forB] = coordinators();
    const a = worker('sibling://a', { coordinator: forA });
    const b = worker('sibling://b', { coordinator: forB });
    const first = await a.open(target(), digest, signal());
    const sources = [first, ...(await Promise.all([a.open(target(), digest, signal()), b.open(target(), digest, signal()), b.open(target(), digest, signal())]))];
    expect(sources.map((s) => s.result)).toEqual(['passthrough', 'coalesced', 'coalesced', 'coalesced']);
    expect(sources.map((s) => s.size)).toEqual([blob.length, blob.length, blob.length, blob.length]);
    // Worker b's readers joined worker a's transfer at its sibling endpoint.
    expect(network.requests).toEqual(['sibling://a', 'sibling://a']);
    const bodies = Promise.all(sources.map((s) => reader(s).rest()));
    body.send(0, blob.length);
    body.end();
    for (const got of await bodies) expect(got.equals(blob)).toBe(true);
    expect(upstream.count('GET blob')).toBe(1);
  });

  it('stops offering the transfer once its first byte is gone: a later reader elsewhere fetches its own', async () => {
    const blob = randomBytes(512 * KiB);
    const digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    const body = primaryBody(blob);
    const a = worker('sibling://a', { fanOut: { windowBytes: 64 * KiB } });
    const b = worker('sibling://b');
    const early = reader(await a.open(target(), digest, signal()));
    expect(coordinator.followSync(digest)?.state()).toEqual({ status: 'streaming', size: blob.length, url: 'sibling://a' });
    body.send(0, 256 * KiB);
    await early.readAtLeast(200 * KiB);
    // The window (64 KiB) no longer holds byte 0: nobody else can join, and the host's fill is over.
    expect(coordinator.followSync(digest)).toBeUndefined();
    upstream.blobBody = undefined;
    const late = await b.open(target(), digest, signal());
    expect(late.result).toBe('passthrough');
    expect((await reader(late).rest()).equals(blob)).toBe(true);
    body.end(blob.subarray(256 * KiB));
    expect((await early.rest()).equals(blob)).toBe(true);
    expect(network.requests).toEqual([]);
    expect(upstream.count('GET blob')).toBe(2);
  });

  it('continues a reader the sibling cut off (a window behind) from the primary with a Range, verified', async () => {
    const blob = randomBytes(1024 * KiB);
    const digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    // The primary's body in 16 KiB chunks, held after the first 32 KiB.
    const held = heldBlobBody(blob, 32 * KiB, 16 * KiB);
    upstream.blobBody = held.body;
    const a = worker('sibling://a', { fanOut: { windowBytes: 64 * KiB, laggardGraceMs: 50 } });
    const b = worker('sibling://b');
    const fast = reader(await a.open(target(), digest, signal()));
    const slow = reader(await b.open(target(), digest, signal()));
    expect(slow.position).toBe(0);
    await slow.readAtLeast(16 * KiB);
    await fast.readAtLeast(16 * KiB);
    held.release();
    expect((await fast.rest()).equals(blob)).toBe(true);
    expect((await slow.rest()).equals(blob)).toBe(true);
    const [whole, from = 0, ...more] = upstream.blobGetStarts(digest);
    expect([whole, more]).toEqual([0, []]);
    expect(from).toBeGreaterThanOrEqual(16 * KiB);
    expect(from).toBeLessThan(blob.length);
  });

  it('cuts off the readers in both workers before the last byte when the primary lies', async () => {
    const blob = randomBytes(300 * KiB);
    const digest = digestOf(blob);
    const wrong = Buffer.from(blob);
    wrong[blob.length - 10]! ^= 0xff;
    // The same wrong bytes for the sibling's transfer and for any resume from the primary.
    upstream.blobs.set(digest, wrong);
    const body = primaryBody(blob);
    const a = worker('sibling://a');
    const b = worker('sibling://b');
    const sources = [await a.open(target(), digest, signal()), await b.open(target(), digest, signal())];
    const reads = sources.map((source) => {
      const r = reader(source);
      return r.rest().then(
        () => ({ failed: false, position: r.position }),
        (err: unknown) => ({ failed: true, code: (err as { code?: string }).code, position: r.position }),
      );
    });
    body.end(wrong);
    for (const outcome of await Promise.all(reads)) {
      expect(outcome).toMatchObject({ failed: true, code: 'UPSTREAM_UNAVAILABLE' });
      expect(outcome.position).toBeLessThan(blob.length);
    }
  });

  it('fetches from the primary when the sibling cannot be reached', async () => {
    const blob = randomBytes(256 * KiB);
    const digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    const body = primaryBody(blob);
    // Worker a streams, but nothing answers at the address it gave.
    const a = worker('sibling://a');
    network.workers.delete('sibling://a');
    const b = worker('sibling://b');
    const first = await a.open(target(), digest, signal());
    upstream.blobBody = undefined;
    const other = await b.open(target(), digest, signal());
    expect(network.requests).toEqual(['sibling://a']);
    const bodies = Promise.all([reader(first).rest(), reader(other).rest()]);
    body.end(blob);
    for (const got of await bodies) expect(got.equals(blob)).toBe(true);
    expect(upstream.count('GET blob')).toBe(2);
  });

  it('relays to a peer a stream another worker runs, from that worker, never from the primary', async () => {
    const blob = randomBytes(512 * KiB);
    const digest = digestOf(blob);
    const body = primaryBody(blob);
    const a = worker('sibling://a');
    const b = worker('sibling://b');
    const own = reader(await a.open(target(), digest, signal()));
    // A peer's HEAD gets the size on either worker, as its GET gets the bytes.
    expect(await a.statForPeer(digest)).toEqual({ size: blob.length });
    expect(await b.statForPeer(digest)).toEqual({ size: blob.length });
    // A peer replica's request that landed on worker b.
    const relayed = reader(await b.openForPeer(digest, signal()));
    expect(network.requests).toEqual(['sibling://a']);
    const bodies = Promise.all([own.rest(), relayed.rest()]);
    body.send(0, blob.length);
    body.end();
    for (const got of await bodies) expect(got.equals(blob)).toBe(true);
    expect(upstream.count('GET blob')).toBe(1);
  });

  it('serves a peer only while it still holds the first byte, and never asks the primary for it', async () => {
    const blob = randomBytes(512 * KiB);
    const digest = digestOf(blob);
    const body = primaryBody(blob);
    const a = worker('sibling://a', { fanOut: { windowBytes: 64 * KiB } });
    const own = reader(await a.open(target(), digest, signal()));
    const peer = reader(await a.openForPeer(digest, signal()));
    body.send(0, 256 * KiB);
    await Promise.all([own.readAtLeast(128 * KiB), peer.readAtLeast(128 * KiB)]);
    await expect(a.openForPeer(digest, signal())).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
    const bodies = Promise.all([own.rest(), peer.rest()]);
    body.end(blob.subarray(256 * KiB));
    for (const got of await bodies) expect(got.equals(blob)).toBe(true);
    expect(upstream.count('GET blob')).toBe(1);
  });
});

/**
 * The sibling endpoint is a loopback HTTP server of another process: here a
 * test server in its place, which hangs, lies about the size or sends wrong
 * bytes, read by the real PeerClient. Worker a streams the blob (its
 * primary holds the body, so the first byte stays joinable) and announces
 * the test server as its sibling endpoint; worker b's reader goes there.
 */
describe('a sibling endpoint that hangs or lies', () => {
  const servers = useTestServers();
  const clients: PeerClient[] = [];
  let upstream: FakeUpstream;
  let coordinator: MemoryFillCoordinator;
  const target = () => ({ upstream, upstreamKey: 'registry.test', name: 'library/app' });

  beforeEach(() => {
    upstream = new FakeUpstream();
    coordinator = new MemoryFillCoordinator();
    servers.cleanup.push(async () => {
      for (const client of clients.splice(0)) await client.close();
    });
  });

  const worker = (url: string, client: PeerClient, startTimeoutMs: number): BlobService => uncachingWorker(coordinator, { client, url: () => url, startTimeoutMs });

  /**
   * Worker b's reader of `blob` while worker a streams it and `sibling`
   * answers at a's endpoint; resolves with how b's read ended, then lets
   * a's transfer finish (correctly). The timeouts are long unless a test
   * waits for one (a busy machine must not turn a prompt sibling into a
   * silent one).
   */
  async function readThroughSibling(blob: Buffer, sibling: Handler, { startMs = 5_000, idleMs = 5_000 } = {}) {
    const digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    const held = new PassThrough();
    upstream.blobBody = () => ({ size: blob.length, body: held });
    const server = await servers.server(sibling);
    const client = new PeerClient({ nodeId: 'test', secret: 'x'.repeat(32), connectTimeoutMs: 5_000, bodyIdleTimeoutMs: idleMs, clock: { now: () => Date.now() } });
    clients.push(client);
    const a = worker(server.url, client, startMs);
    const b = worker('http://127.0.0.1:1', client, startMs);
    const own = reader(await a.open(target(), digest, signal()));
    upstream.blobBody = undefined;
    const other = reader(await b.open(target(), digest, signal()));
    const outcome = await other.rest().then(
      (body) => ({ body, position: other.position }),
      (err: unknown) => ({ code: (err as { code?: string }).code, position: other.position }),
    );
    held.end(blob);
    expect((await own.rest()).equals(blob)).toBe(true);
    return { outcome, siblingRequests: server.requests.length, primaryGets: upstream.blobGetStarts(digest) };
  }

  it('hangs mid-body: the reader continues from the primary with a Range once the sibling is idle too long', async () => {
    const blob = randomBytes(256 * KiB);
    const { outcome, siblingRequests, primaryGets } = await readThroughSibling(blob, (_req, res) => {
      res.writeHead(200, { 'content-length': String(blob.length) });
      res.write(blob.subarray(0, 64 * KiB)); // then nothing
    }, { idleMs: 200 });
    expect(siblingRequests).toBe(1);
    expect('body' in outcome && outcome.body.equals(blob)).toBe(true);
    // a's whole GET, then b's rest from where the sibling stopped.
    expect(primaryGets).toEqual([0, 64 * KiB]);
  });

  it('never answers: the reader fetches the blob from the primary after the start timeout', async () => {
    const blob = randomBytes(128 * KiB);
    const { outcome, siblingRequests, primaryGets } = await readThroughSibling(blob, () => {}, { startMs: 300 });
    expect(siblingRequests).toBe(1);
    expect('body' in outcome && outcome.body.equals(blob)).toBe(true);
    expect(primaryGets).toEqual([0, 0]);
  });

  it('ends short of the size it announced: the rest comes from the primary', async () => {
    const blob = randomBytes(256 * KiB);
    const { outcome, primaryGets } = await readThroughSibling(blob, (_req, res) => {
      res.writeHead(200, { 'content-length': String(100 * KiB) });
      res.end(blob.subarray(0, 100 * KiB));
    });
    expect('body' in outcome && outcome.body.equals(blob)).toBe(true);
    expect(primaryGets).toEqual([0, 100 * KiB]);
  });

  it('sends more than the size announced: the reader is cut off, never given the extra bytes', async () => {
    const blob = randomBytes(256 * KiB);
    const longer = Buffer.concat([blob, randomBytes(16 * KiB)]);
    const { outcome } = await readThroughSibling(blob, (_req, res) => {
      res.writeHead(200, { 'content-length': String(longer.length) });
      res.end(longer);
    });
    expect(outcome).toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
    expect(outcome.position).toBeLessThan(blob.length);
  });

  it('sends wrong bytes of the right size: the reader is cut off before its last byte', async () => {
    const blob = randomBytes(256 * KiB);
    const wrong = Buffer.from(blob);
    wrong[100 * KiB]! ^= 0xff;
    const { outcome, primaryGets } = await readThroughSibling(blob, (_req, res) => {
      res.writeHead(200, { 'content-length': String(wrong.length) });
      res.end(wrong);
    });
    expect(outcome).toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
    expect(outcome.position).toBeLessThan(blob.length);
    expect(primaryGets).toEqual([0]);
  });
});
