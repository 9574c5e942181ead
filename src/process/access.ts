/**
 * Builds the access control `auth.mode` asks for (auth/access-control.ts).
 * Rule upstreams are written as clients name registries (`docker.io`,
 * `ghcr.io`); they are rewritten here to the cache key of the primary that
 * answers to that name, which is what requests are decided with.
 */
import { basicAccess, openAccess, type AccessControl, type Verdict } from '../auth/access-control.ts';
import { AccessRules } from '../auth/access-rules.ts';
import type { AuthConfig } from '../auth/config.ts';
import { DecisionCache } from '../auth/decision-cache.ts';
import { HtpasswdFile } from '../auth/htpasswd.ts';
import { upstreamAccess, type PrimaryForClients } from '../auth/upstream-access.ts';
import type { Clock, Logger } from '../cache/ports.ts';
import type { RepositoryResolver } from '../cache/repository-resolver.ts';

export interface AccessWiring {
  resolver: RepositoryResolver;
  /** Every primary by cache key, as clients reach it (upstream mode). */
  primaries: ReadonlyMap<string, PrimaryForClients>;
  /** The default primary's cache key. */
  defaultUpstream: string;
  clock: Clock;
  logger: Logger;
}

export async function createAccessControl(config: AuthConfig, { resolver, primaries, defaultUpstream, clock, logger }: AccessWiring): Promise<AccessControl> {
  switch (config.mode) {
    case 'none':
      return openAccess();
    case 'basic': {
      const rules = new AccessRules({
        ...config,
        rules: config.rules.map((rule) => ({
          ...rule,
          // Configuration checked that each names a configured primary; an unknown one would grant nothing.
          upstreams: rule.upstreams?.map((host) => resolver.keyOf(host) ?? host),
        })),
      });
      // In basic mode the decision reused is "this password is right": trusted for cacheDecisions without bcrypt.
      const users = await HtpasswdFile.open({ path: config.htpasswd!, verifiedTtlMs: config.cacheDecisionsMs }, { clock, logger });
      logger.info({ mode: 'basic', users: users.userCount, rules: config.rules.length, anonymous: config.anonymous.length }, 'access control on');
      return basicAccess({ users, rules });
    }
    case 'upstream':
      logger.info({ mode: 'upstream', cacheDecisionsMs: config.cacheDecisionsMs }, 'access control on: the primary checks each client');
      return upstreamAccess({ primaries, defaultUpstream, decisions: new DecisionCache<Verdict>({ ttlMs: config.cacheDecisionsMs }, { clock }) });
  }
}
