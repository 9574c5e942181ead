/** `/v2/_catalog`: the repositories present in this node's cache, paginated with `n`/`last`. */
import type { MetadataStore } from './ports.ts';

export interface CatalogSource {
  /** The cache key of the primary. */
  upstreamKey: string;
  /** How names of this primary are shown (`''` for the default primary, `ghcr.io/` for others). */
  prefix: string;
}

export class CatalogService {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly sources: CatalogSource[],
  ) {}

  /** Every cached repository, or those `include` keeps (given the primary's key and the name it knows). */
  async list(include: (upstreamKey: string, name: string) => boolean = () => true): Promise<string[]> {
    const names: string[] = [];
    for (const source of this.sources) {
      for (const name of await this.metadata.listRepositories(source.upstreamKey)) {
        if (include(source.upstreamKey, name)) names.push(source.prefix + name);
      }
    }
    return names.sort();
  }
}

/** Applies `n`/`last` pagination to a sorted list; `next` is the last item returned when more remain. */
export function paginate(items: string[], n: number | undefined, last: string | undefined): { items: string[]; next: string | undefined } {
  let start = 0;
  if (last !== undefined) {
    start = items.findIndex((item) => item > last);
    if (start < 0) start = items.length;
  }
  if (n === undefined) return { items: items.slice(start), next: undefined };
  const page = items.slice(start, start + n);
  const more = start + n < items.length && page.length > 0;
  return { items: page, next: more ? page[page.length - 1] : undefined };
}
