/**
 * The human status page (`/` and `/status`), its data
 * (`GET /api/v0/meta/status_page`, the JSON the page refreshes from), its
 * static assets (read once at start, served from memory) and its sign-in.
 *
 * With an admin token configured, the page and its data need it: the bearer
 * header, or the session cookie set by signing in (POST /status/login with
 * the token; see admin-token.ts). Without one, the page shows the sign-in
 * form only (401), nothing of the cache. With no admin token configured the
 * page is open, as PRODUCT.md has it ("needs the admin token when one is
 * set"): it shows no credential in any case.
 *
 * Every HTML answer carries a CSP that allows only this origin's script and
 * style files (no inline script or style), nosniff, no-store and no framing.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { stringifySetCookie } from 'cookie';
import type { Logger } from '../cache/ports.ts';
import type { StatusPageData } from '../cluster/status-page-data.ts';
import { RegistryError } from '../registry/errors.ts';
import { adminCookieName, sessionSeconds, type AdminToken } from './admin-token.ts';
import { assetsPath, loginPath, logoutPath, renderLoginPage, renderStatusPage } from './status-page-html.ts';
import { sendJson } from './send.ts';

export const statusDataPath = '/api/v0/meta/status_page';

const contentSecurityPolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

const securityHeaders = {
  'content-security-policy': contentSecurityPolicy,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
} as const;

/** A sign-in form body is a few dozen bytes; anything longer is refused. */
const maxLoginBody = 4_096;

interface Asset {
  type: string;
  body: Buffer;
}

function readAssets(): Map<string, Asset> {
  const dir = new URL('./status-page/', import.meta.url);
  const files: Array<[string, string]> = [
    ['page.js', 'text/javascript; charset=utf-8'],
    ['render.js', 'text/javascript; charset=utf-8'],
    ['page.css', 'text/css; charset=utf-8'],
  ];
  return new Map(files.map(([name, type]) => [name, { type, body: readFileSync(new URL(name, dir)) }]));
}

/** Paths this module answers. */
export function isStatusPagePath(path: string): boolean {
  return path === '/' || path === '/status' || path === statusDataPath || path === loginPath || path === logoutPath || path.startsWith(assetsPath);
}

export interface StatusPageRoutesDeps {
  token: AdminToken;
  nodeId: string;
  data: () => Promise<StatusPageData>;
  /** Sign-ins (refused ones as warnings, with the client's address; never what was typed). */
  logger: Logger;
}

export class StatusPageRoutes {
  private readonly assets = readAssets();

  constructor(private readonly deps: StatusPageRoutesDeps) {}

  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const method = req.method ?? 'GET';
    if (path.startsWith(assetsPath)) return this.asset(req, res, path.slice(assetsPath.length));
    if (path === loginPath) return this.login(req, res);
    if (path === logoutPath) return this.logout(req, res);
    if (method !== 'GET' && method !== 'HEAD') throw new RegistryError('UNSUPPORTED', 'the status page is read-only');
    const { token } = this.deps;
    if (path === statusDataPath) {
      if (token.configured) token.authorize(req, 'the status page');
      sendJson(req, res, 200, await this.deps.data(), { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
      return;
    }
    if (token.configured && !token.allows(req)) return this.html(req, res, 401, renderLoginPage(this.deps.nodeId, undefined));
    let data: StatusPageData | undefined;
    let problem: string | undefined;
    try {
      data = await this.deps.data();
    } catch (err) {
      problem = `Could not gather this node's status: ${err instanceof Error ? err.message : String(err)}`;
      this.deps.logger.warn({ err: String(err) }, 'status page: could not gather the status');
    }
    this.html(req, res, 200, renderStatusPage(data, this.deps.nodeId, { signedIn: token.configured, ...(problem === undefined ? {} : { problem }) }));
  }

  private asset(req: IncomingMessage, res: ServerResponse, name: string): void {
    const asset = this.assets.get(name);
    if (asset === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
      res.end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new RegistryError('UNSUPPORTED', 'assets are read-only');
    res.writeHead(200, { 'content-type': asset.type, 'content-length': asset.body.length, 'x-content-type-options': 'nosniff', 'cache-control': 'no-cache' });
    res.end(req.method === 'HEAD' ? undefined : asset.body);
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { token, nodeId } = this.deps;
    if (!token.configured) return this.redirect(res, '/status');
    if (req.method !== 'POST') return this.redirect(res, '/status');
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const body = await readSmallBody(req, maxLoginBody);
    const given = type === 'application/x-www-form-urlencoded' && body !== undefined ? new URLSearchParams(body).get('token') : null;
    const client = req.socket.remoteAddress ?? '';
    if (given === null || !token.matches(given)) {
      this.deps.logger.warn({ client, reason: body === undefined ? 'body too large' : given === null ? 'no token in the form' : 'wrong token' }, 'status page sign-in refused');
      return this.html(req, res, 401, renderLoginPage(nodeId, body === undefined ? 'That request was too large.' : 'That is not the admin token.'));
    }
    this.deps.logger.info({ client }, 'status page sign-in');
    res.setHeader(
      'set-cookie',
      stringifySetCookie(adminCookieName, token.sessionValue()!, {
        httpOnly: true,
        sameSite: 'strict',
        secure: (req.socket as Partial<TLSSocket>).encrypted === true,
        path: '/',
        maxAge: sessionSeconds,
      }),
    );
    this.redirect(res, '/status');
  }

  private logout(req: IncomingMessage, res: ServerResponse): void {
    if (req.method === 'POST') {
      res.setHeader('set-cookie', stringifySetCookie(adminCookieName, '', { httpOnly: true, sameSite: 'strict', path: '/', maxAge: 0 }));
    }
    this.redirect(res, '/status');
  }

  private redirect(res: ServerResponse, location: string): void {
    res.writeHead(303, { location, 'cache-control': 'no-store', 'content-length': 0 });
    res.end();
  }

  private html(req: IncomingMessage, res: ServerResponse, status: number, body: string): void {
    res.writeHead(status, {
      ...securityHeaders,
      'content-type': 'text/html; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      ...(status === 401 ? { 'www-authenticate': 'Bearer realm="outpost-admin"' } : {}),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }
}

/** The request body as text, or undefined when it exceeds `limit` bytes (the rest is not read; the connection closes). */
async function readSmallBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume();
    return undefined;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
