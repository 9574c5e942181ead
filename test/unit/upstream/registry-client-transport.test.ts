import { describe, expect, it } from 'vitest';
import type { Upstream } from '../../../src/cache/ports.ts';
import { createRegistryClient } from '../../../src/upstream/registry-client.ts';
import { closedPort, instantRetry, json, rejection, sendManifest, startRawServer, testConfig, useTestServers } from './helpers.ts';

const never = new AbortController().signal;
const BLOB = 'sha256:' + 'ab'.repeat(32);

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('registry client transport', () => {
  const { cleanup, server } = useTestServers();
  function client(...args: Parameters<typeof createRegistryClient>): Upstream {
    const c = createRegistryClient(...args);
    cleanup.push(() => c.close());
    return c;
  }

  describe('redirects', () => {
    it('follows a redirect to another origin without sending Authorization', async () => {
      const cdn = await server((_req, res) => {
        res.writeHead(200, { 'content-length': '5' });
        res.end('bytes');
      });
      const registry = await server((req, res) => {
        if (req.headers.authorization === undefined) {
          res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' });
          return res.end();
        }
        res.writeHead(307, { location: `${cdn.url}/blobs/abc?sig=1` });
        res.end();
      });
      const upstream = client(testConfig(registry.url, { username: 'u', password: 'p' }), {});
      const blob = await upstream.getBlob('library/nginx', BLOB, never);
      expect(blob.size).toBe(5);
      expect((await readAll(blob.body)).toString()).toBe('bytes');
      expect(registry.requests.at(-1)!.headers.authorization).toMatch(/^Basic /);
      expect(cdn.requests).toHaveLength(1);
      expect(cdn.requests[0]!.url).toBe('/blobs/abc?sig=1');
      expect(cdn.requests[0]!.headers.authorization).toBeUndefined();
    });

    it('keeps Authorization on a same-origin redirect', async () => {
      const registry = await server((req, res) => {
        if (req.headers.authorization === undefined) {
          res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' });
          return res.end();
        }
        if (req.url!.startsWith('/v2/')) {
          res.writeHead(302, { location: '/storage/blob' });
          return res.end();
        }
        res.writeHead(200, { 'content-length': '2' });
        res.end('ok');
      });
      const upstream = client(testConfig(registry.url, { username: 'u', password: 'p' }), {});
      const blob = await upstream.getBlob('library/nginx', BLOB, never);
      await readAll(blob.body);
      const storage = registry.requests.find((r) => r.url === '/storage/blob');
      expect(storage?.headers.authorization).toMatch(/^Basic /);
    });

    it('gives up after 5 hops with UPSTREAM_BAD_RESPONSE', async () => {
      const registry = await server((req, res) => {
        res.writeHead(301, { location: `/loop${req.url!.length}` });
        res.end();
      });
      const upstream = client(testConfig(registry.url), {});
      const err = await rejection(upstream.getBlob('a/b', BLOB, never));
      expect(err.code).toBe('UPSTREAM_BAD_RESPONSE');
      expect(registry.requests).toHaveLength(6);
    });
  });

  describe('retries', () => {
    it('retries a 503 and then succeeds', async () => {
      let n = 0;
      const registry = await server((_req, res) => {
        if (++n < 3) return json(res, 503, { errors: [] });
        sendManifest(res);
      });
      const { sleeps, retry } = instantRetry();
      const upstream = client(testConfig(registry.url, { retries: 3 }), { retry });
      await upstream.getManifest('a/b', 'latest', 1 << 20, never);
      expect(registry.requests).toHaveLength(3);
      expect(sleeps).toHaveLength(2);
    });

    it('does not retry a 404', async () => {
      const registry = await server((_req, res) => json(res, 404, { errors: [{ code: 'MANIFEST_UNKNOWN' }] }));
      const upstream = client(testConfig(registry.url, { retries: 3 }), { retry: instantRetry().retry });
      const err = await rejection(upstream.getManifest('a/b', 'latest', 1 << 20, never));
      expect(err.code).toBe('UPSTREAM_NOT_FOUND');
      expect(registry.requests).toHaveLength(1);
    });

    it('gives up after the configured retries', async () => {
      const registry = await server((_req, res) => json(res, 502, {}));
      const upstream = client(testConfig(registry.url, { retries: 2 }), { retry: instantRetry().retry });
      const err = await rejection(upstream.headBlob('a/b', BLOB, never));
      expect(err.code).toBe('UPSTREAM_SERVER_ERROR');
      expect(err.status).toBe(502);
      expect(registry.requests).toHaveLength(3);
    });

    it('retries a connection closed before the headers', async () => {
      let n = 0;
      const registry = await server((req, res) => {
        if (++n === 1) return req.socket.destroy();
        sendManifest(res);
      });
      const upstream = client(testConfig(registry.url, { retries: 1 }), { retry: instantRetry().retry });
      await upstream.getManifest('a/b', 'latest', 1 << 20, never);
      expect(registry.requests).toHaveLength(2);
    });

    it('honours Retry-After on 429 and reports it when retries run out', async () => {
      const registry = await server((_req, res) => json(res, 429, {}, { 'retry-after': '2' }));
      const { sleeps, retry } = instantRetry();
      const upstream = client(testConfig(registry.url, { retries: 1 }), { retry });
      const err = await rejection(upstream.listTags('a/b', never));
      expect(err.code).toBe('UPSTREAM_RATE_LIMITED');
      expect(err.retryAfter).toBe(2);
      expect(sleeps).toEqual([2000]);
    });
  });

  describe('sizes from a lying primary', () => {
    const BEYOND_EXACT = '9007199254740993'; // 2^53 + 1: a Number cannot hold it

    it('refuses a Content-Length too large to count exactly', async () => {
      const registry = await server((_req, res) => {
        res.writeHead(200, { 'content-length': BEYOND_EXACT });
        res.end();
      });
      const upstream = client(testConfig(registry.url), {});
      expect((await rejection(upstream.headBlob('a/b', BLOB, never))).code).toBe('UPSTREAM_BAD_RESPONSE');
      expect((await rejection(upstream.headManifest('a/b', 'latest', never))).code).toBe('UPSTREAM_BAD_RESPONSE');
    });

    it.each(['-5', 'abc', '0x10'])('answers UPSTREAM_BAD_RESPONSE, not UNREACHABLE, for Content-Length %s', async (length) => {
      const registry = await startRawServer(`HTTP/1.1 200 OK\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`);
      cleanup.push(() => registry.close());
      const upstream = client(testConfig(registry.url), {});
      expect((await rejection(upstream.headBlob('a/b', BLOB, never))).code).toBe('UPSTREAM_BAD_RESPONSE');
      expect((await rejection(upstream.getBlob('a/b', BLOB, never))).code).toBe('UPSTREAM_BAD_RESPONSE');
    });

    it.each([
      ['a total too large to count exactly', `bytes 10-19/${BEYOND_EXACT}`, '10'],
      ['an end before its start', 'bytes 10-5/100', '10'],
      ['an end past the total', 'bytes 10-19/15', '10'],
      ['a length other than its Content-Length', 'bytes 10-19/100', '5'],
    ])('refuses a 206 whose Content-Range has %s', async (_what, range, length) => {
      const registry = await server((_req, res) => {
        res.writeHead(206, { 'content-range': range, 'content-length': length });
        res.end(Buffer.alloc(Number(length)));
      });
      const err = await rejection(client(testConfig(registry.url), {}).getBlob('a/b', BLOB, never, { start: 10 }));
      expect(err.code).toBe('UPSTREAM_BAD_RESPONSE');
    });

    it('accepts a well-formed 206', async () => {
      const registry = await server((_req, res) => {
        res.writeHead(206, { 'content-range': 'bytes 10-19/20', 'content-length': '10' });
        res.end(Buffer.alloc(10));
      });
      const blob = await client(testConfig(registry.url), {}).getBlob('a/b', BLOB, never, { start: 10 });
      expect([blob.offset, blob.size, (await readAll(blob.body)).length]).toEqual([10, 20, 10]);
    });
  });

  describe('failures', () => {
    it('maps connection refused to UPSTREAM_UNREACHABLE', async () => {
      const port = await closedPort();
      const upstream = client(testConfig(`http://127.0.0.1:${port}`, { retries: 2 }), { retry: instantRetry().retry });
      const err = await rejection(upstream.getManifest('a/b', 'latest', 1 << 20, never));
      expect(err.code).toBe('UPSTREAM_UNREACHABLE');
    });

    it('times out a primary that accepts and never answers, within about the headers timeout', async () => {
      const registry = await server(() => {
        // never answers
      });
      const upstream = client(testConfig(registry.url, { headersTimeoutMs: 300 }), {});
      const started = performance.now();
      const err = await rejection(upstream.headManifest('a/b', 'latest', never));
      const elapsed = performance.now() - started;
      expect(err.code).toBe('UPSTREAM_TIMEOUT');
      // undici runs headers/body timeouts on its coarse "fast timers" (~0.5s
      // ticks), so 300ms fires somewhere between 300ms and about 1.5s.
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(3000);
    });

    it('surfaces a stalled blob body as an error on the stream', async () => {
      const registry = await server((_req, res) => {
        res.writeHead(200, { 'content-length': '1000' });
        res.write(Buffer.alloc(10)); // then nothing
      });
      const upstream = client(testConfig(registry.url, { bodyIdleTimeoutMs: 300 }), {});
      const blob = await upstream.getBlob('a/b', BLOB, never);
      expect(blob.size).toBe(1000);
      const err = await rejection(readAll(blob.body));
      expect(err.code).toBe('UND_ERR_BODY_TIMEOUT');
    });

    it('maps the caller aborting to UPSTREAM_ABORTED and a caller deadline to UPSTREAM_TIMEOUT', async () => {
      const registry = await server(() => {
        // never answers
      });
      const upstream = client(testConfig(registry.url, { retries: 3 }), { retry: instantRetry().retry });
      const ac = new AbortController();
      const pending = rejection(upstream.getManifest('a/b', 'latest', 1 << 20, ac.signal));
      ac.abort();
      expect((await pending).code).toBe('UPSTREAM_ABORTED');
      const err = await rejection(upstream.getManifest('a/b', 'latest', 1 << 20, AbortSignal.timeout(100)));
      expect(err.code).toBe('UPSTREAM_TIMEOUT');
    });
  });
});
