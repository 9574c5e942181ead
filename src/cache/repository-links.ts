/**
 * Which repository may serve which content by digest, as registries keep it
 * (distribution's `_manifests/revisions` and `_layers` links).
 *
 * Content is stored once, by digest, whatever repository it came from; a
 * repository serves a manifest or blob by digest only when it links it. A
 * link is written when the primary vouched for it under that repository:
 *
 * - it served the manifest, or the blob, under that repository;
 * - or it served a manifest of that repository that references it (an
 *   image's config and layers, an index's child manifests, through the
 *   validating walker of registry/manifest-references.ts).
 *
 * A digest asked under a repository that does not link it is asked of the
 * primary under that repository (like a miss) before anything cached is
 * served: `/v2/other/repo/blobs/<a layer of a private image>` is never
 * answered from the cache unless the primary says `other/repo` has it.
 *
 * Links only ever get added (a purge removes a repository's links in every
 * process), so a link seen once is remembered in memory.
 */
import { LRUCache } from 'lru-cache';
import type { Digest } from '../registry/digest.ts';
import type { ParsedManifest } from '../registry/manifest-references.ts';
import { isDiskWriteError, keyInRepositories, type LinkKind, type Logger, type MetadataStore, type PurgeScope } from './ports.ts';
import type { RepositoryTarget } from './repository-target.ts';

/** What a link is keyed by: a repository of one primary. */
export type LinkTarget = Pick<RepositoryTarget, 'upstreamKey' | 'name'>;

export interface RepositoryLinksOptions {
  metadata: Pick<MetadataStore, 'linkManifest' | 'linkBlob' | 'hasLink'>;
  logger: Logger;
  /** Links remembered per process. Default 200 000. */
  maxRemembered?: number;
}

export class RepositoryLinks {
  readonly #metadata: RepositoryLinksOptions['metadata'];
  readonly #logger: Logger;
  readonly #known: LRUCache<string, true>;

  constructor(options: RepositoryLinksOptions) {
    this.#metadata = options.metadata;
    this.#logger = options.logger;
    this.#known = new LRUCache({ max: options.maxRemembered ?? 200_000 });
  }

  /** Whether the repository links that manifest or blob. */
  async has(target: LinkTarget, kind: LinkKind, digest: Digest): Promise<boolean> {
    const key = keyOf(target, kind, digest);
    if (this.#known.has(key)) return true;
    if (!(await this.#metadata.hasLink(target.upstreamKey, target.name, kind, digest))) return false;
    this.#known.set(key, true);
    return true;
  }

  /**
   * Links a manifest or blob to the repository. A disk that cannot take the
   * link costs a later HEAD to the primary, not the pull: logged, not thrown.
   */
  async add(target: LinkTarget, kind: LinkKind, digest: Digest): Promise<void> {
    const key = keyOf(target, kind, digest);
    if (this.#known.has(key)) return;
    try {
      if (kind === 'manifest') await this.#metadata.linkManifest(target.upstreamKey, target.name, digest);
      else await this.#metadata.linkBlob(target.upstreamKey, target.name, digest);
      this.#known.set(key, true);
    } catch (err) {
      if (!isDiskWriteError(err)) throw err;
      this.#logger.warn({ repository: target.name, upstream: target.upstreamKey, digest, code: (err as { code?: unknown }).code }, 'could not record repository link');
    }
  }

  /** Links everything a manifest of the repository references: its config and layers, or an index's child manifests. */
  async addReferences(target: LinkTarget, manifest: ParsedManifest): Promise<void> {
    await Promise.all([
      ...manifest.blobs.map((blob) => this.add(target, 'blob', blob.digest)),
      ...manifest.manifests.map((child) => this.add(target, 'manifest', child.digest)),
    ]);
  }

  /** Forgets purged links remembered in this process. */
  forget(scope: PurgeScope): void {
    if (scope.kind === 'all') {
      this.#known.clear();
      return;
    }
    const purged = new Set<string>(scope.digests);
    for (const key of [...this.#known.keys()]) {
      if (purged.has(key.slice(key.lastIndexOf('/') + 1)) || keyInRepositories(key, scope.repositories)) this.#known.delete(key);
    }
  }
}

/** `<upstream>/<name>@<kind>/<digest>`: a repository key as keyInRepositories reads it. */
function keyOf(target: LinkTarget, kind: LinkKind, digest: Digest): string {
  return `${target.upstreamKey}/${target.name}@${kind}/${digest}`;
}
