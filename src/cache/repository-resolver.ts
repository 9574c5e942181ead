/**
 * Which primary a request goes to, and the repository name it knows:
 * containerd's `?ns=<host>` picks the primary that answers to that host or
 * alias, so does a first path component naming one (`/v2/ghcr.io/org/app/...`);
 * everything else goes to the default primary. The target's cache key is the
 * primary's host whatever name the client used, so every client of one
 * primary shares one cache. On a primary that is Docker Hub or mirrors it
 * (`dockerHub`), `nginx` means `library/nginx`.
 */
import { RegistryError } from '../registry/errors.ts';
import { normalizeDockerHubName } from '../registry/reference.ts';
import type { Upstream } from './ports.ts';
import type { RepositoryTarget } from './repository-target.ts';

export interface UpstreamEntry {
  /** The host clients call this registry by (`ghcr.io`, `docker.io`, `127.0.0.1:5000`). */
  host: string;
  /** Other names of the same registry (`docker.io` for `registry-1.docker.io`, or for a declared Docker Hub mirror). */
  aliases: string[];
  upstream: Upstream;
  /** Docker Hub's conventions: a one-component name is under `library/`. */
  dockerHub: boolean;
}

export class RepositoryResolver {
  private readonly byHost = new Map<string, UpstreamEntry>();

  constructor(
    private readonly fallback: UpstreamEntry,
    extra: UpstreamEntry[],
  ) {
    for (const entry of [fallback, ...extra]) {
      for (const host of [entry.host, ...entry.aliases]) this.byHost.set(host.toLowerCase(), entry);
    }
  }

  get entries(): UpstreamEntry[] {
    return [...new Set(this.byHost.values())];
  }

  /** The host (cache key) of the configured primary that answers to `host` (itself or an alias), if any. */
  keyOf(host: string): string | undefined {
    return this.byHost.get(host.toLowerCase())?.host;
  }

  resolve(name: string, ns: string | undefined): RepositoryTarget {
    let entry = this.fallback;
    let repo = name;
    if (ns !== undefined && ns !== '') {
      const named = this.byHost.get(ns.toLowerCase());
      if (!named) {
        throw new RegistryError('NAME_UNKNOWN', 'this mirror has no primary configured for that registry', { detail: { ns: ns.slice(0, 200) } });
      }
      entry = named;
    } else {
      const slash = name.indexOf('/');
      if (slash > 0) {
        const prefixed = this.byHost.get(name.slice(0, slash));
        if (prefixed && slash < name.length - 1) {
          entry = prefixed;
          repo = name.slice(slash + 1);
        }
      }
    }
    if (entry.dockerHub) repo = normalizeDockerHubName(repo);
    return { upstream: entry.upstream, upstreamKey: entry.host, name: repo };
  }
}
