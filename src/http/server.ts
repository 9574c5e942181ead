/**
 * The HTTP front: one handler for the registry API and the operations
 * endpoints, one access-log line per request. The handler is separate from
 * listen() so tests drive it in-process.
 */
import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { RegistryError } from '../registry/errors.ts';
import type { OpsRoutes } from './ops-routes.ts';
import { type RegistryRoutes, type RequestNotes } from './registry-routes.ts';
import { sendError } from './send.ts';

export interface HandlerDeps {
  registry: RegistryRoutes;
  ops: OpsRoutes;
  logger: Logger;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

export function createRequestHandler(deps: HandlerDeps): RequestHandler {
  const { registry, ops, logger } = deps;
  return (req, res) => {
    const started = process.hrtime.bigint();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    const notes: RequestNotes = {};
    res.once('close', () => {
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      ops.recordRequest(notes.route ?? (path.startsWith('/v2') ? 'unknown' : 'ops'), res.statusCode, durationMs / 1000);
      logger.info(
        {
          reqId: req.headers['x-request-id'] ?? randomUUID(),
          method: req.method,
          route: notes.route ?? path,
          repository: notes.repository,
          reference: notes.reference,
          status: res.statusCode,
          complete: res.writableFinished,
          durationMs: Math.round(durationMs * 100) / 100,
          cache: notes.cache,
        },
        'request',
      );
    });
    const run = async (): Promise<void> => {
      if (path === '/v2' || path.startsWith('/v2/')) {
        if (await registry.handle(req, res, path, query, notes)) return;
        throw new RegistryError('NAME_INVALID', 'no such registry route', { detail: { path: path.slice(0, 300) } });
      }
      if (await ops.handle(req, res, path)) return;
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('not found\n');
    };
    run().catch((err: unknown) => {
      if (!(err instanceof RegistryError) && !isClientGone(err)) {
        logger.error({ err, route: notes.route, repository: notes.repository }, 'request failed');
      }
      sendError(req, res, err);
    });
  };
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
