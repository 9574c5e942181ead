/**
 * `GET /api/v0/meta/cluster_status`: the replica set as this node sees it
 * (see cluster/cluster-status.ts for the document). Needs the admin bearer
 * token; off (405 UNSUPPORTED) when none is configured.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RegistryError } from '../registry/errors.ts';
import type { AdminToken } from './admin-token.ts';
import { sendJson } from './send.ts';

export const clusterStatusPath = '/api/v0/meta/cluster_status';

export class ClusterRoutes {
  constructor(
    private readonly token: AdminToken,
    private readonly status: () => Promise<unknown>,
  ) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.token.authorize(req, 'cluster status');
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new RegistryError('UNSUPPORTED', 'cluster status is read-only');
    sendJson(req, res, 200, await this.status(), { 'cache-control': 'no-store' });
  }
}
