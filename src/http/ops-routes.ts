/** Operations endpoints on the registry port: `/health` (and, with the operations issue, `/nginx_status`, `/metrics`). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HealthReport } from '../observability/health.ts';

export interface OpsRoutesDeps {
  health: () => Promise<HealthReport>;
  metrics?: () => Promise<{ contentType: string; body: string }>;
  onRequest?: (routeClass: string, status: number, seconds: number) => void;
}

export class OpsRoutes {
  constructor(private readonly deps: OpsRoutesDeps) {}

  recordRequest(routeClass: string, status: number, seconds: number): void {
    this.deps.onRequest?.(routeClass, status, seconds);
  }

  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    if (path === '/health') {
      const report = await this.deps.health();
      const body = JSON.stringify(report);
      res.writeHead(report.healthy ? 200 : 503, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
      return true;
    }
    if (path === '/metrics' && this.deps.metrics) {
      const { contentType, body } = await this.deps.metrics();
      res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
      return true;
    }
    return false;
  }
}
