import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobSource } from '../../../src/cache/blob-source.ts';
import { BlobService } from '../../../src/cache/blob-service.ts';
import { noopIndexReporter, noopObserver, type FillCoordinator } from '../../../src/cache/ports.ts';
import { MemoryFillCoordinator } from '../../../src/coordination/memory-fill-coordinator.ts';
import { digestOf } from '../../../src/registry/digest.ts';
import { DiskBlobStore } from '../../../src/storage/disk-blob-store.ts';
import { cacheLayout } from '../../../src/storage/layout.ts';
import { FakeUpstream } from '../../support/fake-upstream.ts';
import { everyBlobLinked } from '../../support/memory-cache-ports.ts';
import { ipcCoordinatorPair } from '../../support/ipc-pair.ts';

const silent = { debug() {}, info() {}, warn() {}, error() {} };

/** Reads a source in order, the way HTTP sends it. */
async function* chunksOf(source: BlobSource): AsyncGenerator<Buffer> {
  let position = 0;
  for (;;) {
    const buffer = Buffer.allocUnsafe(256 * 1024);
    const n = await source.read(buffer, position, buffer.length);
    if (n === 0) return;
    position += n;
    yield buffer.subarray(0, n);
  }
}

async function drain(source: BlobSource): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of chunksOf(source)) chunks.push(chunk);
  } finally {
    await source.close();
  }
  return Buffer.concat(chunks);
}

const coordinators: [string, () => { coordinators: FillCoordinator[]; close: () => void }][] = [
  ['memory', () => { const c = new MemoryFillCoordinator(); return { coordinators: [c, c], close: () => undefined }; }],
  ['ipc (two workers through the primary broker)', () => ipcCoordinatorPair(2)],
];

describe.each(coordinators)('BlobService with the %s coordinator', (_name, makeCoordinators) => {
  let dir: string;
  let store: DiskBlobStore;
  let upstream: FakeUpstream;
  let services: BlobService[];
  let closeCoordinators: () => void;
  const target = () => ({ upstream, upstreamKey: 'registry.test', name: 'library/app' });

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'outpost-blob-'));
    store = new DiskBlobStore(cacheLayout(dir));
    await store.init();
    upstream = new FakeUpstream();
    const made = makeCoordinators();
    closeCoordinators = made.close;
    services = made.coordinators.map(
      (coordinator) =>
        new BlobService({ links: everyBlobLinked, store, coordinator, observer: noopObserver, index: noopIndexReporter, logger: silent, stallTimeoutMs: 5_000, cacheable: () => true }),
    );
  });

  afterEach(async () => {
    closeCoordinators();
    await rm(dir, { recursive: true, force: true });
  });

  it('fetches a blob once for many concurrent requests and serves it from disk afterwards', async () => {
    const blob = randomBytes(3 * 1024 * 1024 + 17);
    const digest = digestOf(blob);
    upstream.blobs.set(digest, blob);
    const sources = await Promise.all(Array.from({ length: 12 }, (_, i) => services[i % services.length]!.open(target(), digest, new AbortController().signal)));
    const bodies = await Promise.all(sources.map(drain));
    for (const body of bodies) expect(body.equals(blob)).toBe(true);
    expect(upstream.count('GET blob')).toBe(1);
    expect(sources.filter((s) => s.result === 'miss')).toHaveLength(1);
    const again = await services[0]!.open(target(), digest, new AbortController().signal);
    expect(again.result).toBe('hit');
    expect(again.seekable).toBe(true);
    expect((await drain(again)).equals(blob)).toBe(true);
    expect(upstream.count('GET blob')).toBe(1);
  });

  it('gives followers bytes while the fill is still running', async () => {
    const blob = randomBytes(1024 * 1024);
    const digest = digestOf(blob);
    const body = new PassThrough();
    upstream.blobBody = () => ({ size: blob.byteLength, body });
    const leader = await services[0]!.open(target(), digest, new AbortController().signal);
    const follower = await services[1]!.open(target(), digest, new AbortController().signal);
    expect(follower.result).toBe('coalesced');
    body.write(blob.subarray(0, 4096));
    const iterator = chunksOf(follower);
    const first = await iterator.next();
    expect(first.done).toBe(false);
    expect(Buffer.from(first.value as Buffer).equals(blob.subarray(0, (first.value as Buffer).length))).toBe(true);
    body.end(blob.subarray(4096));
    const rest: Buffer[] = [first.value as Buffer];
    for (;;) {
      const next = await iterator.next();
      if (next.done) break;
      rest.push(next.value as Buffer);
    }
    expect(Buffer.concat(rest).equals(blob)).toBe(true);
    expect((await drain(leader)).equals(blob)).toBe(true);
  });

  it('caches nothing and fails every reader when the bytes do not match the digest', async () => {
    const blob = randomBytes(200_000);
    const digest = digestOf(blob);
    const wrong = Buffer.from(blob);
    wrong[wrong.length - 1] = (wrong[wrong.length - 1] ?? 0) ^ 0xff;
    upstream.blobs.set(digest, wrong);
    const sources = await Promise.all([0, 1, 2].map((i) => services[i % services.length]!.open(target(), digest, new AbortController().signal)));
    for (const source of sources) {
      let received = 0;
      const reading = (async () => {
        for await (const chunk of chunksOf(source)) received += chunk.length;
      })();
      await expect(reading).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
      // The final byte is held back until verification, so no reader ever saw a complete body.
      expect(received).toBeLessThan(blob.length);
    }
    expect(await store.stat(digest)).toBeUndefined();
    expect(await readdir(path.join(dir, 'ingest'))).toEqual([]);
  });

  it('never hands out the last byte of a body that turns out truncated', async () => {
    const blob = randomBytes(100_000);
    const digest = digestOf(blob);
    const body = new PassThrough();
    upstream.blobBody = () => ({ size: blob.byteLength, body });
    const source = await services[0]!.open(target(), digest, new AbortController().signal);
    const received: Buffer[] = [];
    const reading = (async () => {
      for await (const chunk of chunksOf(source)) received.push(Buffer.from(chunk));
    })();
    body.write(blob.subarray(0, 60_000));
    body.destroy(new Error('connection reset'));
    await expect(reading).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
    expect(Buffer.concat(received).length).toBeLessThan(blob.length);
    expect(await store.stat(digest)).toBeUndefined();
  });

  it('finishes the fill when the only client goes away', async () => {
    const blob = randomBytes(500_000);
    const digest = digestOf(blob);
    const body = new PassThrough();
    upstream.blobBody = () => ({ size: blob.byteLength, body });
    const client = new AbortController();
    const source = await services[0]!.open(target(), digest, client.signal);
    client.abort();
    await source.close();
    body.end(blob);
    const deadline = Date.now() + 5_000;
    while (!(await store.stat(digest)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(await store.stat(digest)).toEqual({ size: blob.length });
  });

  it('reports BLOB_UNKNOWN to every waiter when the primary does not have the blob', async () => {
    const digest = digestOf(randomBytes(10));
    const results = await Promise.allSettled([0, 1].map((i) => services[i % services.length]!.open(target(), digest, new AbortController().signal)));
    for (const result of results) expect(result).toMatchObject({ status: 'rejected', reason: { code: 'BLOB_UNKNOWN' } });
  });
});
