/**
 * Admin operations on the host's cache, run in the cluster primary next to
 * the eviction service: stats, paged listing, purges (digest, repository,
 * everything), pins (saved through the {@link PinStore}, re-resolved by a
 * worker so a moved tag moves its pin) and the verifying scrub.
 *
 * Each purge answers with its `scope` (what it removed), so the primary can
 * make every worker forget it from memory too before it answers.
 */
import type { Digest } from '../registry/digest.ts';
import type { AdminRequest } from './admin-request.ts';
import { RegistryError } from '../registry/errors.ts';
import type { CacheScrub } from './cache-scrub.ts';
import type { EvictionService } from './eviction-service.ts';
import type { MetadataStore, PinStore, PurgeScope } from './ports.ts';
import type { PurgePlanner } from './purge-planner.ts';

export interface CacheAdminServiceOptions {
  evictions: EvictionService;
  planner: PurgePlanner;
  metadata: Pick<MetadataStore, 'removeRepository' | 'removeAllRepositories'>;
  pins: PinStore;
  /** Every upstream whose repositories the cache holds. */
  upstreamKeys: string[];
  /** Pins from the configuration file (never saved). */
  configPins: string[];
  scrub?: CacheScrub;
}

export class CacheAdminService {
  private savedPins: string[] = [];

  constructor(private readonly options: CacheAdminServiceOptions) {}

  async loadPins(): Promise<void> {
    this.savedPins = await this.options.pins.load();
  }

  /** Every reference to keep pinned: from the config file and from the admin API. */
  pinnedReferences(): string[] {
    return [...new Set([...this.options.configPins, ...this.savedPins])];
  }

  async handle(request: AdminRequest): Promise<unknown> {
    const { evictions, scrub } = this.options;
    switch (request.op) {
      case 'stats':
        return evictions.stats();
      case 'list':
        return evictions.list(request.limit, request.cursor);
      // Each purge says what it removed (`scope`), so the primary can make every worker forget it from memory too.
      case 'purge': {
        const { target } = request;
        if ('digest' in target) {
          return { ...(await evictions.purgeDigests([target.digest])), scope: { kind: 'some', digests: [target.digest], repositories: [] } satisfies PurgeScope };
        }
        if ('repository' in target) {
          const { digests, ...result } = await this.purgeRepository(target.repository);
          const repositories = this.options.upstreamKeys.map((upstream) => ({ upstream, name: target.repository }));
          return { ...result, scope: { kind: 'some', digests, repositories } satisfies PurgeScope };
        }
        const result = await evictions.purgeAll();
        await this.options.metadata.removeAllRepositories();
        return { ...result, scope: { kind: 'all' } satisfies PurgeScope };
      }
      case 'pin': {
        const { reference, digests } = request;
        evictions.setPin(reference, digests);
        if (request.persist && !this.savedPins.includes(reference)) {
          this.savedPins.push(reference);
          await this.options.pins.save(this.savedPins);
        }
        return { reference, digests: digests.length };
      }
      case 'unpin': {
        const { reference } = request;
        const removed = evictions.unpin(reference);
        this.savedPins = this.savedPins.filter((p) => p !== reference);
        await this.options.pins.save(this.savedPins);
        return { reference, removed };
      }
      case 'pins':
        return { pins: evictions.pins(), configured: this.pinnedReferences() };
      case 'verify':
        if (!scrub) throw new RegistryError('UNSUPPORTED', 'this node cannot verify its cache');
        return scrub.start('all');
      case 'verifyStatus':
        if (!scrub) throw new RegistryError('UNSUPPORTED', 'this node cannot verify its cache');
        return scrub.status();
    }
  }

  /** Removes a repository's tags and manifests, and the blobs no other cached repository references. */
  private async purgeRepository(name: string): Promise<{ removed: number; bytes: number; digests: Digest[] }> {
    const digests = await this.options.planner.repository(name);
    const result = await this.options.evictions.purgeDigests(digests);
    for (const upstream of this.options.upstreamKeys) await this.options.metadata.removeRepository(upstream, name);
    return { ...result, digests };
  }
}
