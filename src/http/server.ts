/**
 * The HTTP front: one handler for the registry API and the operations
 * endpoints, with one access-log line and one metrics observation per
 * request. The handler is separate from listen() so tests drive it in-process.
 */
import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { readTlsPair } from '../config/tls-pair.ts';
import type { ClientLimits } from '../config/types.ts';
import type { WorkerMetrics } from '../observability/metrics.ts';
import { isRegistryError, RegistryError } from '../registry/errors.ts';
import type { AdminRoutes } from './admin-routes.ts';
import { clusterStatusPath, type ClusterRoutes } from './cluster-routes.ts';
import { opsRouteOf, type OpsRoutes } from './ops-routes.ts';
import { peerBlobsPath, peerRetentionPath, peerWarmPath, type PeerRoutes } from './peer-routes.ts';
import { isPrefetchJobsPath, type PrefetchJobRoutes } from './prefetch-job-routes.ts';
import { prefetchPath, type PrefetchRoutes } from './prefetch-routes.ts';
import type { RegistryRoutes, RequestNotes } from './registry-routes.ts';
import { sendError } from './send.ts';
import { isStatusPagePath, type StatusPageRoutes } from './status-page-routes.ts';
import type { PullEvent } from '../cluster/pull-activity.ts';
import { checkIntervalFor, SendWatchdog } from './send-watchdog.ts';

export interface HandlerDeps {
  registry: RegistryRoutes;
  ops: OpsRoutes;
  admin: AdminRoutes;
  /** `/api/v0/meta/cluster_status`. */
  cluster?: ClusterRoutes;
  /** `/api/v0/peer/blobs/<digest>` and `/api/v0/peer/warm`: other replicas of the set (and the node's own prefetch). */
  peer?: PeerRoutes;
  /** `/api/v0/prefetch/jobs[/<name>/run]`. */
  prefetchJobs?: PrefetchJobRoutes;
  /** `POST /api/v0/prefetch`: the ad-hoc warm (admin token). */
  prefetch?: PrefetchRoutes;
  /** `/`, `/status` and the status page's data and assets. */
  statusPage?: StatusPageRoutes;
  /** Told of every manifest or blob GET answered with content (the status page's pull activity). */
  onPull?: (event: PullEvent) => void;
  logger: Logger;
  metrics: WorkerMetrics;
  /** While draining, responses close their connection so keep-alive clients reconnect through the load balancer. */
  draining: () => boolean;
  /** The sibling endpoint (the host's other workers): `peer`'s blob routes only, everything else 404. */
  peerOnly?: boolean;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

const methodLabels = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);

export function createRequestHandler(deps: HandlerDeps): RequestHandler {
  const { logger } = deps;
  return (req, res) => {
    // Nothing a request does may take the worker down: what escapes is logged and answered 500 (or cut).
    res.on('error', (err) => logger.debug({ err: String(err?.message ?? err) }, 'response error'));
    try {
      handle(deps, req, res);
    } catch (err) {
      logger.error({ err }, 'request handler threw');
      respondWithError(deps, req, res, err);
    }
  };
}

