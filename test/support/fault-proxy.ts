import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { matchesFilter, pathOnly, requestKind, type RequestFilter, type RequestKind } from './request-kind.ts';

/**
 * A reverse proxy on 127.0.0.1 between the mirror under test and the real
 * registry, that injects failures on demand.
 *
 *   mirror ──▶ fault proxy ──▶ registry
 *
 * By default every request passes through untouched (streamed both ways,
 * headers preserved — Host, Location, WWW-Authenticate — nothing rewritten).
 * Faults are rules: `addFault(fault, { when, times })`; the first rule whose
 * `when` matches the request (and that has `times` left) decides; no match →
 * pass. Blob faults (`corruptBlob`, `truncateBlob`, `slowBlob`) only touch the
 * body of a 2xx GET /v2/<name>/blobs/<digest> response; other requests
 * matched by such a rule pass. `refuse()` / `restore()` close and re-open the
 * listening port itself.
 */

export type Fault =
  /** Forward untouched. */
  | { mode: 'pass' }
  /** Read the request, never answer (until `releaseHung()` or `stop()` drops the connection). */
  | { mode: 'hang' }
  /** Answer with this status without asking the registry (default body: an OCI error envelope). */
  | { mode: 'status'; status: number; headers?: Record<string, string>; body?: string }
  /** Flip bytes of blob bodies, keeping status and Content-Length. */
  | { mode: 'corruptBlob' }
  /** Send the real headers (real Content-Length) and half the blob body, then destroy the socket. */
  | { mode: 'truncateBlob' }
  /** Throttle blob bodies to `bytesPerSecond`. */
  | { mode: 'slowBlob'; bytesPerSecond: number };

export type FaultMode = Fault['mode'];

export interface ProxiedRequestInfo {
  method: string;
  uri: string;
  path: string;
  kind: RequestKind;
  headers: IncomingHttpHeaders;
}

/** Which requests a fault applies to: a filter (method / kind / pathIncludes) or a predicate. */
export type RequestMatcher = Omit<RequestFilter, 'status'> | ((request: ProxiedRequestInfo) => boolean);

export interface FaultRuleOptions {
  /** Default: every request. */
  when?: RequestMatcher;
  /** Apply to this many matching requests, then stop matching. Default: unlimited. */
  times?: number;
}

export interface ProxyRequestEntry {
  id: number;
  method: string;
  uri: string;
  path: string;
  kind: RequestKind;
  /** The fault applied (blob faults are recorded only when they changed a blob body). */
  fault: FaultMode;
  /** Status sent to the client; undefined while hung or before headers. */
  status: number | undefined;
  /** Response body bytes sent to the client so far. */
  bytesSent: number;
  /** The response finished normally. */
  completed: boolean;
  /** The connection was broken (by a fault, the client, or the registry). */
  aborted: boolean;
}

export interface FaultRule {
  /** Removes this rule. */
  remove(): void;
  /** How many requests this rule has been applied to. */
  applied(): number;
}

export interface FaultProxy {
  /** `http://127.0.0.1:PORT` — point the mirror's upstream here. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** The registry URL requests are forwarded to. */
  readonly target: string;
  /** Adds a rule after the existing ones. */
  addFault(fault: Fault, options?: FaultRuleOptions): FaultRule;
  /** Replaces every rule by this one. */
  setFault(fault: Fault, options?: FaultRuleOptions): FaultRule;
  /** Removes every rule: everything passes. */
  clearFaults(): void;
  /** Closes the listening socket and every open connection: new connections are refused. */
  refuse(): Promise<void>;
  /** Listens again on the same port after `refuse()`. */
  restore(): Promise<void>;
  /** Drops the connections of requests held by `hang`; returns how many. */
  releaseHung(): number;
  requests(filter?: RequestFilter): ProxyRequestEntry[];
  countRequests(filter?: RequestFilter): number;
  clearRequests(): void;
  stop(): Promise<void>;
}

interface Rule {
  fault: Fault;
  when: RequestMatcher | undefined;
  remaining: number;
  applied: number;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'te', 'trailer']);

function forwardHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

