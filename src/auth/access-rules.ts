/**
 * The decision of `auth.mode: basic`: may this client pull from this
 * repository of this upstream?
 *
 *   1. A repository matching an `anonymous` pattern is allowed to anyone,
 *      with or without credentials, on every upstream.
 *   2. Otherwise a client without credentials is refused with 401, so that
 *      it sends some (the caller adds the Basic challenge).
 *   3. A user is allowed when any rule grants it: the rule names the user or
 *      one of the user's groups, applies to the upstream (no `upstreams` means
 *      every upstream), and its `repositories` patterns match.
 *   4. Otherwise 403 DENIED.
 *
 * The caller authenticates first: `user` is a name whose password was
 * verified, or undefined when the request carried no credentials. A request
 * with credentials that do not verify is the caller's 401, whatever the
 * repository (as PRODUCT.md says: no or bad credentials, 401).
 *
 * Access is granted per repository, not per tag: a blob by digest has no
 * tag. Patterns are those of registry/image-pattern.ts, compiled once here.
 */
import { matchRepository, parseImagePatterns, type ImagePattern } from '../registry/image-pattern.ts';

/** One rule as configured: it grants pull on `repositories` to `users` and members of `groups`. */
export interface AccessRuleConfig {
  repositories: readonly string[];
  users?: readonly string[];
  groups?: readonly string[];
  /** Hosts of the upstreams the rule applies to; undefined means every upstream. */
  upstreams?: readonly string[];
}

/** The slice of `auth:` this module reads. */
export interface AccessRulesConfig {
  /** Repository patterns anyone may pull without credentials. */
  anonymous: readonly string[];
  /** Members by group name. */
  groups: Readonly<Record<string, readonly string[]>>;
  rules: readonly AccessRuleConfig[];
}

export interface AccessRequest {
  /** A verified user name, or undefined when the request carried no credentials. */
  user: string | undefined;
  /** Host of the upstream the request goes to, as configured (`docker.io`, `ghcr.io`). */
  upstream: string;
  repository: string;
}

export type AccessDecision =
  | { decision: 'allow'; reason: string }
  | {
      decision: 'deny';
      /** 401: ask for credentials (with the Basic challenge); 403: these credentials may not. */
      status: 401 | 403;
      code: 'UNAUTHORIZED' | 'DENIED';
      reason: string;
    };

interface CompiledRule {
  /** Position in the configuration, for reasons in the audit log. */
  index: number;
  repositories: ImagePattern[];
  users: ReadonlySet<string>;
  groups: ReadonlySet<string>;
  upstreams: ReadonlySet<string> | undefined;
}

export class AccessRules {
  readonly #anonymous: ImagePattern[];
  readonly #rules: CompiledRule[];
  /** Groups by member. */
  readonly #groupsOf = new Map<string, Set<string>>();

  /** Compiles the rules; throws an ImagePatternError on a malformed pattern (configuration validation refuses those first). */
  constructor(config: AccessRulesConfig) {
    this.#anonymous = parseImagePatterns(config.anonymous);
    for (const [group, members] of Object.entries(config.groups)) {
      for (const member of members) {
        let groups = this.#groupsOf.get(member);
        if (groups === undefined) this.#groupsOf.set(member, (groups = new Set()));
        groups.add(group);
      }
    }
    this.#rules = config.rules.map((rule, index) => ({
      index,
      repositories: parseImagePatterns(rule.repositories),
      users: new Set(rule.users ?? []),
      groups: new Set(rule.groups ?? []),
      upstreams: rule.upstreams === undefined ? undefined : new Set(rule.upstreams.map((host) => host.toLowerCase())),
    }));
  }

  decide(request: AccessRequest): AccessDecision {
    const { user, repository } = request;
    const upstream = request.upstream.toLowerCase();
    if (matchRepository(this.#anonymous, repository)) {
      return { decision: 'allow', reason: 'anonymous access' };
    }
    if (user === undefined) {
      return { decision: 'deny', status: 401, code: 'UNAUTHORIZED', reason: 'credentials required' };
    }
    const groups = this.#groupsOf.get(user);
    for (const rule of this.#rules) {
      if (rule.upstreams !== undefined && !rule.upstreams.has(upstream)) continue;
      const named = rule.users.has(user);
      const group = named ? undefined : firstShared(rule.groups, groups);
      if (!named && group === undefined) continue;
      if (!matchRepository(rule.repositories, repository)) continue;
      const via = named ? 'to the user' : `through group ${group}`;
      return { decision: 'allow', reason: `rules[${rule.index}] grants pull ${via}` };
    }
    return { decision: 'deny', status: 403, code: 'DENIED', reason: 'no rule grants pull on this repository' };
  }
}

function firstShared(ruleGroups: ReadonlySet<string>, userGroups: ReadonlySet<string> | undefined): string | undefined {
  if (userGroups === undefined) return undefined;
  for (const group of userGroups) if (ruleGroups.has(group)) return group;
  return undefined;
}
