/**
 * The HTTP front: one handler for the registry API and the operations
 * endpoints, with one access-log line and one metrics observation per
 * request. The handler is separate from listen() so tests drive it in-process.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Logger } from 'pino';
import type { WorkerMetrics } from '../observability/metrics.ts';
import { requestContext, type RequestContext } from '../observability/request-context.ts';
import { RegistryError } from '../registry/errors.ts';
import type { AdminRoutes } from './admin-routes.ts';
import { clusterStatusPath, type ClusterRoutes } from './cluster-routes.ts';
import { opsRouteOf, type OpsRoutes } from './ops-routes.ts';
import type { RegistryRoutes, RequestNotes } from './registry-routes.ts';
import { sendError } from './send.ts';

export interface HandlerDeps {
  registry: RegistryRoutes;
  ops: OpsRoutes;
  admin: AdminRoutes;
  /** `/api/v0/meta/cluster_status`. */
  cluster?: ClusterRoutes;
  logger: Logger;
  metrics: WorkerMetrics;
  /** While draining, responses close their connection so keep-alive clients reconnect through the load balancer. */
  draining: () => boolean;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

const methodLabels = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);

export function createRequestHandler(deps: HandlerDeps): RequestHandler {
  const { registry, ops, logger, metrics } = deps;
  return (req, res) => {
    const started = performance.now();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const isRegistry = path === '/v2' || path.startsWith('/v2/');
    const opsRoute = isRegistry ? undefined : opsRouteOf(path);
    const notes: RequestNotes = {};
    const context: RequestContext = { upstreamMs: 0 };
    const socketBytesAtStart = req.socket.bytesWritten;
    if (deps.draining()) res.setHeader('connection', 'close');
    res.once('close', () => {
      const seconds = (performance.now() - started) / 1000;
      const route = notes.route ?? opsRoute ?? 'other';
      const method = methodLabels.has(req.method ?? '') ? (req.method as string) : 'OTHER';
      metrics.httpRequests.inc({ route, method, status: String(res.statusCode) });
      metrics.httpDuration.observe({ route }, seconds);
      if (opsRoute) return; // probes every second from every load balancer: counted, not logged
      logger.info(
        {
          reqId: headerValue(req.headers['x-request-id']) ?? randomUUID(),
          method: req.method,
          route,
          repository: notes.repository,
          reference: notes.reference,
          status: res.statusCode,
          bytes: req.socket.bytesWritten - socketBytesAtStart,
          complete: res.writableFinished,
          durationMs: Math.round(seconds * 100_000) / 100,
          cache: notes.cache,
          upstreamMs: context.upstreamMs > 0 ? Math.round(context.upstreamMs * 100) / 100 : undefined,
        },
        'request',
      );
    });
    const run = async (): Promise<void> => {
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
      if (path.startsWith('/api/v0/cache/')) {
        notes.route = 'admin';
        return deps.admin.handle(req, res, path, new URLSearchParams(q < 0 ? '' : url.slice(q + 1)));
      }
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('not found\n');
    };
    requestContext.run(context, () => {
      run().catch((err: unknown) => {
        if (!(err instanceof RegistryError) && !isClientGone(err)) {
          logger.error({ err, route: notes.route, repository: notes.repository }, 'request failed');
        }
        sendError(req, res, err);
      });
    });
  };
}

function headerValue(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return v && v.length <= 200 ? v : undefined;
}

function isClientGone(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNRESET' || code === 'ABORT_ERR' || code === 'EPIPE';
}

export interface ServerOptions {
  tlsCert: string | undefined;
  tlsKey: string | undefined;
}

export function createServer(handler: RequestHandler, options: ServerOptions): Server {
  const server =
    options.tlsCert && options.tlsKey
      ? createHttpsServer({ cert: readFileSync(options.tlsCert), key: readFileSync(options.tlsKey) }, handler)
      : createHttpServer(handler);
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 0; // big blobs take as long as they take; idle sockets are bounded by keepAliveTimeout
  return server;
}
