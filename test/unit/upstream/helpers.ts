/**
 * Small in-process servers on 127.0.0.1 (port 0) for the upstream client
 * tests, and a config factory.
 */
import { afterEach } from 'vitest';
import { createServer as createHttpServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import type { UpstreamConfig } from '../../../src/config/types.ts';
import type { Clock } from '../../../src/cache/ports.ts';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

export interface TestServer {
  /** `http://127.0.0.1:<port>` (or https). */
  url: string;
  port: number;
  requests: SeenRequest[];
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, server: TestServer) => void;

export async function startServer(handler: Handler, tls?: { key: string; cert: string }): Promise<TestServer> {
  const requests: SeenRequest[] = [];
  let self: TestServer | undefined;
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    handler(req, res, self as TestServer);
  };
  const server: Server = tls === undefined ? createHttpServer(listener) : createHttpsServer(tls, listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  self = {
    url: `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    port,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return self;
}

/**
 * A lying primary below Node's http server, which refuses to send a malformed
 * response: every request (first line recorded; its headers are not) is
 * answered with `response` exactly as written, then the connection closes.
 */
export async function startRawServer(response: string): Promise<TestServer> {
  const requests: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.once('data', (chunk: Buffer) => {
      const [method = '', url = ''] = chunk.toString('latin1').split('\r\n', 1)[0]!.split(' ');
      requests.push({ method, url, headers: {} });
      socket.end(response);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A loopback port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createHttpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export function testConfig(url: string, overrides: Partial<UpstreamConfig> = {}): UpstreamConfig {
  return {
    url,
    username: undefined,
    password: undefined,
    caFile: undefined,
    insecure: false,
    connectTimeoutMs: 2_000,
    headersTimeoutMs: 5_000,
    bodyIdleTimeoutMs: 5_000,
    retries: 0,
    connections: 4,
    ...overrides,
  };
}

/** No real waiting between retries; the delays asked for are recorded. */
export function instantRetry(): { sleeps: number[]; retry: { sleep: (ms: number) => Promise<void>; random: () => number } } {
  const sleeps: number[] = [];
  return {
    sleeps,
    retry: {
      sleep: async (ms: number) => {
        sleeps.push(ms);
      },
      random: () => 0.5,
    },
  };
}

export class FakeClock implements Clock {
  constructor(private t = 1_700_000_000_000) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(bytes.length), ...headers });
  res.end(bytes);
}

export const MANIFEST = Buffer.from(
  JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: {}, layers: [] }),
);
export const MANIFEST_DIGEST = 'sha256:0000000000000000000000000000000000000000000000000000000000000001';

export function sendManifest(res: ServerResponse, body: Buffer = MANIFEST): void {
  res.writeHead(200, {
    'content-type': 'application/vnd.oci.image.manifest.v1+json; charset=utf-8',
    'content-length': String(body.length),
    'docker-content-digest': MANIFEST_DIGEST,
  });
  res.end(body);
}

/** Rejects with whatever `promise` rejects with (fails the test if it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string; status?: number; retryAfter?: number }> {
  try {
    await promise;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

/**
 * Call inside a describe: test servers started with `server(handler)`, and
 * whatever else a test pushes on `cleanup`, are closed after each test, in
 * reverse order.
 */
export function useTestServers(): { cleanup: (() => Promise<void>)[]; server: (handler: Handler) => Promise<TestServer> } {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });
  const server = async (handler: Handler): Promise<TestServer> => {
    const s = await startServer(handler);
    cleanup.push(() => s.close());
    return s;
  };
  return { cleanup, server };
}
