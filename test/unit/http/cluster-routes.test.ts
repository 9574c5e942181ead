/** /api/v0/meta/cluster_status over HTTP: the admin bearer token is required, and the route is off without one. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AdminToken } from '../../../src/http/admin-token.ts';
import { ClusterRoutes } from '../../../src/http/cluster-routes.ts';
import { sendError } from '../../../src/http/send.ts';

let server: Server | undefined;
afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

async function serve(token: string | undefined): Promise<string> {
  const routes = new ClusterRoutes(new AdminToken(token), async () => ({ leader: 'n1' }));
  server = createServer((req, res) => void routes.handle(req, res).catch((err: unknown) => sendError(req, res, err)));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v0/meta/cluster_status`;
}

describe('cluster_status route', () => {
  it('answers with the bearer token only', async () => {
    const url = await serve('s3cret-token');
    expect(await (await fetch(url, { headers: { authorization: 'Bearer s3cret-token' } })).json()).toEqual({ leader: 'n1' });
    const denied = await fetch(url, { headers: { authorization: 'Bearer wrong' } });
    expect(denied.status).toBe(401);
    expect(denied.headers.get('www-authenticate')).toBe('Bearer realm="outpost-admin"');
    expect((await fetch(url)).status).toBe(401);
  });

  it('is off without an admin token', async () => {
    const res = await fetch(await serve(undefined));
    expect(res.status).toBe(405);
    expect(((await res.json()) as { errors: Array<{ code: string; message: string }> }).errors[0]).toMatchObject({
      code: 'UNSUPPORTED',
      message: 'cluster status is off: set OUTPOST_ADMIN_TOKEN',
    });
  });
});
