/**
 * `auth.mode: upstream`: the primary decides. A client's own credentials (or
 * none) are put to the primary of the repository it asks for, and the
 * answer is the verdict:
 *
 *   the primary lets them pull     → allow, and every request of this
 *                                    client reaches the primary with them
 *                                    (fills included)
 *   401 (no or bad credentials)    → 401 with the Basic challenge
 *   403                            → 403 DENIED
 *   404 for these credentials      → 404 NAME_UNKNOWN (the primary would not serve it)
 *   no answer (timeout, 5xx, 429)  → the request fails like a miss (502/504/429);
 *                                    nothing cached is served on a guess
 *
 * Answers are cached for `auth.cacheDecisions` per credential, upstream and
 * repository (decision-cache.ts: keyed by an HMAC, never the credential), so
 * the primary is asked once a minute per client and repository, not per
 * layer. Cached content is served only after this check, and only under a
 * repository that links it (cache/repository-links.ts): a client the primary
 * would refuse never gets a cached manifest or blob, by tag or by digest.
 */
import type { Upstream } from '../cache/ports.ts';
import type { RepositoryTarget } from '../cache/repository-target.ts';
import { toRegistryError } from '../cache/upstream-failure.ts';
import { anonymousClient, type AccessControl, type Client, type Verdict } from './access-control.ts';
import { parseBasicAuthorization, type BasicCredentials } from './basic-credentials.ts';
import type { DecisionCache } from './decision-cache.ts';

/** What a primary answers a client's credentials. */
export type PrimaryAnswer = 'allow' | 'unauthorized' | 'denied' | 'not-found';

/** One primary, as the clients of this mode reach it (upstream/registry-client.ts implements it). */
export interface PrimaryForClients {
  /** The primary spoken to with these credentials (undefined: anonymously). */
  asClient(credentials: BasicCredentials | undefined): Upstream;
  /** Whether the primary lets these credentials pull `repo`; rejects (an UpstreamError) when it cannot be asked. */
  checkPull(credentials: BasicCredentials | undefined, repo: string, signal: AbortSignal): Promise<PrimaryAnswer>;
  /** Whether the primary accepts these credentials at all (`GET /v2/`). */
  checkLogin(credentials: BasicCredentials | undefined, signal: AbortSignal): Promise<PrimaryAnswer>;
}

export interface UpstreamAccessDeps {
  /** The primary of an upstream cache key (`target.upstreamKey`). */
  primaries: ReadonlyMap<string, PrimaryForClients>;
  /** The default primary's key: `GET /v2/` without `?ns=` is checked against it. */
  defaultUpstream: string;
  decisions: DecisionCache<Verdict>;
  /** Bound on one question to the primary, which is shared by every request waiting for it (not tied to one client). Default 30 s. */
  checkTimeoutMs?: number;
}

const reasons: Record<PrimaryAnswer, string> = {
  allow: 'the primary lets these credentials pull',
  unauthorized: 'the primary refused these credentials (401)',
  denied: 'the primary denied these credentials (403)',
  'not-found': 'the primary has no such repository for these credentials (404)',
};

function verdictOf(answer: PrimaryAnswer): Verdict {
  switch (answer) {
    case 'allow':
      return { decision: 'allow', reason: reasons.allow };
    case 'unauthorized':
      return { decision: 'deny', code: 'UNAUTHORIZED', reason: reasons.unauthorized };
    case 'denied':
      return { decision: 'deny', code: 'DENIED', reason: reasons.denied };
    case 'not-found':
      return { decision: 'deny', code: 'NAME_UNKNOWN', reason: reasons['not-found'] };
  }
}

/** The decision-cache key of a client: its credentials as one string (HMAC'd there, never kept). */
function credentialOf(client: Client): string | undefined {
  const credentials = client.credentials;
  return credentials === undefined ? undefined : `${credentials.username.length}:${credentials.username}:${credentials.password}`;
}

export function upstreamAccess({ primaries, defaultUpstream, decisions, checkTimeoutMs = 30_000 }: UpstreamAccessDeps): AccessControl {
  const primaryOf = (upstream: string): PrimaryForClients => {
    const primary = primaries.get(upstream);
    if (primary === undefined) throw new Error(`internal: no primary for upstream ${upstream}`);
    return primary;
  };
  /** The cached or fresh verdict; a primary that cannot be asked is the client's 502/504/429, as for a miss. */
  const decide = async (
    client: Client,
    upstream: string,
    repository: string,
    ask: (signal: AbortSignal) => Promise<PrimaryAnswer>,
    signal: AbortSignal,
  ): Promise<Verdict> => {
    try {
      const check = async (): Promise<Verdict> => verdictOf(await ask(AbortSignal.timeout(checkTimeoutMs)));
      return await decisions.decide({ credential: credentialOf(client), upstream, repository }, check, signal);
    } catch (err) {
      throw toRegistryError(err, 'NAME_UNKNOWN');
    }
  };
  return {
    mode: 'upstream',
    authenticate(authorization) {
      const credentials = parseBasicAuthorization(authorization);
      return Promise.resolve(credentials === undefined ? anonymousClient : { user: credentials.username, credentials });
    },
    login(client, upstream = defaultUpstream, signal) {
      if (client.credentials === undefined) return Promise.resolve({ decision: 'deny', code: 'UNAUTHORIZED', reason: 'credentials required' });
      // Repository '' never names a repository: the login answer has its own cache entry.
      return decide(client, upstream, '', (asked) => primaryOf(upstream).checkLogin(client.credentials, asked), signal);
    },
    authorize(client, target, signal) {
      const primary = primaryOf(target.upstreamKey);
      return decide(client, target.upstreamKey, target.name, (asked) => primary.checkPull(client.credentials, target.name, asked), signal);
    },
    scope(client, target): RepositoryTarget {
      return { ...target, upstream: primaryOf(target.upstreamKey).asClient(client.credentials) };
    },
    lists(client, upstream, name) {
      return decisions.peek({ credential: credentialOf(client), upstream, repository: name })?.decision === 'allow';
    },
    close: () => decisions.clear(),
  };
}
