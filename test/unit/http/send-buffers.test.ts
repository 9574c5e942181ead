import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { BlobSource } from '../../../src/cache/blob-source.ts';
import { defaultChunkBytes, SendBufferPool, sendBufferPool } from '../../../src/http/send-buffers.ts';
import { sendBlobRange } from '../../../src/http/send.ts';
import { waitFor } from '../../support/wait.ts';

const MiB = 1024 * 1024;
const options = { chunkBytes: MiB, maxBytes: 4 * MiB, fallbackChunkBytes: 128 * 1024, minBodyBytes: 4 * MiB };

describe('send buffer pool', () => {
  it('lends 1 MiB chunks for a big verified file and takes them back for the next response', () => {
    const pool = new SendBufferPool(options);
    const a = pool.take(64 * MiB);
    expect(a.chunkBytes).toBe(MiB);
    expect(a.slots).toBe(2); // the next read in flight while the socket takes a chunk
    const lent = [a.buffer(0), a.buffer(1)];
    expect(lent.map((b) => b.length)).toEqual([MiB, MiB]);
    expect(a.buffer(0)).toBe(lent[0]); // the same buffer every time it is asked for
    expect(pool.lentBytes).toBe(2 * MiB);
    a.release();
    a.release(); // twice is harmless
    expect(pool.lentBytes).toBe(0);
    expect(pool.idleBytes).toBe(2 * MiB);
    const b = pool.take(64 * MiB);
    expect(new Set([b.buffer(0), b.buffer(1)])).toEqual(new Set(lent));
    expect(pool.idleBytes).toBe(0);
  });

  it('allocates nothing for a response that never asks for its buffers (it sends views of a fill)', () => {
    const pool = new SendBufferPool(options);
    const views = pool.take(64 * MiB);
    expect(pool.lentBytes).toBe(2 * MiB); // its bound still counts
    views.release();
    expect(pool.lentBytes).toBe(0);
    expect(pool.idleBytes).toBe(0);
  });

  it('gives small buffers of their own to responses beyond its bound, so memory stays bounded', () => {
    const pool = new SendBufferPool(options);
    const held = [pool.take(64 * MiB), pool.take(64 * MiB)];
    for (const h of held) [h.buffer(0), h.buffer(1)];
    expect(pool.lentBytes).toBe(4 * MiB);
    const over = pool.take(64 * MiB);
    expect(over.chunkBytes).toBe(128 * 1024);
    expect(over.slots).toBe(1); // one buffer: read, write, read again
    expect(over.buffer(0)).toBe(over.buffer(0));
    expect(pool.lentBytes).toBe(4 * MiB);
    over.release();
    expect(pool.idleBytes).toBe(0);
    for (const h of held) h.release();
    expect(pool.idleBytes).toBe(4 * MiB);
  });

  it('lends to a big fill of known size as to a file, and gives the many beyond the bound 128 KiB buffers', () => {
    const pool = new SendBufferPool(options);
    const fills = [pool.take(64 * MiB), pool.take(64 * MiB)];
    expect(fills.map((f) => f.chunkBytes)).toEqual([MiB, MiB]);
    expect(pool.lentBytes).toBe(4 * MiB);
    expect(pool.take(64 * MiB).chunkBytes).toBe(128 * 1024);
    for (const f of fills) f.release();
    expect(pool.lentBytes).toBe(0);
  });

  it('keeps the default chunks for unknown lengths and small bodies', () => {
    const pool = new SendBufferPool(options);
    expect(pool.take(undefined)).toMatchObject({ chunkBytes: defaultChunkBytes, slots: 2 });
    expect(pool.take(MiB).chunkBytes).toBe(defaultChunkBytes);
    expect(pool.take(4 * MiB - 1).chunkBytes).toBe(defaultChunkBytes);
    expect(pool.lentBytes).toBe(0);
  });
});

function fileSource(bytes: Buffer, options: { failAt?: number } = {}): BlobSource & { closed: boolean } {
  const source = {
    size: bytes.length,
    result: 'hit' as const,
    seekable: true,
    closed: false,
    async read(buffer: Buffer, position: number, length: number): Promise<number> {
      if (options.failAt !== undefined && position >= options.failAt) throw new Error('disk read failed');
      return bytes.copy(buffer, 0, position, Math.min(position + length, bytes.length));
    },
    async close(): Promise<void> {
      source.closed = true;
    },
  };
  return source;
}

