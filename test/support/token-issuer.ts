import { X509Certificate, createPrivateKey, randomUUID, sign, timingSafeEqual, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { requireBinary, runProcess } from './process.ts';
import { makeTempDir, removeTempDir } from './temp.ts';

/**
 * A Docker token server (https://distribution.github.io/distribution/spec/auth/token/)
 * for distribution's `auth: token` mode, on 127.0.0.1.
 *
 *   GET  /token?service=S&scope=repository:NAME:pull,push[&scope=...]   (Basic auth optional)
 *   POST /token   (OAuth2 form: grant_type=password, username, password, scope, service)
 *
 * answers `{token, access_token, expires_in, issued_at}` with a JWT signed by a
 * key whose self-signed certificate (made with the openssl CLI) is both in the
 * JWT header's `x5c` and in `rootCertBundlePath` — the file distribution's
 * `auth.token.rootcertbundle` points at.
 */

export type TokenAction = 'pull' | 'push' | 'delete' | '*';

export interface TokenUser {
  username: string;
  password: string;
  /** Actions granted on repositories. Default `['pull']`. `'*'` grants whatever is asked (and registry:catalog:*). */
  actions?: readonly TokenAction[];
  /** Repository name patterns (`*` matches any run of characters) the user may access. Default: all. */
  repositories?: readonly string[];
}

export interface TokenIssuerOptions {
  users?: readonly TokenUser[];
  /** `iss` claim; distribution's `auth.token.issuer`. Default `outpost-test-issuer`. */
  issuer?: string;
  /** `aud` claim; distribution's `auth.token.service`. Default `outpost-test-registry`. */
  service?: string;
  /** Actions granted to anonymous requests. Default none (the token carries no access). */
  anonymousActions?: readonly TokenAction[];
  /** Lifetime of issued tokens. Default 300 s. */
  expiresInSeconds?: number;
  algorithm?: 'ES256' | 'RS256';
}

export interface TokenAccess {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenRequestEntry {
  method: string;
  /** The authenticated user, undefined for anonymous requests. */
  user: string | undefined;
  scopes: string[];
  status: number;
  granted: TokenAccess[];
}

export interface TokenIssuer {
  /** The realm URL for distribution's config, e.g. `http://127.0.0.1:PORT/token`. */
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  /** PEM certificate distribution trusts (`auth.token.rootcertbundle`). */
  readonly rootCertBundlePath: string;
  /** Number of token requests received (any outcome). */
  requests(): number;
  requestLog(): TokenRequestEntry[];
  /** Replaces the user list (e.g. to revoke a user mid-test). */
  setUsers(users: readonly TokenUser[]): void;
  /** Signs a token directly (for tests that forge, expire or hand-craft tokens). */
  issueToken(claims: { subject?: string; access: TokenAccess[]; expiresInSeconds?: number; notBeforeOffsetSeconds?: number }): string;
  stop(): Promise<void>;
}

export async function startTokenIssuer(options: TokenIssuerOptions = {}): Promise<TokenIssuer> {
  const openssl = requireBinary('openssl');
  const issuer = options.issuer ?? 'outpost-test-issuer';
  const service = options.service ?? 'outpost-test-registry';
  const algorithm = options.algorithm ?? 'ES256';
  const expiresIn = options.expiresInSeconds ?? 300;
  let users: readonly TokenUser[] = options.users ?? [];
  const anonymousActions = options.anonymousActions ?? [];

  const dir = await makeTempDir('token-issuer');
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  const keyArgs =
    algorithm === 'ES256' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'] : ['-newkey', 'rsa:2048'];
  const gen = await runProcess(
    openssl,
    ['req', '-x509', ...keyArgs, '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=outpost-test-token-issuer'],
    { timeoutMs: 30_000 },
  );
  if (gen.exitCode !== 0) {
    await removeTempDir(dir);
    throw new Error(`openssl could not make the token signing certificate (exit ${gen.exitCode}): ${gen.output}`);
  }
  const key: KeyObject = createPrivateKey(await readFile(keyPath));
  const certDerB64 = new X509Certificate(await readFile(certPath)).raw.toString('base64');

  const issueToken: TokenIssuer['issueToken'] = (claims) => {
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: algorithm, x5c: [certDerB64] };
    const payload = {
      iss: issuer,
      sub: claims.subject ?? '',
      aud: service,
      exp: now + (claims.expiresInSeconds ?? expiresIn),
      nbf: now + (claims.notBeforeOffsetSeconds ?? -1),
      iat: now,
      jti: randomUUID(),
      access: claims.access,
    };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
    const signature =
      algorithm === 'ES256'
        ? sign('sha256', Buffer.from(signingInput), { key, dsaEncoding: 'ieee-p1363' })
        : sign('sha256', Buffer.from(signingInput), key);
    return `${signingInput}.${b64url(signature)}`;
  };

  const log: TokenRequestEntry[] = [];

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const entry: TokenRequestEntry = { method: req.method ?? 'GET', user: undefined, scopes: [], status: 0, granted: [] };
    log.push(entry);
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      entry.status = status;
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
      res.end(text);
    };
    if (url.pathname !== '/token' || (req.method !== 'GET' && req.method !== 'POST')) {
      reply(404, { errors: [{ code: 'NOT_FOUND', message: 'token endpoint is /token' }] });
      return;
    }

    let params = url.searchParams;
    let username: string | undefined;
    let password: string | undefined;
    if (req.method === 'POST') {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      params = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      if (params.get('grant_type') === 'password') {
        username = params.get('username') ?? undefined;
        password = params.get('password') ?? undefined;
      }
    } else {
      req.resume();
    }
    const authz = req.headers.authorization;
    if (authz !== undefined && /^basic /i.test(authz)) {
      const decoded = Buffer.from(authz.slice(6).trim(), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      username = colon === -1 ? decoded : decoded.slice(0, colon);
      password = colon === -1 ? '' : decoded.slice(colon + 1);
    }

    const requestedService = params.get('service');
    if (requestedService !== null && requestedService !== service) {
      reply(400, { errors: [{ code: 'DENIED', message: `unknown service ${requestedService}` }] });
      return;
    }
    entry.scopes = params.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);

    let user: TokenUser | undefined;
    if (username !== undefined) {
      user = users.find((u) => u.username === username && safeEqual(u.password, password ?? ''));
      if (user === undefined) {
        reply(401, { errors: [{ code: 'UNAUTHORIZED', message: 'invalid username or password' }] }, {
          'www-authenticate': 'Basic realm="outpost-test-token-issuer"',
        });
        return;
      }
      entry.user = user.username;
    }

    entry.granted = entry.scopes.flatMap((scope) => grant(scope, user, anonymousActions));
    const token = issueToken({ subject: user?.username ?? '', access: entry.granted });
    reply(200, { token, access_token: token, expires_in: expiresIn, issued_at: new Date().toISOString() });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err));
      } else {
        res.destroy();
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    rootCertBundlePath: certPath,
    requests: () => log.length,
    requestLog: () => log.map((e) => ({ ...e, scopes: [...e.scopes], granted: e.granted.map((g) => ({ ...g })) })),
    setUsers(next) {
      users = next;
    },
    issueToken,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await removeTempDir(dir);
    },
  };
}

/** Grants the part of one requested scope ("repository:NAME:pull,push") the user (or anonymous) may have. */
function grant(scope: string, user: TokenUser | undefined, anonymousActions: readonly TokenAction[]): TokenAccess[] {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first === -1 || last === first) return [];
  const type = scope.slice(0, first);
  const name = scope.slice(first + 1, last);
  const requested = scope.slice(last + 1).split(',').filter(Boolean);
  const allowed: readonly TokenAction[] = user === undefined ? anonymousActions : (user.actions ?? ['pull']);
  if (type === 'registry') {
    return allowed.includes('*') ? [{ type, name, actions: requested }] : [];
  }
  if (type !== 'repository') return [];
  const patterns = user?.repositories;
  if (patterns !== undefined && !patterns.some((p) => globMatch(p, name))) return [];
  const actions = allowed.includes('*') ? requested : requested.filter((a) => (allowed as readonly string[]).includes(a));
  return actions.length === 0 ? [] : [{ type, name, actions }];
}

function globMatch(pattern: string, value: string): boolean {
  const re = new RegExp('^' + pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\/]/g, '\\$&')).join('.*') + '$');
  return re.test(value);
}

function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

function b64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url');
}
