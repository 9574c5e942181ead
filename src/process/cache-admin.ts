/**
 * Admin operations on the host's cache, run in the cluster primary next to
 * the index owner: stats, paged listing, purges (digest, repository,
 * everything), pins (persisted in `index/pins.json`, re-resolved by a
 * worker so a moved tag moves its pin) and the verifying scrub.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { MetadataStore, PurgeScope } from '../cache/ports.ts';
import { parseDigest, tryParseDigest, type Digest } from '../registry/digest.ts';
import { RegistryError } from '../registry/errors.ts';
import { parseManifest } from '../registry/manifest-references.ts';
import { validateName } from '../registry/reference.ts';
import { writeFileAtomic } from '../storage/atomic-file.ts';
import type { CacheLayout } from '../storage/layout.ts';
import type { CacheScrub } from './cache-scrub.ts';
import type { IndexOwner } from './index-owner.ts';

export class CacheAdmin {
  private persistedPins: string[] = [];

  constructor(
    private readonly owner: IndexOwner,
    private readonly layout: CacheLayout,
    private readonly metadata: MetadataStore,
    private readonly upstreamKeys: string[],
    private readonly configPins: string[],
    private readonly scrub?: CacheScrub,
  ) {}

  private get pinsFile(): string {
    return path.join(this.layout.root, 'index', 'pins.json');
  }

  async loadPins(): Promise<void> {
    try {
      const parsed = JSON.parse(await readFile(this.pinsFile, 'utf8')) as unknown;
      if (Array.isArray(parsed)) this.persistedPins = parsed.filter((p): p is string => typeof p === 'string');
    } catch {
      this.persistedPins = [];
    }
  }

  /** Every reference to keep pinned: from the config file and from the admin API. */
  pinnedReferences(): string[] {
    return [...new Set([...this.configPins, ...this.persistedPins])];
  }

  async call(op: string, args: Record<string, unknown>): Promise<unknown> {
    switch (op) {
      case 'stats':
        return this.owner.stats();
      case 'list':
        return this.owner.list(Number(args.limit ?? 100), Number(args.cursor ?? 0));
      // Each purge says what it removed (`scope`), so the primary can make every worker forget it from memory too.
      case 'purge': {
        if (typeof args.digest === 'string') {
          const digest = parseDigest(args.digest);
          return { ...(await this.owner.purgeDigests([digest])), scope: { kind: 'some', digests: [digest], repositories: [] } satisfies PurgeScope };
        }
        if (typeof args.repository === 'string') {
          const name = validateName(args.repository);
          const { digests, ...result } = await this.purgeRepository(name);
          const repositories = this.upstreamKeys.map((upstream) => ({ upstream, name }));
          return { ...result, scope: { kind: 'some', digests, repositories } satisfies PurgeScope };
        }
        if (args.all === true) return { ...(await this.owner.purgeAll()), scope: { kind: 'all' } satisfies PurgeScope };
        throw new RegistryError('UNSUPPORTED', 'unknown purge');
      }
      case 'pin': {
        const reference = String(args.reference);
        const digests = Array.isArray(args.digests) ? args.digests.map(tryParseDigest).filter((d): d is Digest => d !== undefined) : [];
        this.owner.setPin(reference, digests);
        if (args.persist === true && !this.persistedPins.includes(reference)) {
          this.persistedPins.push(reference);
          await this.savePins();
        }
        return { reference, digests: digests.length };
      }
      case 'unpin': {
        const reference = String(args.reference);
        const removed = this.owner.unpin(reference);
        this.persistedPins = this.persistedPins.filter((p) => p !== reference);
        await this.savePins();
        return { reference, removed };
      }
      case 'pins':
        return { pins: this.owner.pins(), configured: this.pinnedReferences() };
      case 'verify':
        if (!this.scrub) throw new RegistryError('UNSUPPORTED', 'this node cannot verify its cache');
        return this.scrub.start('all');
      case 'verifyStatus':
        if (!this.scrub) throw new RegistryError('UNSUPPORTED', 'this node cannot verify its cache');
        return this.scrub.status();
      default:
        throw new RegistryError('UNSUPPORTED', `unknown admin operation ${op}`);
    }
  }

  private async savePins(): Promise<void> {
    await writeFileAtomic(this.pinsFile, JSON.stringify(this.persistedPins), this.layout.ingestDir);
  }

  /**
   * Removes a repository's tags and manifests, and the blobs no other
   * cached repository references.
   */
  private async purgeRepository(name: string): Promise<{ removed: number; bytes: number; digests: Digest[] }> {
    const own = new Set<Digest>();
    const others = new Set<Digest>();
    for (const upstream of this.upstreamKeys) {
      for (const repo of await this.metadata.listRepositories(upstream)) {
        const target = repo === name ? own : others;
        for (const digest of await this.metadata.listManifestLinks(upstream, repo)) {
          for (const ref of await this.closure(digest)) target.add(ref);
        }
      }
    }
    const digests = [...own].filter((d) => !others.has(d));
    const result = await this.owner.purgeDigests(digests);
    for (const upstream of this.upstreamKeys) await this.metadata.removeRepository(upstream, name);
    return { ...result, digests };
  }

  /**
   * A manifest and everything it references (children of an index
   * included), as far as the cache holds them. References come only from the
   * validating walker: a cached manifest that does not parse is a leaf.
   */
  private async closure(digest: Digest): Promise<Digest[]> {
    const seen = new Set<Digest>([digest]);
    const pending = [digest];
    while (pending.length > 0) {
      const current = pending.pop()!;
      const meta = await this.metadata.getManifestMeta(current);
      if (!meta) continue; // a layer or config, or not cached
      let references;
      try {
        references = parseManifest(await readFile(this.layout.blobPath(current)), meta.mediaType);
      } catch {
        continue;
      }
      for (const blob of references.blobs) seen.add(blob.digest);
      for (const child of references.manifests) {
        if (seen.has(child.digest)) continue;
        seen.add(child.digest);
        pending.push(child.digest);
      }
    }
    return [...seen];
  }
}
