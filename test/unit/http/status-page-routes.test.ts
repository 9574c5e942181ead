/** The status page over HTTP: sign-in, the session cookie, the bearer token, the headers, and the page open without a token configured. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { buildClusterStatus } from '../../../src/cluster/cluster-status.ts';
import { HitHistory } from '../../../src/cluster/hit-history.ts';
import { buildStatusPageData, type StatusPageData } from '../../../src/cluster/status-page-data.ts';
import { AdminToken } from '../../../src/http/admin-token.ts';
import { sendError } from '../../../src/http/send.ts';
import { isStatusPagePath, StatusPageRoutes } from '../../../src/http/status-page-routes.ts';

const token = 'status-token-0123456789';
let server: Server | undefined;
const warnings: Array<Record<string, unknown>> = [];
afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

function sampleData(): StatusPageData {
  const now = Date.parse('2026-11-30T03:00:00Z');
  return buildStatusPageData({
    now,
    nodeId: 'n1',
    status: buildClusterStatus({
      now,
      self: {
        node_id: 'n1',
        instance: '',
        advertise_url: 'http://10.0.0.1:5000',
        version: '0.1.0',
        started_at: new Date(now - 60_000).toISOString(),
        heartbeat_at: new Date(now).toISOString(),
        health: { status: 'ok', problems: [], draining: false, disk_failing: false },
        cache_bytes: 2048,
        hit_ratio: 0.5,
        fills_in_flight: 0,
      },
      staleAfterMs: 0,
    }),
    metricsText: 'outpost_cache_size_bytes 2048\noutpost_cache_max_bytes 4096\n',
    maxBytes: 1,
    history: new HitHistory(),
    pulls: {
      scope: 'node',
      recent: [{ at: now, repository: 'team/app', reference: 'v1', client: '10.0.0.9', result: 'hit' }],
      byPulls: [{ repository: 'team/app', pulls: 1, bytes: 100 }],
      byBytes: [{ repository: 'team/app', pulls: 1, bytes: 100 }],
    },
    showUsers: false,
  });
}

async function serve(adminToken: string | undefined, data: () => Promise<StatusPageData> = async () => sampleData()): Promise<{ url: string; gathered: () => number }> {
  let gathered = 0;
  const routes = new StatusPageRoutes({
    token: new AdminToken(adminToken),
    nodeId: 'n1',
    logger: { debug() {}, info() {}, warn: (obj: object, msg: string) => warnings.push({ ...obj, msg }), error() {} },
    data: () => {
      gathered += 1;
      return data();
    },
  });
  // As src/http/server.ts routes: only the status page's paths reach it.
  server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (!isStatusPagePath(path)) {
      res.writeHead(404).end();
      return;
    }
    void routes.handle(req, res, path).catch((err: unknown) => sendError(req, res, err));
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, gathered: () => gathered };
}

function login(url: string, body: string, type = 'application/x-www-form-urlencoded'): Promise<Response> {
  return fetch(`${url}/status/login`, { method: 'POST', headers: { 'content-type': type }, body, redirect: 'manual' });
}

function cookieOf(res: Response): string {
  return (res.headers.get('set-cookie') ?? '').split(';')[0]!;
}

describe('status page routes with an admin token', () => {
  it('shows only the sign-in form without the token, and gathers nothing', async () => {
    const { url, gathered } = await serve(token);
    for (const path of ['/', '/status']) {
      const res = await fetch(`${url}${path}`);
      const html = await res.text();
      expect(res.status).toBe(401);
      expect(html).toContain('id="login"');
      expect(html).not.toContain('team/app');
      expect(html).not.toContain('cache-used');
      expect(html).not.toContain('<script');
    }
    expect(gathered()).toBe(0);
    expect((await fetch(`${url}/api/v0/meta/status_page`)).status).toBe(401);
    expect(gathered()).toBe(0);
  });

  it('answers the bearer token with the page, under a strict CSP, nosniff and no-store', async () => {
    const { url } = await serve(token);
    const res = await fetch(`${url}/`, { headers: { authorization: `Bearer ${token}` } });
    const html = await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toBe(
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(html).toContain('data-replica="n1"');
    expect(html).toContain('<span id="cache-used">2.0 KiB</span> of <span id="cache-max">4.0 KiB</span>');
    expect(html).toContain('team/app:v1');
    expect(html).not.toMatch(/<script>|<script [^>]*>[^<]/); // no inline script
    expect(html).not.toContain(token);
  });

  it('refuses a wrong token with the form again, 401, and no cookie', async () => {
    const { url } = await serve(token);
    warnings.length = 0;
    const res = await login(url, 'token=wrong');
    expect(res.status).toBe(401);
    expect(warnings).toEqual([{ client: '127.0.0.1', reason: 'wrong token', msg: 'status page sign-in refused' }]);
    expect(res.headers.get('set-cookie')).toBeNull();
    expect(await res.text()).toContain('That is not the admin token.');
    const json = await login(url, JSON.stringify({ token }), 'application/json');
    expect(json.status).toBe(401);
    const huge = await login(url, `token=${'x'.repeat(10_000)}`);
    expect(huge.status).toBe(401);
    expect(await huge.text()).toContain('too large');
  });

  it('signs in with the right token: an HttpOnly, SameSite=Strict cookie that is not the token, good for reading only', async () => {
    const { url } = await serve(token);
    const res = await login(url, `token=${encodeURIComponent(token)}`);
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/status');
    const setCookie = res.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/^outpost_admin=\d{10}\.[A-Za-z0-9_-]{43}; Max-Age=43200; Path=\/; HttpOnly; SameSite=Strict$/);
    expect(setCookie).not.toContain(token);
    const cookie = cookieOf(res);
    const page = await fetch(`${url}/status`, { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('data-replica="n1"');
    const data = await fetch(`${url}/api/v0/meta/status_page`, { headers: { cookie } });
    expect(data.status).toBe(200);
    expect(((await data.json()) as StatusPageData).recent_pulls[0]).toMatchObject({ repository: 'team/app', reference: 'v1' });
    // Another token's cookie, or a tampered one, opens nothing.
    const other = await login((await serve('another-token')).url, 'token=another-token');
    expect((await fetch(`${url}/status`, { headers: { cookie: cookieOf(other) } })).status).toBe(401);
    expect((await fetch(`${url}/status`, { headers: { cookie: `${cookie}x` } })).status).toBe(401);
  });

  it('signs out by clearing the cookie', async () => {
    const { url } = await serve(token);
    const res = await fetch(`${url}/status/logout`, { method: 'POST', redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('set-cookie')).toMatch(/^outpost_admin=; Max-Age=0; Path=\/; HttpOnly; SameSite=Strict$/);
  });

  it('shows why when the status cannot be gathered, instead of failing the page', async () => {
    const { url } = await serve(token, () => Promise.reject(new Error('the cluster primary did not answer ops.statusPage')));
    const res = await fetch(`${url}/`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('Could not gather this node&#39;s status: the cluster primary did not answer ops.statusPage');
  });
});

describe('status page routes without an admin token', () => {
  it('is open: the page and its data answer without credentials', async () => {
    const { url } = await serve(undefined);
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('data-replica="n1"');
    expect(html).not.toContain('Sign out');
    expect((await fetch(`${url}/api/v0/meta/status_page`)).status).toBe(200);
    expect((await login(url, 'token=x')).status).toBe(303);
  });

  it('serves its assets from memory with their types and nosniff, and nothing else under the assets path', async () => {
    const { url } = await serve(undefined);
    for (const [name, type] of [['page.js', 'text/javascript; charset=utf-8'], ['render.js', 'text/javascript; charset=utf-8'], ['page.css', 'text/css; charset=utf-8']]) {
      const res = await fetch(`${url}/status/assets/${name}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe(type);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect((await res.text()).length).toBeGreaterThan(100);
    }
    for (const name of ['../../config/types.ts', '..%2fadmin-token.ts', 'render.d.ts', '']) {
      const res = await fetch(`${url}/status/assets/${name}`);
      await res.body?.cancel();
      expect(res.status).toBe(404);
    }
    const post = await fetch(`${url}/status`, { method: 'POST' });
    await post.body?.cancel();
    expect(post.status).toBe(405);
  });
});

describe('admin token session cookie', () => {
  it('expires on the server after twelve hours, whatever the browser keeps, and cannot be extended by editing it', () => {
    let now = Date.parse('2026-11-30T03:00:00Z');
    const admin = new AdminToken(token, { now: () => now });
    const value = admin.sessionValue()!;
    const req = (cookie: string) => ({ method: 'GET', headers: { cookie: `outpost_admin=${cookie}` } }) as never;
    expect(admin.allows(req(value))).toBe(true);
    const [expiry, mac] = value.split('.') as [string, string];
    expect(Number(expiry)).toBe(now / 1000 + 12 * 3600);
    expect(admin.allows(req(`${Number(expiry) + 3600}.${mac}`))).toBe(false);
    expect(admin.allows(req(`${expiry}.${mac.slice(0, -1)}A`))).toBe(mac.endsWith('A'));
    expect(admin.allows(req(mac))).toBe(false);
    now += 12 * 3600 * 1000 - 1;
    expect(admin.allows(req(value))).toBe(true);
    now += 1;
    expect(admin.allows(req(value))).toBe(false);
    // Another token never validates this one's sessions.
    expect(new AdminToken('other', { now: () => now - 1000 }).allows(req(value))).toBe(false);
  });

  it('opens GET and HEAD only: anything that changes state needs the bearer header', () => {
    const admin = new AdminToken(token);
    const cookie = `outpost_admin=${admin.sessionValue()}`;
    const req = (method: string, headers: Record<string, string>) => ({ method, headers }) as never;
    expect(admin.allows(req('GET', { cookie }))).toBe(true);
    expect(admin.allows(req('HEAD', { cookie }))).toBe(true);
    expect(admin.allows(req('POST', { cookie }))).toBe(false);
    expect(admin.allows(req('DELETE', { cookie }))).toBe(false);
    expect(admin.allows(req('POST', { authorization: `Bearer ${token}` }))).toBe(true);
    expect(admin.allows(req('GET', { authorization: 'Bearer wrong', cookie }))).toBe(false);
    expect(admin.sessionValue()).not.toContain(token);
    expect(new AdminToken(undefined).allows(req('GET', { cookie }))).toBe(false);
    expect(new AdminToken(undefined).sessionValue()).toBeUndefined();
  });
});