function handle(deps: HandlerDeps, req: IncomingMessage, res: ServerResponse): void {
  const { registry, ops, logger, metrics } = deps;
  const started = performance.now();
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const isRegistry = path === '/v2' || path.startsWith('/v2/');
  const opsRoute = isRegistry ? undefined : opsRouteOf(path);
  const notes: RequestNotes = {};
  // The request's socket is detached (null) by the time some responses close: keep our own reference.
  const socket = req.socket;
  const socketBytesAtStart = socket.bytesWritten;
  if (deps.draining()) res.setHeader('connection', 'close');
  res.once('close', () => {
    try {
      const seconds = (performance.now() - started) / 1000;
      const route = notes.route ?? opsRoute ?? 'other';
      const method = methodLabels.has(req.method ?? '') ? (req.method as string) : 'OTHER';
      metrics.httpRequests.inc({ route, method, status: String(res.statusCode) });
      metrics.httpDuration.observe({ route }, seconds);
      if (opsRoute) return; // probes every second from every load balancer: counted, not logged
      const bytes = socket.bytesWritten - socketBytesAtStart;
      if (deps.onPull && req.method === 'GET' && res.statusCode < 400 && (route === 'manifest' || route === 'blob') && notes.repository !== undefined) {
        deps.onPull({
          kind: route,
          repository: notes.repository,
          reference: notes.reference ?? '',
          client: socket.remoteAddress ?? '',
          cache: notes.cache,
          user: notes.user,
          bytes,
        });
      }
      logger.info(
        {
          reqId: headerValue(req.headers['x-request-id']) ?? randomUUID(),
          method: req.method,
          route,
          repository: notes.repository,
          reference: notes.reference,
          user: notes.user,
          ns: notes.ns,
          upstream: notes.upstream,
          status: res.statusCode,
          code: notes.code,
          bytes,
          complete: res.writableFinished,
          durationMs: Math.round(seconds * 100_000) / 100,
          cache: notes.cache,
          upstreamMs: notes.upstreamMs === undefined ? undefined : Math.round(notes.upstreamMs * 100) / 100,
        },
        'request',
      );
    } catch (err) {
      logger.error({ err }, 'access log failed');
    }
  });
  const run = async (): Promise<void> => {
    if (deps.peerOnly) {
      if (!path.startsWith(peerBlobsPath) || !deps.peer) throw new RegistryError('NAME_UNKNOWN', 'the sibling endpoint serves peer blobs only');
      notes.route = 'peer';
      return deps.peer.handle(req, res, path);
    }
    if (isRegistry) {
      const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
      if (await registry.handle(req, res, path, query, notes)) return;
      throw new RegistryError('NAME_INVALID', 'no such registry route', { detail: { path: path.slice(0, 300) } });
    }
    if (opsRoute) return ops.handle(req, res, opsRoute);
    if (path === clusterStatusPath && deps.cluster) {
      notes.route = 'admin';
      return deps.cluster.handle(req, res);
    }
    if ((path.startsWith(peerBlobsPath) || path === peerWarmPath || path === peerRetentionPath) && deps.peer) {
      notes.route = 'peer';
      return deps.peer.handle(req, res, path);
    }
    if (deps.prefetchJobs && isPrefetchJobsPath(path)) {
      notes.route = 'admin';
      return deps.prefetchJobs.handle(req, res, path);
    }
    if (path === prefetchPath && deps.prefetch) {
      notes.route = 'admin';
      return deps.prefetch.handle(req, res);
    }
    if (path.startsWith('/api/v0/cache/')) {
      notes.route = 'admin';
      return deps.admin.handle(req, res, path, new URLSearchParams(q < 0 ? '' : url.slice(q + 1)));
    }
    if (deps.statusPage && isStatusPagePath(path)) {
      notes.route = 'admin';
      return deps.statusPage.handle(req, res, path);
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('not found\n');
  };
  run().catch((err: unknown) => {
    if (!(err instanceof RegistryError) && !isClientGone(err)) {
      logger.error({ err, route: notes.route, repository: notes.repository }, 'request failed');
    }
    if (!res.headersSent) notes.code = isRegistryError(err) ? err.code : 'UNKNOWN';
    respondWithError(deps, req, res, err);
  });
}

/** The OCI error answer (or a cut connection once headers are out); never throws. */
function respondWithError(deps: HandlerDeps, req: IncomingMessage, res: ServerResponse, err: unknown): void {
  try {
    sendError(req, res, err);
  } catch (sendErr) {
    deps.logger.error({ err: sendErr }, 'could not send an error response');
    res.destroy();
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return v && v.length <= 200 ? v : undefined;
}

function isClientGone(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNRESET' || code === 'ABORT_ERR' || code === 'EPIPE';
}

export interface ServerOptions extends ClientLimits {
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  logger: Logger;
}

/** Keep-alive connections idle longer than this are closed (above the 60 s of common load balancers). */
const keepAliveTimeoutMs = 65_000;
const dropLogEveryMs = 10_000;

/**
 * The HTTP(S) server with every client bounded: headers and whole requests
 * by Node's own timeouts (deadlines from the request's first byte, so a
 * slow drip of bytes does not extend them), responses by the send
 * watchdog, and connections by a cap (closed as they arrive past it).
 * Node's request timeout ends once the request has been received, so a
 * long download is never cut by it.
 */
export function createServer(handler: RequestHandler, options: ServerOptions): Server {
  const { logger } = options;
  const httpOptions = {
    headersTimeout: options.headersTimeoutMs,
    requestTimeout: options.bodyTimeoutMs,
    keepAliveTimeout: keepAliveTimeoutMs,
    // Node checks both timeouts on this period (30 s by default, too coarse for short timeouts).
    connectionsCheckingInterval: checkIntervalFor(Math.min(options.headersTimeoutMs, options.bodyTimeoutMs)),
  };
  const server =
    options.tlsCert && options.tlsKey
      ? createHttpsServer(
          // A TLS handshake gets the headers' time too (Node's default is 120 s).
          { ...httpOptions, handshakeTimeout: options.headersTimeoutMs, ...tlsPairOrThrow(options.tlsCert, options.tlsKey) },
          handler,
        )
      : createHttpServer(httpOptions, handler);
  const watchdog = new SendWatchdog({
    timeoutMs: options.sendTimeoutMs,
    onStall: (res, stalledMs) => {
      const req = res.req;
      logger.warn(
        { method: req?.method, path: req?.url?.split('?')[0]?.slice(0, 200), stalledMs: Math.round(stalledMs) },
        'client took no bytes within the send timeout; connection closed',
      );
    },
  });
  server.on('request', (_req: IncomingMessage, res: ServerResponse) => watchdog.watch(res));
  server.on('close', () => watchdog.stop());

  // Not server.maxConnections: in a cluster worker a refused connection goes back to the primary, which
  // hands it to a worker again at once, round and round, until one has room; the client just waits.
  let open = 0;
  let dropped = 0;
  let lastDropLog = -Infinity;
  server.on('connection', (socket: Socket) => {
    open += 1;
    socket.once('close', () => {
      open -= 1;
    });
    if (open <= options.maxConnectionsPerWorker) return;
    socket.destroy();
    dropped += 1;
    const now = performance.now();
    if (now - lastDropLog < dropLogEveryMs) return;
    lastDropLog = now;
    logger.warn({ dropped, maxConnectionsPerWorker: options.maxConnectionsPerWorker }, 'connection cap reached; closing new connections');
    dropped = 0;
  });
  return server;
}

/** The configured pair (checked at config load; checked again here, as the files may have changed since). */
function tlsPairOrThrow(certFile: string, keyFile: string): { cert: Buffer; key: Buffer } {
  const read = readTlsPair(certFile, keyFile);
  if (!read.ok) throw new Error(`${read.problem.key} (${read.problem.file}) ${read.problem.reason}`);
  return { cert: read.pair.cert, key: read.pair.key };
}
