/**
 * Who may pull what, as the HTTP layer asks it for every registry request
 * before any cache work:
 *
 *   authenticate(Authorization) → Client      who sent it (401 for credentials that do not verify)
 *   login(client)               → Verdict     `GET /v2/` (what `docker login` checks)
 *   authorize(client, target)   → Verdict     pull from one repository of one upstream
 *
 * One implementation per `auth.mode`:
 *
 * - `none`: everyone is anonymous and allowed; the Authorization header is
 *   ignored (clients may send credentials to a mirror that does not need them).
 * - `basic`: users from the htpasswd file ({@link HtpasswdFile}, reloaded when
 *   it changes) and the rules of {@link AccessRules}. Credentials that do not
 *   verify are a 401 whatever the repository; `/v2/` without credentials is a
 *   401 with the Basic challenge, so `docker login` sends them.
 * - `upstream`: see upstream-access.ts.
 *
 * Verdicts carry their reason for the audit log; nothing here ever holds or
 * logs a password.
 */
import type { RepositoryTarget } from '../cache/repository-target.ts';
import type { ErrorCode } from '../registry/errors.ts';
import { RegistryError } from '../registry/errors.ts';
import type { AccessRules } from './access-rules.ts';
import { basicChallenge, parseBasicAuthorization, type BasicCredentials } from './basic-credentials.ts';
import type { AuthMode } from './config.ts';
import type { HtpasswdFile } from './htpasswd.ts';

/** The realm of the Basic challenge. */
export const BASIC_REALM = 'outpost';

/** Who sent a request. */
export interface Client {
  /** A user whose credentials verified (basic), or who sent some (upstream: verified per repository); undefined when anonymous. */
  readonly user: string | undefined;
  /** The credentials as sent (upstream mode checks and fills with them); never logged. */
  readonly credentials: BasicCredentials | undefined;
}

export const anonymousClient: Client = { user: undefined, credentials: undefined };

export type Verdict =
  | { decision: 'allow'; reason: string }
  | { decision: 'deny'; code: ErrorCode; reason: string };

export interface AccessControl {
  readonly mode: AuthMode;
  /** Who sent the request; rejects with UNAUTHORIZED (and the challenge) when its credentials do not verify. */
  authenticate(authorization: string | undefined, signal: AbortSignal): Promise<Client>;
  /** May this client use the API at all (`GET /v2/`, of the primary `upstream` names: containerd sends `?ns=`; undefined for the default)? */
  login(client: Client, upstream: string | undefined, signal: AbortSignal): Promise<Verdict>;
  /** May this client pull from this repository of this upstream? */
  authorize(client: Client, target: RepositoryTarget, signal: AbortSignal): Promise<Verdict>;
  /** The repository as this client's requests reach the primary (upstream mode: with the client's own credentials). */
  scope(client: Client, target: RepositoryTarget): RepositoryTarget;
  /** For `_catalog`: whether a repository is listed for this client, without asking the primary. */
  lists(client: Client, upstream: string, name: string): boolean;
  close(): void;
}

/** The error a denied request is answered with: 401s carry the Basic challenge. */
export function verdictError(verdict: Extract<Verdict, { decision: 'deny' }>): RegistryError {
  const headers: Record<string, string> = verdict.code === 'UNAUTHORIZED' ? { 'www-authenticate': basicChallenge(BASIC_REALM) } : {};
  return new RegistryError(verdict.code, undefined, { headers, detail: { reason: verdict.reason } });
}

/** `auth.mode: none`. */
export function openAccess(): AccessControl {
  const allow: Verdict = { decision: 'allow', reason: 'auth.mode none' };
  return {
    mode: 'none',
    authenticate: () => Promise.resolve(anonymousClient),
    login: () => Promise.resolve(allow),
    authorize: () => Promise.resolve(allow),
    scope: (_client, target) => target,
    lists: () => true,
    close: () => undefined,
  };
}

export interface BasicAccessDeps {
  users: Pick<HtpasswdFile, 'verify' | 'close'>;
  rules: AccessRules;
}

/** `auth.mode: basic`. */
export function basicAccess({ users, rules }: BasicAccessDeps): AccessControl {
  const decide = (client: Client, upstream: string, repository: string): Verdict => {
    const decision = rules.decide({ user: client.user, upstream, repository });
    return decision.decision === 'allow' ? decision : { decision: 'deny', code: decision.code, reason: decision.reason };
  };
  return {
    mode: 'basic',
    async authenticate(authorization) {
      if (authorization === undefined) return anonymousClient;
      const credentials = parseBasicAuthorization(authorization);
      // Malformed, another scheme, or an empty user (`Basic Og==`, what some clients send with no credentials): anonymous.
      if (credentials === undefined) return anonymousClient;
      if (!(await users.verify(credentials.username, credentials.password))) {
        throw verdictError({ decision: 'deny', code: 'UNAUTHORIZED', reason: 'bad credentials' });
      }
      return { user: credentials.username, credentials: undefined };
    },
    login: (client) =>
      Promise.resolve<Verdict>(
        client.user === undefined
          ? { decision: 'deny', code: 'UNAUTHORIZED', reason: 'credentials required' }
          : { decision: 'allow', reason: 'credentials verified' },
      ),
    authorize: (client, target) => Promise.resolve(decide(client, target.upstreamKey, target.name)),
    scope: (_client, target) => target,
    lists: (client, upstream, name) => decide(client, upstream, name).decision === 'allow',
    close: () => users.close(),
  };
}
