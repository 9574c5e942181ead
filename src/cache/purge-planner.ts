/**
 * What a repository purge removes: the closure of the repository's cached
 * manifests (an index's children included, then every config and layer),
 * minus whatever another cached repository still references. References
 * come only from the validating walker (registry/manifest-references.ts);
 * a cached manifest that does not parse is a leaf.
 */
import type { Digest } from '../registry/digest.ts';
import { parseManifest, type ParsedManifest } from '../registry/manifest-references.ts';
import type { BlobStore, MetadataStore } from './ports.ts';

export interface PurgePlannerOptions {
  blobs: Pick<BlobStore, 'open'>;
  metadata: Pick<MetadataStore, 'listRepositories' | 'listManifestLinks' | 'getManifestMeta'>;
  /** Every upstream whose repositories the cache holds. */
  upstreamKeys: readonly string[];
}

export class PurgePlanner {
  constructor(private readonly options: PurgePlannerOptions) {}

  /** The digests a purge of repository `name` (in every upstream) removes. */
  async repository(name: string): Promise<Digest[]> {
    const { metadata, upstreamKeys } = this.options;
    const own = new Set<Digest>();
    const others = new Set<Digest>();
    for (const upstream of upstreamKeys) {
      for (const repo of await metadata.listRepositories(upstream)) {
        const target = repo === name ? own : others;
        for (const digest of await metadata.listManifestLinks(upstream, repo)) {
          for (const ref of await this.closure(digest)) target.add(ref);
        }
      }
    }
    return [...own].filter((d) => !others.has(d));
  }

  /** For every cached digest some repository leads to: those repositories (retention rules decide by them). */
  async referencingRepositories(): Promise<Map<Digest, Set<string>>> {
    const { metadata, upstreamKeys } = this.options;
    const referencedBy = new Map<Digest, Set<string>>();
    for (const upstream of upstreamKeys) {
      for (const repo of await metadata.listRepositories(upstream)) {
        for (const digest of await metadata.listManifestLinks(upstream, repo)) {
          for (const ref of await this.closure(digest)) {
            let repos = referencedBy.get(ref);
            if (repos === undefined) referencedBy.set(ref, (repos = new Set()));
            repos.add(repo);
          }
        }
      }
    }
    return referencedBy;
  }

  /** A manifest and everything it references, as far as the cache holds them. */
  private async closure(digest: Digest): Promise<Digest[]> {
    const seen = new Set<Digest>([digest]);
    const pending = [digest];
    while (pending.length > 0) {
      const references = await this.references(pending.pop()!);
      if (!references) continue;
      for (const blob of references.blobs) seen.add(blob.digest);
      for (const child of references.manifests) {
        if (seen.has(child.digest)) continue;
        seen.add(child.digest);
        pending.push(child.digest);
      }
    }
    return [...seen];
  }

  /** What a cached manifest references; undefined for a layer or config, a manifest not cached, or one that does not parse. */
  private async references(digest: Digest): Promise<ParsedManifest | undefined> {
    const meta = await this.options.metadata.getManifestMeta(digest);
    if (!meta) return undefined;
    try {
      const blob = await this.options.blobs.open(digest);
      if (!blob) return undefined;
      try {
        return parseManifest(await blob.readAll(), meta.mediaType);
      } finally {
        await blob.close();
      }
    } catch {
      return undefined;
    }
  }
}
