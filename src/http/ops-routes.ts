/**
 * Operations endpoints on the registry port, unauthenticated and cheap
 * enough to probe every second:
 *
 * - `/health` — readiness: 200 while this node can serve, 503 when it
 *   cannot (cache directory unwritable, no worker) or is draining.
 * - `/livez` — liveness: 200 `{"alive":true}` whenever the HTTP server
 *   answers, whatever the cache, the primary or a drain say. A liveness
 *   probe on `/health` would restart a node whose volume went read-only,
 *   and restarts do not fix volumes.
 * - `/nginx_status`, `/metrics`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { formatStubStatus, type ConnectionCounters } from '../observability/connection-stats.ts';
import type { HealthReport } from '../observability/health.ts';

export interface OpsRoutesDeps {
  health: () => Promise<HealthReport>;
  metrics: () => Promise<{ contentType: string; body: string }>;
  connections: () => Promise<ConnectionCounters>;
}

export type OpsRoute = 'health' | 'livez' | 'nginx_status' | 'metrics';

export function opsRouteOf(path: string): OpsRoute | undefined {
  if (path === '/health') return 'health';
  if (path === '/livez') return 'livez';
  if (path === '/nginx_status') return 'nginx_status';
  if (path === '/metrics') return 'metrics';
  return undefined;
}

function send(req: IncomingMessage, res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : body);
}

const alive = JSON.stringify({ alive: true });

export class OpsRoutes {
  constructor(private readonly deps: OpsRoutesDeps) {}

  async handle(req: IncomingMessage, res: ServerResponse, route: OpsRoute): Promise<void> {
    switch (route) {
      case 'health': {
        const report = await this.deps.health();
        send(req, res, report.healthy ? 200 : 503, 'application/json; charset=utf-8', JSON.stringify(report));
        return;
      }
      case 'livez':
        send(req, res, 200, 'application/json; charset=utf-8', alive);
        return;
      case 'nginx_status':
        send(req, res, 200, 'text/plain', formatStubStatus(await this.deps.connections()));
        return;
      case 'metrics': {
        const { contentType, body } = await this.deps.metrics();
        send(req, res, 200, contentType, body);
        return;
      }
    }
  }
}
