/**
 * Fills that go wrong on this host rather than at the primary: a leader whose
 * store throws, a disk that turns read-only mid-fill, a leader worker that
 * dies, a primary that ignores Range when a reader resumes, a fill that
 * stalls. Every reader ends with the correct bytes or an error — never a
 * wait for the stall timeout, never a complete-looking wrong body, never an
 * unhandled rejection.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobService } from '../../../src/cache/blob-service.ts';
import type { BlobSource } from '../../../src/cache/blob-source.ts';
import {
  noopIndexReporter,
  noopObserver,
  type BlobIngest,
  type BlobStore,
  type Clock,
  type FillCoordinator,
  type FillRole,
} from '../../../src/cache/ports.ts';
import type { FillBroker } from '../../../src/coordination/fill-broker.ts';
import { MemoryFillCoordinator } from '../../../src/coordination/memory-fill-coordinator.ts';
import { digestOf, type Digest } from '../../../src/registry/digest.ts';
import { DiskBlobStore } from '../../../src/storage/disk-blob-store.ts';
import { cacheLayout } from '../../../src/storage/layout.ts';
import { FakeUpstream } from '../../support/fake-upstream.ts';
import { everyBlobLinked } from '../../support/memory-cache-ports.ts';
import { ipcCoordinatorPair } from '../../support/ipc-pair.ts';
import { waitFor } from '../../support/wait.ts';

const silent = { debug() {}, info() {}, warn() {}, error() {} };
const KiB = 1024;

/** Reads a source in order, the way HTTP sends it. */
async function* chunksOf(source: BlobSource): AsyncGenerator<Buffer> {
  let position = 0;
  for (;;) {
    const buffer = Buffer.allocUnsafe(256 * KiB);
    const n = await source.read(buffer, position, buffer.length);
    if (n === 0) return;
    position += n;
    yield buffer.subarray(0, n);
  }
}

/** A reader that records every byte it received, so a test can look at what a client got. */
function reader(source: BlobSource) {
  const received: Buffer[] = [];
  const chunks = chunksOf(source);
  return {
    received: () => Buffer.concat(received),
    /** Reads until at least `bytes` arrived. */
    async readAtLeast(bytes: number): Promise<void> {
      while (Buffer.concat(received).length < bytes) {
        const next = await chunks.next();
        if (next.done) throw new Error('ended early');
        received.push(Buffer.from(next.value));
      }
    },
    async rest(): Promise<Buffer> {
      try {
        for await (const chunk of chunks) received.push(Buffer.from(chunk));
      } finally {
        await source.close();
      }
      return Buffer.concat(received);
    },
  };
}

class ManualClock implements Clock {
  private t = 1_700_000_000_000;
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

/** A gate a fault waits at, so a test can line readers up before it fires. */
function gate() {
  let open: () => void = () => undefined;
  let reachedResolve: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => (open = resolve));
  const reached = new Promise<void>((resolve) => (reachedResolve = resolve));
  return { open, reached, wait: async () => (reachedResolve(), opened) };
}

interface Faults {
  /** Called with the 1-based number of each open(); a returned error is thrown after `before` resolves. */
  open?: (call: number) => { error: Error; before?: Promise<void> } | undefined;
  beginIngest?: () => { error: Error; before?: Promise<void> } | undefined;
  /** When it returns an error, ingest writes reject with it. */
  write?: () => Error | undefined;
  /** abort() rejects with this (after discarding the file). */
  abort?: Error;
}

function errno(code: string): Error {
  return Object.assign(new Error(`${code}: injected`), { code });
}

/** A DiskBlobStore with injected faults. */
function faultyStore(inner: DiskBlobStore, faults: Faults): BlobStore {
  let opens = 0;
  const ingestOf = (ingest: BlobIngest): BlobIngest => ({
    get partialPath() {
      return ingest.partialPath;
    },
    get bytesWritten() {
      return ingest.bytesWritten;
    },
    async write(chunk) {
      const error = faults.write?.();
      if (error) throw error;
      return ingest.write(chunk);
    },
    hashSoFar: () => ingest.hashSoFar(),
    commit: (onVerified) => ingest.commit(onVerified),
    async abort() {
      await ingest.abort();
      if (faults.abort) throw faults.abort;
    },
  });
  return {
    stat: (digest) => inner.stat(digest),
    async open(digest) {
      const fault = faults.open?.(++opens);
      if (fault) {
        await fault.before;
        throw fault.error;
      }
      return inner.open(digest);
    },
    put: (digest, data) => inner.put(digest, data),
    remove: (digest) => inner.remove(digest),
    async beginIngest(digest, size, onProgress) {
      const fault = faults.beginIngest?.();
      if (fault) {
        await fault.before;
        throw fault.error;
      }
      return ingestOf(await inner.beginIngest(digest, size, onProgress));
    },
    openPartial: (partialPath) => inner.openPartial(partialPath),
    discardPartial: (partialPath) => inner.discardPartial(partialPath),
    sweep: () => inner.sweep(),
  };
}

