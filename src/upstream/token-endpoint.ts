/**
 * The Docker token endpoint (distribution `docs/spec/auth/token.md`):
 * `GET <realm>?service=<service>&scope=<scope>`, with HTTP Basic credentials
 * when configured (and `account=<username>`), anonymously otherwise. The
 * answer is `{"token": ..., "expires_in": ..., "issued_at": ...}`, or
 * `access_token` for OAuth-style servers.
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
  let url: URL;
  try {
    url = new URL(request.realm);
  } catch (err) {
    throw new UpstreamError('UPSTREAM_BAD_RESPONSE', 'token realm is not a URL', { cause: err });
  }
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
  const expiresIn = body['expires_in'];
  const valid = typeof expiresIn === 'number' && Number.isFinite(expiresIn) && expiresIn > 0;
  return { token, expiresInSeconds: valid ? expiresIn : undefined };
}
