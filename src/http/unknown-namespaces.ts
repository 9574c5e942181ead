/**
 * containerd names the registry it wants in `?ns=<host>`; one that no
 * configured primary answers to gets 404 `NAME_UNKNOWN`. The access log
 * records every such request (`ns`, no `upstream`); this warns once per
 * `ns` and process, naming the configuration that would serve it, so the
 * mistake is found without reading every 404. The set of names already
 * warned about is bounded: past `limit`, one last warning says the rest are
 * only in the access log.
 */
import type { Logger } from '../cache/ports.ts';
import { isDockerHubHost } from '../registry/reference.ts';

const defaultLimit = 100;
const maxShownLength = 200;

export class UnknownNamespaces {
  readonly #warned = new Set<string>();
  #full = false;

  constructor(
    private readonly logger: Logger,
    private readonly limit = defaultLimit,
  ) {}

  /** A request asked for `ns`, which no primary answers to. */
  seen(ns: string): void {
    const name = ns.toLowerCase().slice(0, maxShownLength);
    if (this.#full || this.#warned.has(name)) return;
    if (this.#warned.size >= this.limit) {
      this.#full = true;
      this.logger.warn({ limit: this.limit }, 'requests name more unknown ?ns= registries than are warned about; the others are only in the access log (code NAME_UNKNOWN, no upstream)');
      return;
    }
    this.#warned.add(name);
    this.logger.warn({ ns: name, config: configToAdd(name) }, `no primary answers to ?ns=${name}: its pulls get 404 NAME_UNKNOWN`);
  }
}

/** What would make `ns` reach a primary, in the config file's words. */
export function configToAdd(ns: string): string {
  const mirror = isDockerHubHost(ns) ? `upstream: {aliases: [${ns}], dockerHub: true}` : `upstream: {aliases: [${ns}]}`;
  return `if the default primary mirrors ${ns}: ${mirror}; otherwise a registries entry: registries: [{host: ${ns}, url: https://...}]`;
}