/** Records the role each acquire got, so a test knows a follower is in place. */
function recording(coordinator: FillCoordinator, roles: FillRole['role'][]): FillCoordinator {
  return {
    async acquire(digest) {
      const role = await coordinator.acquire(digest);
      roles.push(role.role);
      return role;
    },
    follow: (digest) => coordinator.follow(digest),
  };
}

const coordinators: [string, () => { coordinators: FillCoordinator[]; broker?: FillBroker }][] = [
  ['memory', () => { const c = new MemoryFillCoordinator(); return { coordinators: [c, c] }; }],
  ['ipc (two workers through the primary broker)', () => ipcCoordinatorPair(2)],
];

describe.each(coordinators)('fills that fail on this host, with the %s coordinator', (_name, makeCoordinators) => {
  let dir: string;
  let disk: DiskBlobStore;
  let upstream: FakeUpstream;
  let made: { coordinators: FillCoordinator[]; broker?: FillBroker };
  let roles: FillRole['role'][];
  let unhandled: unknown[];
  const trap = (reason: unknown): void => {
    unhandled.push(reason);
  };
  const target = () => ({ upstream, upstreamKey: 'registry.test', name: 'library/app' });
  const signal = () => new AbortController().signal;

  /** Worker `i`'s blob service, over its own view of the (shared) cache directory. */
  function service(i: number, options: { store?: BlobStore; clock?: Clock; stallTimeoutMs?: number } = {}): BlobService {
    return new BlobService({
      links: everyBlobLinked,
      store: options.store ?? disk,
      coordinator: recording(made.coordinators[i]!, roles),
      observer: noopObserver,
      index: noopIndexReporter,
      logger: silent,
      clock: options.clock,
      // Far longer than any test runs: a reader that waits for it has failed the test.
      stallTimeoutMs: options.stallTimeoutMs ?? 120_000,
      cacheable: () => true,
    });
  }

  /** The first blob GET answers with a body the test feeds by hand; later ones with the real blob. */
  function firstBodyByHand(blob: Buffer): PassThrough {
    const body = new PassThrough();
    let calls = 0;
    upstream.blobBody = () => (calls++ === 0 ? { size: blob.byteLength, body } : { size: blob.byteLength, body: Readable.from([blob]) });
    return body;
  }

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'outpost-fill-'));
    disk = new DiskBlobStore(cacheLayout(dir));
    await disk.init();
    upstream = new FakeUpstream();
    made = makeCoordinators();
    roles = [];
    unhandled = [];
    process.on('unhandledRejection', trap);
  });

  afterEach(async () => {
    process.off('unhandledRejection', trap);
    await rm(dir, { recursive: true, force: true });
  });

  it('lets followers take over at once when the leader’s store.open throws after it took the lease', async () => {
    const blob = randomBytes(700 * KiB);
    const digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    const fault = gate();
    // The first open() is the leader's cache check; the second, after it took the lease, throws.
    const leaderStore = faultyStore(disk, { open: (call) => (call === 2 ? { error: errno('EMFILE'), before: fault.wait() } : undefined) });
    const leader = service(0, { store: leaderStore });
    const follower = service(1);
    const started = Date.now();
    const leading = leader.open(target(), digest, signal());
    await fault.reached;
    const following = follower.open(target(), digest, signal());
    await waitFor(() => roles.length === 2, { what: 'a follower behind the leader', timeoutMs: 2_000, intervalMs: 1 });
    expect(roles).toEqual(['leader', 'follower']);
    fault.open();
    const [leaderResult, followerResult] = await Promise.allSettled([leading.then((s) => reader(s).rest()), following.then((s) => reader(s).rest())]);
    expect(followerResult).toMatchObject({ status: 'fulfilled' });
    expect((followerResult as PromiseFulfilledResult<Buffer>).value.equals(blob)).toBe(true);
    // The leader's own client is not left waiting either.
    if (leaderResult.status === 'fulfilled') expect(leaderResult.value.equals(blob)).toBe(true);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(await disk.stat(digest)).toEqual({ size: blob.length });
    expect(unhandled).toEqual([]);
  }, 10_000);

  it('lets followers take over at once when the leader’s beginIngest throws', async () => {
    const blob = randomBytes(500 * KiB);
    const digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    const fault = gate();
    let ingests = 0;
    const leaderStore = faultyStore(disk, { beginIngest: () => (++ingests === 1 ? { error: errno('EMFILE'), before: fault.wait() } : undefined) });
    const leader = service(0, { store: leaderStore });
    const follower = service(1);
    const leading = leader.open(target(), digest, signal());
    await fault.reached;
    const following = follower.open(target(), digest, signal());
    await waitFor(() => roles.length === 2, { what: 'a follower behind the leader', timeoutMs: 2_000, intervalMs: 1 });
    fault.open();
    const body = await reader(await following).rest();
    expect(body.equals(blob)).toBe(true);
    const own = await Promise.allSettled([leading.then((s) => reader(s).rest())]);
    if (own[0].status === 'fulfilled') expect(own[0].value.equals(blob)).toBe(true);
    expect(await disk.stat(digest)).toEqual({ size: blob.length });
    expect(unhandled).toEqual([]);
  }, 10_000);

  it('survives a disk that turns read-only mid-fill: readers finish from the primary, no unhandled rejection', async () => {
    const blob = randomBytes(600 * KiB);
    const digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    const body = firstBodyByHand(blob);
    let readOnly = false;
    const leaderStore = faultyStore(disk, { write: () => (readOnly ? errno('EROFS') : undefined), abort: errno('EROFS') });
    const leader = reader(await service(0, { store: leaderStore }).open(target(), digest, signal()));
    const following = service(1).open(target(), digest, signal());
    body.write(blob.subarray(0, 200 * KiB));
    const follower = reader(await following);
    await follower.readAtLeast(64 * KiB);
    readOnly = true;
    body.write(blob.subarray(200 * KiB, 300 * KiB));
    const [a, b] = await Promise.all([leader.rest(), follower.rest()]);
    expect(a.equals(blob)).toBe(true);
    expect(b.equals(blob)).toBe(true);
    body.destroy();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(unhandled).toEqual([]);
  }, 10_000);

  it('breaks the reader when a resume gets a 200 whose prefix differs from what the reader already sent', async () => {
    const blob = randomBytes(600 * KiB);
    const digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    upstream.ignoreRange = true;
    // The leader's primary first sends a wrong prefix (the fill would fail its digest check at the end) ...
    const wrongPrefix = Buffer.from(blob.subarray(0, 200 * KiB));
    for (let i = 0; i < wrongPrefix.length; i += 997) wrongPrefix[i] = wrongPrefix[i]! ^ 0xff;
    const body = firstBodyByHand(blob);
    let diskFull = false;
    const leaderStore = faultyStore(disk, { write: () => (diskFull ? errno('ENOSPC') : undefined) });
    const leader = reader(await service(0, { store: leaderStore }).open(target(), digest, signal()));
    const following = service(1).open(target(), digest, signal());
    body.write(wrongPrefix);
    const follower = reader(await following);
    await follower.readAtLeast(64 * KiB);
    // ... then the disk fills up: readers resume from the primary, which ignores Range and sends the right bytes from 0.
    diskFull = true;
    body.write(blob.subarray(200 * KiB, 300 * KiB));
    const results = await Promise.allSettled([leader.rest(), follower.rest()]);
    for (const result of results) expect(result.status).toBe('rejected');
    for (const got of [leader.received(), follower.received()]) {
      expect(got.length).toBeLessThan(blob.length);
    }
    expect(upstream.calls.some((call) => call.startsWith('GET blob') && call.includes(' from '))).toBe(true);
    body.destroy();
    expect(await disk.stat(digest)).toBeUndefined();
  }, 10_000);

  it('finishes a resume whose 200 starts with the same bytes the reader already sent', async () => {
    const blob = randomBytes(600 * KiB);
    const digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    upstream.ignoreRange = true;
    const body = firstBodyByHand(blob);
    let diskFull = false;
    const leaderStore = faultyStore(disk, { write: () => (diskFull ? errno('ENOSPC') : undefined) });
    const leader = reader(await service(0, { store: leaderStore }).open(target(), digest, signal()));
    const following = service(1).open(target(), digest, signal());
    body.write(blob.subarray(0, 200 * KiB));
    const follower = reader(await following);
    await follower.readAtLeast(64 * KiB);
    diskFull = true;
    body.write(blob.subarray(200 * KiB, 300 * KiB));
    const [a, b] = await Promise.all([leader.rest(), follower.rest()]);
    expect(a.equals(blob)).toBe(true);
    expect(b.equals(blob)).toBe(true);
    body.destroy();
  }, 10_000);

  it('gives up on a stalled fill after the stall timeout of the injected clock', async () => {
    const blob = randomBytes(400 * KiB);
    const digest = digestOf(blob);
    const body = firstBodyByHand(blob);
    const clock = new ManualClock();
    const source = await service(0, { clock, stallTimeoutMs: 60_000 }).open(target(), digest, signal());
    const client = reader(source);
    body.write(blob.subarray(0, 128 * KiB));
    await client.readAtLeast(128 * KiB);
    const rest = client.rest();
    // 60 s never pass in real time here: only the injected clock can end the wait.
    clock.advance(60_001);
    await expect(rest).rejects.toMatchObject({ code: 'UPSTREAM_TIMEOUT' });
    body.destroy();
  }, 5_000);
});

