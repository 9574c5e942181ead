import { createServer, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { checkIntervalFor, SendWatchdog } from '../../../src/http/send-watchdog.ts';
import { waitFor } from '../../support/wait.ts';

/** A response stand-in with the counters the watchdog reads. */
function fakeResponse(state: { written: number; buffered: number; queued: number }) {
  const listeners = new Map<string, () => void>();
  const socket = {
    destroyed: false,
    get bytesWritten() {
      return state.written;
    },
    get writableLength() {
      return state.buffered;
    },
    _handle: {
      get writeQueueSize() {
        return state.queued;
      },
    },
    destroy() {
      socket.destroyed = true;
      listeners.get('close')?.();
      return socket;
    },
  };
  const res = {
    socket,
    get writableLength() {
      return state.buffered;
    },
    once(event: string, listener: () => void) {
      listeners.set(event, listener);
      return res;
    },
  };
  return { res: res as unknown as ServerResponse, socket };
}

describe('SendWatchdog', () => {
  let watchdog: SendWatchdog | undefined;
  afterEach(() => watchdog?.stop());

  it('cuts a response whose bytes have waited without progress for the timeout', () => {
    let now = 0;
    const stalls: number[] = [];
    watchdog = new SendWatchdog({ timeoutMs: 1_000, now: () => now, onStall: (_res, ms) => stalls.push(ms) });
    const { res, socket } = fakeResponse({ written: 4_000_000, buffered: 262_144, queued: 3_713 });
    watchdog.watch(res);
    now = 999;
    watchdog.check();
    expect(socket.destroyed).toBe(false);
    now = 1_000;
    watchdog.check();
    expect(socket.destroyed).toBe(true);
    expect(stalls).toEqual([1_000]);
    expect(watchdog.size).toBe(0);
  });

  it('keeps a slow client that takes some bytes', () => {
    let now = 0;
    watchdog = new SendWatchdog({ timeoutMs: 1_000, now: () => now });
    const state = { written: 4_000_000, buffered: 262_144, queued: 3_713 };
    const { res, socket } = fakeResponse(state);
    watchdog.watch(res);
    for (let i = 1; i <= 10; i++) {
      now = i * 900;
      state.queued -= 100; // the kernel took 100 bytes
      watchdog.check();
    }
    expect(socket.destroyed).toBe(false);
  });

  it('never cuts a response with nothing waiting to be sent (a fill waiting on the primary)', () => {
    let now = 0;
    watchdog = new SendWatchdog({ timeoutMs: 1_000, now: () => now });
    const { res, socket } = fakeResponse({ written: 10_000, buffered: 0, queued: 0 });
    watchdog.watch(res);
    for (let i = 1; i <= 10; i++) {
      now = i * 1_000;
      watchdog.check();
    }
    expect(socket.destroyed).toBe(false);
  });

  it('samples a quarter of the timeout, between 50 ms and 1 s', () => {
    expect(checkIntervalFor(60_000)).toBe(1_000);
    expect(checkIntervalFor(1_000)).toBe(250);
    expect(checkIntervalFor(100)).toBe(50);
  });

  it('closes a real connection whose client never reads, and finishes one that does', async () => {
    const size = 64 * 1024 * 1024;
    const chunk = Buffer.alloc(256 * 1024, 1);
    let stalls = 0;
    watchdog = new SendWatchdog({ timeoutMs: 1_000, onStall: () => (stalls += 1) });
    const server = createServer((_req, res) => {
      watchdog!.watch(res);
      res.writeHead(200, { 'content-length': size });
      let sent = 0;
      const pump = (): void => {
        while (sent < size) {
          sent += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const stuck = connect(port, '127.0.0.1', () => stuck.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      stuck.pause(); // never reads
      let stuckClosed = false;
      stuck.on('close', () => (stuckClosed = true));
      stuck.on('error', () => undefined);
      const reader = connect(port, '127.0.0.1', () => reader.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      let received = 0;
      reader.on('data', (data: Buffer) => (received += data.length));
      const readerDone = new Promise((resolve) => reader.on('close', resolve));
      await waitFor(() => stalls === 1, { what: 'the stalled response to be cut', timeoutMs: 5_000 });
      await readerDone;
      expect(received).toBeGreaterThan(size); // the whole body (and headers) reached the reading client
      expect(stalls).toBe(1);
      stuck.resume();
      await waitFor(() => stuckClosed, { what: 'the stuck client to see its connection closed', timeoutMs: 5_000 });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