export async function startFaultProxy(options: { target: string; port?: number }): Promise<FaultProxy> {
  const target = new URL(options.target);
  if (target.protocol !== 'http:') throw new Error(`fault proxy forwards to http:// registries only (got ${options.target})`);
  // One registry connection per proxied request: nothing pooled survives a registry restart or refuse().
  const agent = new Agent({ keepAlive: false });
  let rules: Rule[] = [];
  let log: ProxyRequestEntry[] = [];
  let nextId = 1;
  const hung = new Set<ServerResponse>();
  const sockets = new Set<Socket>();

  const pick = (info: ProxiedRequestInfo): Fault => {
    for (const rule of rules) {
      if (rule.remaining <= 0) continue;
      const matches =
        rule.when === undefined ||
        (typeof rule.when === 'function' ? rule.when(info) : matchesFilter({ ...info, status: undefined }, rule.when));
      if (!matches) continue;
      rule.remaining -= 1;
      rule.applied += 1;
      return rule.fault;
    }
    return { mode: 'pass' };
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const uri = req.url ?? '/';
    const path = pathOnly(uri);
    const info: ProxiedRequestInfo = { method: req.method ?? 'GET', uri, path, kind: requestKind(path), headers: req.headers };
    const fault = pick(info);
    const entry: ProxyRequestEntry = {
      id: nextId++,
      method: info.method,
      uri,
      path,
      kind: info.kind,
      fault: fault.mode,
      status: undefined,
      bytesSent: 0,
      completed: false,
      aborted: false,
    };
    log.push(entry);
    res.on('close', () => {
      hung.delete(res);
      if (!res.writableFinished) entry.aborted = true;
    });
    res.on('finish', () => {
      entry.completed = true;
    });

    if (fault.mode === 'hang') {
      req.resume();
      hung.add(res);
      return;
    }
    if (fault.mode === 'status') {
      req.resume();
      const body =
        fault.body ??
        JSON.stringify({ errors: [{ code: fault.status === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE', message: `injected ${fault.status} by fault proxy`, detail: null }] });
      entry.status = fault.status;
      res.writeHead(fault.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...fault.headers });
      res.end(body);
      return;
    }

    const upstreamReq = httpRequest({
      protocol: 'http:',
      hostname: target.hostname,
      port: target.port,
      method: req.method,
      path: uri,
      headers: forwardHeaders(req.headers),
      agent,
    });
    req.pipe(upstreamReq);
    res.on('close', () => {
      if (!res.writableFinished) upstreamReq.destroy();
    });
    upstreamReq.on('error', (err) => {
      if (!res.headersSent) {
        const body = JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: `fault proxy: registry unreachable: ${err.message}`, detail: null }] });
        entry.status = 502;
        res.writeHead(502, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      } else {
        res.destroy();
      }
    });
    upstreamReq.on('response', (up) => {
      const status = up.statusCode ?? 502;
      const isBlobBody = info.method === 'GET' && info.kind === 'blob' && status >= 200 && status < 300;
      const bodyFault = isBlobBody ? fault : ({ mode: 'pass' } as const);
      if (!isBlobBody) entry.fault = 'pass';
      entry.status = status;
      res.writeHead(status, up.statusMessage, forwardHeaders(up.headers));
      sendBody(up, res, bodyFault, entry).catch(() => {
        res.destroy();
        up.destroy();
      });
    });
  };

  const server = createServer(handle);
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const listen = (port: number): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
  await listen(options.port ?? 0);
  const port = (server.address() as AddressInfo).port;
  let listening = true;

  const closeServer = async (): Promise<void> => {
    if (!listening) return;
    listening = false;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
  };

  const addFault = (fault: Fault, ruleOptions: FaultRuleOptions = {}): FaultRule => {
    const rule: Rule = { fault, when: ruleOptions.when, remaining: ruleOptions.times ?? Number.POSITIVE_INFINITY, applied: 0 };
    rules.push(rule);
    return {
      remove: () => {
        rules = rules.filter((r) => r !== rule);
      },
      applied: () => rule.applied,
    };
  };
  const visible = (filter: RequestFilter): ProxyRequestEntry[] =>
    log.filter((e) => matchesFilter(e, filter)).map((e) => ({ ...e }));

  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    target: target.origin,
    addFault,
    setFault(fault, ruleOptions) {
      rules = [];
      return addFault(fault, ruleOptions);
    },
    clearFaults() {
      rules = [];
    },
    refuse: closeServer,
    async restore() {
      if (listening) return;
      await listen(port);
      listening = true;
    },
    releaseHung() {
      const n = hung.size;
      for (const res of hung) res.destroy();
      hung.clear();
      return n;
    },
    requests: (filter = {}) => visible(filter),
    countRequests: (filter = {}) => visible(filter).length,
    clearRequests() {
      log = [];
    },
    async stop() {
      rules = [];
      for (const res of hung) res.destroy();
      hung.clear();
      await closeServer();
      agent.destroy();
    },
  };
}

/** Streams the registry's response body to the client, applying a blob fault. */
async function sendBody(up: IncomingMessage, res: ServerResponse, fault: Fault, entry: ProxyRequestEntry): Promise<void> {
  let flushed: Promise<void> = Promise.resolve();
  const write = async (chunk: Buffer): Promise<boolean> => {
    if (res.destroyed) return false;
    let ok = true;
    flushed = new Promise<void>((resolve) => {
      const onClose = (): void => resolve();
      res.once('close', onClose);
      ok = res.write(chunk, () => {
        res.off('close', onClose);
        resolve();
      });
    });
    entry.bytesSent += chunk.length;
    if (!ok) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
    }
    return !res.destroyed;
  };

  if (fault.mode === 'truncateBlob') {
    const length = Number(up.headers['content-length']);
    const limit = Number.isFinite(length) && length > 0 ? Math.floor(length / 2) : undefined;
    let sent = 0;
    for await (const raw of up) {
      const chunk = raw as Buffer;
      const room = limit === undefined ? chunk.length : Math.min(chunk.length, limit - sent);
      if (room > 0) {
        if (!(await write(chunk.subarray(0, room)))) break;
        sent += room;
      }
      if (limit === undefined || sent >= limit) break;
    }
    // Let the bytes written so far reach the client, then break the connection.
    await flushed;
    entry.aborted = true;
    res.destroy();
    up.destroy();
    return;
  }

  if (fault.mode === 'slowBlob') {
    const bps = Math.max(1, fault.bytesPerSecond);
    const slice = Math.max(1, Math.floor(bps / 20)); // ~20 writes per second
    for await (const raw of up) {
      const chunk = raw as Buffer;
      for (let off = 0; off < chunk.length; off += slice) {
        const piece = chunk.subarray(off, off + slice);
        await new Promise((resolve) => setTimeout(resolve, (piece.length / bps) * 1000));
        if (!(await write(piece))) {
          up.destroy();
          return;
        }
      }
    }
    res.end();
    return;
  }

  for await (const raw of up) {
    let chunk = raw as Buffer;
    if (fault.mode === 'corruptBlob' && chunk.length > 0) {
      chunk = Buffer.from(chunk);
      chunk[0] = chunk[0]! ^ 0xff;
    }
    if (!(await write(chunk))) {
      up.destroy();
      return;
    }
  }
  res.end();
}