describe('a leader worker that dies mid-fill (two workers through the primary broker)', () => {
  let dir: string;
  let disk: DiskBlobStore;
  let upstream: FakeUpstream;
  const target = () => ({ upstream, upstreamKey: 'registry.test', name: 'library/app' });

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'outpost-fill-'));
    disk = new DiskBlobStore(cacheLayout(dir));
    await disk.init();
    upstream = new FakeUpstream();
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function setup() {
    const { coordinators, broker } = ipcCoordinatorPair(2, { discard: (partialPath) => disk.discardPartial(partialPath) });
    const services = coordinators.map(
      (coordinator) =>
        new BlobService({ links: everyBlobLinked, store: disk, coordinator, observer: noopObserver, index: noopIndexReporter, logger: silent, stallTimeoutMs: 120_000, cacheable: () => true }),
    );
    return { services, broker };
  }

  async function partials(): Promise<string[]> {
    return readdir(path.join(dir, 'ingest'));
  }

  it('lets the follower on the other worker take over and still get the whole, correct body', async () => {
    const blob = randomBytes(900 * KiB);
    const digest: Digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    const body = new PassThrough();
    let calls = 0;
    upstream.blobBody = () => (calls++ === 0 ? { size: blob.byteLength, body } : { size: blob.byteLength, body: Readable.from([blob]) });
    const { services, broker } = setup();
    const dying = await services[0]!.open(target(), digest, new AbortController().signal);
    const follower = reader(await services[1]!.open(target(), digest, new AbortController().signal));
    body.write(blob.subarray(0, 300 * KiB));
    await follower.readAtLeast(100 * KiB);
    const [leaderPartial] = await partials();
    expect(leaderPartial).toBeDefined();
    // Worker 1 is killed: the primary sees it exit.
    broker.peerGone(1);
    const got = await follower.rest();
    expect(got.equals(blob)).toBe(true);
    expect(await disk.stat(digest)).toEqual({ size: blob.length });
    // The dead worker's partial file went at once, not at the next restart.
    expect(await partials()).not.toContain(leaderPartial);
    body.destroy();
    await dying.close();
  }, 10_000);

  it('breaks the follower when the bytes it already sent turn out not to be the blob’s', async () => {
    const blob = randomBytes(900 * KiB);
    const digest: Digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    upstream.ignoreRange = true;
    const wrongPrefix = Buffer.from(blob.subarray(0, 300 * KiB));
    for (let i = 0; i < wrongPrefix.length; i += 1021) wrongPrefix[i] = wrongPrefix[i]! ^ 0xff;
    const body = new PassThrough();
    let calls = 0;
    upstream.blobBody = () => (calls++ === 0 ? { size: blob.byteLength, body } : { size: blob.byteLength, body: Readable.from([blob]) });
    const { services, broker } = setup();
    const dying = await services[0]!.open(target(), digest, new AbortController().signal);
    const follower = reader(await services[1]!.open(target(), digest, new AbortController().signal));
    body.write(wrongPrefix);
    await follower.readAtLeast(100 * KiB);
    broker.peerGone(1);
    await expect(follower.rest()).rejects.toBeDefined();
    expect(follower.received().length).toBeLessThan(blob.length);
    body.destroy();
    await dying.close();
  }, 10_000);
});
