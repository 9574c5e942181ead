/**
 * The Docker token endpoint (distribution `docs/spec/auth/token.md`):
 * `GET <realm>?service=<service>&scope=<scope>`, with HTTP Basic credentials
 * when configured (and `account=<username>`), anonymously otherwise. The
 * answer is `{"token": ..., "expires_in": ..., "issued_at": ...}`, or
 * `access_token` for OAuth-style servers.
 *
 * The realm comes from the primary's challenge and is untrusted: it must be
 * an http(s) URL, and the configured credentials go to it only when
 * `mayReceiveCredentials` says so (the caller decides, and logs a refusal).
 * The token it answers is sent back to the primary in a header, so it must be
 * printable ASCII and at most MAX_TOKEN_CHARS long.
 */
import { UpstreamError } from '../cache/ports.ts';
import type { Transport } from './http-transport.ts';
import { discard, parseJson, readLimited } from './response-body.ts';
import type { TokenGrant } from './token-cache.ts';
import { errorFromStatus } from './upstream-errors.ts';

export interface Credentials {
  username: string;
  password: string;
}

export interface TokenRequest {
  realm: string;
  service: string | undefined;
  /** Space-separated scopes, each sent as its own `scope` parameter. */
  scope: string | undefined;
}

const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;
/** Longest token accepted: real ones are 1-3 KiB, and most servers cap a header line at 8 KiB. */
export const MAX_TOKEN_CHARS = 8 * 1024;
const HEADER_SAFE = /^[\x21-\x7e]+$/;

/** The realm as an http(s) URL; anything else is UPSTREAM_BAD_RESPONSE. */
export function parseRealm(realm: string): URL {
  let url: URL;
  try {
    url = new URL(realm);
  } catch (err) {
    throw new UpstreamError('UPSTREAM_BAD_RESPONSE', 'token realm is not a URL', { cause: err });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `token realm uses ${url.protocol}, not http(s)`);
  }
  return url;
}

/**
 * Whether the configured credentials may go to `realm`: over https to any
 * host (Docker Hub's realm is auth.docker.io), or over plain http only on
 * the primary's own host when the primary itself is plain http (distribution
 * with its token server on another port). Whoever can read plain-http traffic
 * to that host already reads the primary's; a plain-http realm anywhere else
 * (`realm="http://evil/"` from a lying primary) never gets the password.
 */
export function mayReceiveCredentials(realm: URL, primary: URL): boolean {
  if (realm.protocol === 'https:') return true;
  return primary.protocol === 'http:' && realm.hostname === primary.hostname;
}

export function basicAuthorization(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`, 'utf8').toString('base64')}`;
}

/** Fetches one token. Rejects with an UpstreamError or a transport error. */
export async function requestToken(
  transport: Transport,
  request: TokenRequest,
  credentials: Credentials | undefined,
  nowMs: () => number,
  signal: AbortSignal,
): Promise<TokenGrant> {
  const url = parseRealm(request.realm);
  if (request.service !== undefined) url.searchParams.set('service', request.service);
  for (const scope of (request.scope ?? '').split(' ')) {
    if (scope !== '') url.searchParams.append('scope', scope);
  }
  if (credentials !== undefined) url.searchParams.set('account', credentials.username);

  const what = 'token request';
  const res = await transport.send({
    method: 'GET',
    url,
    headers: { accept: 'application/json' },
    authorization: credentials === undefined ? undefined : basicAuthorization(credentials),
    signal,
  });
  if (res.statusCode < 200 || res.statusCode > 299) {
    discard(res.body);
    throw errorFromStatus(res.statusCode, res.headers, what, nowMs());
  }
  const json = parseJson(await readLimited(res.body, res.headers['content-length'], MAX_TOKEN_RESPONSE_BYTES, what), what);
  return parseTokenResponse(json);
}

export function parseTokenResponse(json: unknown): TokenGrant {
  const body = (typeof json === 'object' && json !== null ? json : {}) as Record<string, unknown>;
  const token = typeof body['token'] === 'string' && body['token'] !== '' ? body['token'] : body['access_token'];
  if (typeof token !== 'string' || token === '') {
    throw new UpstreamError('UPSTREAM_BAD_RESPONSE', 'token response carries no token');
  }
  if (token.length > MAX_TOKEN_CHARS || !HEADER_SAFE.test(token)) {
    throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `token response carries a token that is not printable ASCII of at most ${MAX_TOKEN_CHARS} characters`);
  }
  const expiresIn = body['expires_in'];
  const valid = typeof expiresIn === 'number' && Number.isFinite(expiresIn) && expiresIn > 0;
  return { token, expiresInSeconds: valid ? expiresIn : undefined };
}