describe('sending a big verified file through the pool', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  async function serve(source: BlobSource, start: number, end: number): Promise<{ url: string; done: Promise<unknown> }> {
    let finish: (v: unknown) => void = () => undefined;
    const done = new Promise((resolve) => (finish = resolve));
    server = createServer((_req, res) => {
      res.writeHead(200, { 'content-length': end - start + 1 });
      sendBlobRange(res, source, start, end).then(
        () => finish('ok'),
        (err: Error) => finish(err),
      );
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, done };
  }

  it('sends every byte of a range in 1 MiB chunks and gives the buffers back', async () => {
    const bytes = randomBytes(9 * MiB + 12345);
    const source = fileSource(bytes);
    const start = 77;
    const end = bytes.length - 5;
    const { url, done } = await serve(source, start, end);
    const res = await fetch(url);
    const body = Buffer.from(await res.arrayBuffer());
    expect(await done).toBe('ok');
    expect(createHash('sha256').update(body).digest('hex')).toBe(createHash('sha256').update(bytes.subarray(start, end + 1)).digest('hex'));
    expect(source.closed).toBe(true);
    expect(sendBufferPool.lentBytes).toBe(0);
    expect(sendBufferPool.idleBytes).toBeGreaterThanOrEqual(2 * MiB);
  });

  it('never reads into a buffer a write still holds, and holds one chunk at a time, with the pool exhausted and a source mixing views and reads', async () => {
    const held: ReturnType<typeof sendBufferPool.take>[] = [];
    for (let lease = sendBufferPool.take(64 * MiB); lease.chunkBytes === MiB; lease = sendBufferPool.take(64 * MiB)) held.push(lease);
    try {
      const bytes = randomBytes(5 * MiB + 999); // big enough for the pool (4 MiB), which is exhausted
      const source = fileSource(bytes);
      // Views for every other 384 KiB stretch (three chunks), reads for the rest: views and buffer writes interleave.
      Object.assign(source, {
        async readViews(position: number, length: number): Promise<Buffer[] | undefined> {
          return Math.floor(position / (384 * 1024)) % 2 === 0 ? [bytes.subarray(position, Math.min(position + length, bytes.length))] : undefined;
        },
      });
      // A socket that takes every write, and says so a moment later (the kernel's buffer is full).
      const sent: Buffer[] = [];
      let changedInFlight = 0;
      let inFlight = 0;
      let mostInFlight = 0;
      const res = {
        writableFinished: false,
        write(chunk: Buffer, done?: (err?: Error | null) => void): boolean {
          const copy = Buffer.from(chunk);
          sent.push(copy);
          inFlight += 1;
          mostInFlight = Math.max(mostInFlight, inFlight);
          setTimeout(() => {
            inFlight -= 1;
            if (!chunk.equals(copy)) changedInFlight += 1;
            done?.(null);
          }, 2);
          return false;
        },
        cork: () => undefined,
        uncork: () => undefined,
        once: () => res,
        off: () => res,
        end: () => {
          res.writableFinished = true;
        },
        destroy: () => undefined,
      };
      await sendBlobRange(res as unknown as Parameters<typeof sendBlobRange>[0], source, 0, bytes.length - 1);
      await waitFor(() => inFlight === 0, { what: 'the last write to be taken' });
      expect(changedInFlight).toBe(0);
      expect(mostInFlight).toBe(1); // beyond the pool, one chunk per response waits for the socket
      expect(Buffer.concat(sent).equals(bytes)).toBe(true);
    } finally {
      for (const lease of held) lease.release();
    }
  });

  it('sends the views a source offers as they are, and reads into buffers only where it offers none', async () => {
    const bytes = randomBytes(6 * MiB + 999);
    const source = fileSource(bytes);
    const handedOut: Buffer[] = [];
    let copies = 0;
    const read = source.read.bind(source);
    // Views of 64 KiB pieces for the first 4 MiB, then nothing: the rest goes through read().
    Object.assign(source, {
      async readViews(position: number, length: number): Promise<Buffer[] | undefined> {
        if (position >= 4 * MiB) return undefined;
        const views: Buffer[] = [];
        for (let at = position; at < Math.min(position + length, 4 * MiB); at += 64 * 1024) views.push(bytes.subarray(at, Math.min(at + 64 * 1024, position + length, 4 * MiB)));
        handedOut.push(...views);
        return views;
      },
      async read(buffer: Buffer, position: number, length: number): Promise<number> {
        copies += 1;
        return read(buffer, position, length);
      },
    });
    const idleBefore = sendBufferPool.idleBytes;
    const { url, done } = await serve(source, 0, bytes.length - 1);
    const body = Buffer.from(await (await fetch(url)).arrayBuffer());
    expect(await done).toBe('ok');
    expect(body.equals(bytes)).toBe(true);
    expect(handedOut.reduce((n, v) => n + v.length, 0)).toBe(4 * MiB);
    expect(handedOut.every((v) => v.buffer === bytes.buffer)).toBe(true); // shared, never copied
    expect(copies).toBeGreaterThan(0);
    expect(sendBufferPool.lentBytes).toBe(0);
    expect(sendBufferPool.idleBytes).toBeGreaterThanOrEqual(idleBefore);
  });

  it('gives the buffers back when the read fails and the client gets a cut body', async () => {
    const bytes = randomBytes(8 * MiB);
    const source = fileSource(bytes, { failAt: 3 * MiB });
    const { url, done } = await serve(source, 0, bytes.length - 1);
    const res = await fetch(url);
    await expect(res.arrayBuffer()).rejects.toThrow();
    expect(await done).toBeInstanceOf(Error);
    expect(sendBufferPool.lentBytes).toBe(0);
  });

  it('gives the buffers back when the client goes away mid-body', async () => {
    const bytes = randomBytes(64 * MiB);
    const source = fileSource(bytes);
    const { url, done } = await serve(source, 0, bytes.length - 1);
    const abort = new AbortController();
    const res = await fetch(url, { signal: abort.signal });
    const reader = res.body!.getReader();
    await reader.read();
    abort.abort();
    expect(await done).toBeInstanceOf(Error);
    await waitFor(() => sendBufferPool.lentBytes === 0, { what: 'the pool to have its buffers back' });
    expect(source.closed).toBe(true);
  });
});
