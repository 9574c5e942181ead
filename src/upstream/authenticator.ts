/**
 * What to put in `Authorization` for the primary, learnt from its challenges.
 *
 * Before the first challenge nothing is sent. A `Bearer` challenge is
 * answered with a token from the realm (cached per realm/service/scope, see
 * TokenCache), and later requests send the cached token for their scope up
 * front. A `Basic` challenge is answered with the configured credentials,
 * which are then sent up front. A header the primary just rejected is never
 * offered again for the same challenge.
 */
import { UpstreamError } from '../cache/ports.ts';
import type { TokenCache, TokenGrant, TokenKey } from './token-cache.ts';
import { basicAuthorization, type Credentials, type TokenRequest } from './token-endpoint.ts';
import { findChallenge, joinedChallenges, MAX_WWW_AUTHENTICATE_BYTES, parseWwwAuthenticate } from './www-authenticate.ts';

export interface AuthenticatorDeps {
  credentials: Credentials | undefined;
  tokens: TokenCache;
  /** One token fetch; shared by every request waiting for that key. */
  fetchToken(request: TokenRequest): Promise<TokenGrant>;
}

export interface Authenticator {
  /** The Authorization to send up front for `scope`, if earlier challenges tell. */
  preemptive(scope: string): string | undefined;
  /**
   * The Authorization to retry a 401 with, or undefined when there is no way
   * to satisfy the challenge. `rejected` is what the 401 answered. A
   * challenge longer than MAX_WWW_AUTHENTICATE_BYTES is UPSTREAM_BAD_RESPONSE.
   */
  respond(challenge: string | string[] | undefined, scope: string, rejected: string | undefined, signal: AbortSignal): Promise<string | undefined>;
}

type Learnt = { kind: 'none' } | { kind: 'basic' } | { kind: 'bearer'; realm: string; service: string | undefined };

export function createAuthenticator(deps: AuthenticatorDeps): Authenticator {
  let learnt: Learnt = { kind: 'none' };
  const basic = deps.credentials === undefined ? undefined : basicAuthorization(deps.credentials);

  function preemptive(scope: string): string | undefined {
    if (learnt.kind === 'basic') return basic;
    if (learnt.kind === 'bearer') {
      const token = deps.tokens.get({ realm: learnt.realm, service: learnt.service, scope });
      return token === undefined ? undefined : `Bearer ${token}`;
    }
    return undefined;
  }

  async function respond(
    header: string | string[] | undefined,
    scope: string,
    rejected: string | undefined,
    signal: AbortSignal,
  ): Promise<string | undefined> {
    if (joinedChallenges(header).length > MAX_WWW_AUTHENTICATE_BYTES) {
      throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `WWW-Authenticate longer than ${MAX_WWW_AUTHENTICATE_BYTES} bytes`, { status: 401 });
    }
    const challenges = parseWwwAuthenticate(header);
    const bearer = findChallenge(challenges, 'bearer');
    const realm = bearer?.params['realm'];
    if (bearer !== undefined && realm !== undefined && realm !== '') {
      const service = bearer.params['service'];
      learnt = { kind: 'bearer', realm, service };
      // Cached under the scope we pull with; fetched with the scope the primary asked for.
      const key: TokenKey = { realm, service, scope };
      if (rejected?.startsWith('Bearer ')) deps.tokens.invalidate(key, rejected.slice('Bearer '.length));
      const request: TokenRequest = { realm, service, scope: bearer.params['scope'] ?? scope };
      const token = await deps.tokens.obtain(key, () => deps.fetchToken(request), signal);
      return `Bearer ${token}`;
    }
    if (findChallenge(challenges, 'basic') !== undefined && basic !== undefined && rejected !== basic) {
      learnt = { kind: 'basic' };
      return basic;
    }
    return undefined;
  }

  return { preemptive, respond };
}
