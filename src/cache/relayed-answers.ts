/** Relayed answers (tag lists, referrers) kept on disk per repository, so every worker and a restarted node can serve them stale. */
import type { RelayedStore } from './pass-through-cache.ts';
import type { MetadataStore, ReferrersResponse } from './ports.ts';
import type { RepositoryTarget } from './repository-target.ts';

export class RelayedAnswers {
  constructor(private readonly metadata: MetadataStore) {}

  tagList(target: RepositoryTarget): RelayedStore<{ tags: string[] }> {
    return this.store(target, 'tags', (v) => v as { tags: string[] }, (v) => v);
  }

  referrers(target: RepositoryTarget, digest: string, artifactType: string | undefined): RelayedStore<ReferrersResponse> {
    return this.store(
      target,
      `referrers ${digest}?${artifactType ?? ''}`,
      (v) => {
        const stored = v as { body: string; mediaType: string };
        return { body: Buffer.from(stored.body, 'base64'), mediaType: stored.mediaType };
      },
      (v) => ({ body: v.body.toString('base64'), mediaType: v.mediaType }),
    );
  }

  private store<T>(target: RepositoryTarget, key: string, decode: (stored: unknown) => T, encode: (value: T) => unknown): RelayedStore<T> {
    return {
      load: async () => {
        const stored = (await this.metadata.getRelayed(target.upstreamKey, target.name, key)) as { value: unknown; fetchedAt: number } | undefined;
        return stored ? { value: decode(stored.value), fetchedAt: stored.fetchedAt } : undefined;
      },
      save: (_key, entry) => this.metadata.putRelayed(target.upstreamKey, target.name, key, { value: encode(entry.value), fetchedAt: entry.fetchedAt }),
    };
  }
}
