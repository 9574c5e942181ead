/**
 * Manifests and tags.
 *
 * Digest-addressed manifests are immutable: once verified and on disk they
 * are served without asking the primary. A tag→digest answer is trusted for
 * the tag TTL, then revalidated with a HEAD; when the primary is down, hangs
 * (bounded by the revalidate timeout), answers 5xx or 429, the last known
 * answer is served (stale-if-error) and counted. A tag is only ever answered
 * with a manifest whose bytes are on disk, so HEAD and GET always agree.
 *
 * In a replica set, tag answers are shared: a replica whose own answer is
 * stale first looks for one another replica got from the primary within the
 * TTL, and reuses it without asking the primary. The digest it names is
 * trusted only once the manifest bytes verify against it: from this disk, a
 * replica that holds them, or the primary by digest.
 */
import { LRUCache } from 'lru-cache';
import { digestAlgorithm, digestOf, type Digest } from '../registry/digest.ts';
import { RegistryError } from '../registry/errors.ts';
import { parseManifest, type ParsedManifest } from '../registry/manifest-references.ts';
import type { Reference } from '../registry/reference.ts';
import type { BlobStore, CacheIndexReporter, CacheObserver, CacheResult, Clock, Logger, ManifestResponse, MetadataStore, PurgeScope, SharedTags, TagRecord } from './ports.ts';
import { isDiskWriteError, isUpstreamError, isUpstreamOutage, keyInRepositories, noopIndexReporter } from './ports.ts';
import type { RepositoryLinks } from './repository-links.ts';
import type { RepositoryTarget } from './repository-target.ts';
import { SingleFlight } from './single-flight.ts';
import { toRegistryError } from './upstream-failure.ts';

export interface Manifest {
  digest: Digest;
  mediaType: string;
  body: Buffer;
}

export interface ManifestAnswer extends Manifest {
  result: CacheResult;
}

export interface ManifestServiceOptions {
  blobs: BlobStore;
  metadata: MetadataStore;
  clock: Clock;
  observer: CacheObserver;
  logger: Logger;
  tagTtlMs: number;
  /** Longest a client waits for a revalidation before the last known answer is served. */
  revalidateTimeoutMs: number;
  maxManifestBytes: number;
  /** Which repository may serve which manifest and blob by digest. */
  links: RepositoryLinks;
  /** Bytes of manifest bodies kept in memory per process. */
  memoryBytes?: number;
  index?: CacheIndexReporter;
  /** Tag answers shared by the replica set (Redis). */
  sharedTags?: SharedTags;
  /** Manifest bytes by digest from other replicas (peer-manifests.ts), asked before the primary. */
  peers?: { fetch(digest: Digest, maxBytes: number, signal: AbortSignal): Promise<ManifestResponse | undefined> };
}

interface TagEntry extends TagRecord {
  /** Until when a failed revalidation keeps us from asking the primary again. */
  backoffUntil?: number;
}

export class ManifestService {
  private readonly bodies: LRUCache<string, Manifest>;
  private readonly tags = new LRUCache<string, TagEntry>({ max: 50_000 });
  private readonly tagFlights = new SingleFlight<ManifestAnswer>();
  private readonly digestFlights = new SingleFlight<Manifest>();
  private readonly index: CacheIndexReporter;
  /** Manifests whose references this process already linked to a repository: a hit must not cost disk writes. */
  private readonly linked = new LRUCache<string, true>({ max: 100_000 });

  constructor(private readonly options: ManifestServiceOptions) {
    this.index = options.index ?? noopIndexReporter;
    this.bodies = new LRUCache<string, Manifest>({
      maxSize: options.memoryBytes ?? 16 * 1024 * 1024,
      sizeCalculation: (m) => m.body.byteLength + 200,
    });
  }

  /** Drops purged manifests, tag answers and repository links from this process's memory. */
  forget(scope: PurgeScope): void {
    if (scope.kind === 'all') {
      this.bodies.clear();
      this.tags.clear();
      this.linked.clear();
      return;
    }
    for (const digest of scope.digests) this.bodies.delete(digest);
    const purged = new Set<string>(scope.digests);
    for (const [key, record] of this.tags.entries()) {
      if (purged.has(record.digest) || keyInRepositories(key, scope.repositories)) this.tags.delete(key);
    }
    for (const key of [...this.linked.keys()]) {
      if (purged.has(key.slice(key.lastIndexOf('@') + 1)) || keyInRepositories(key, scope.repositories)) this.linked.delete(key);
    }
  }

  async get(target: RepositoryTarget, reference: Reference, signal: AbortSignal): Promise<ManifestAnswer> {
    if (reference.kind === 'digest') return this.byDigest(target, reference.digest, signal);
    return this.byTag(target, reference.tag, signal);
  }

  /**
   * A manifest by digest: from memory or disk when this repository links it,
   * else fetched once and verified. A cached manifest this repository does
   * not link is served only once the primary confirms (HEAD) that the
   * repository has it.
   */
  async byDigest(target: RepositoryTarget, digest: Digest, signal: AbortSignal): Promise<ManifestAnswer> {
    const local = await this.local(digest);
    if (local) {
      if (!(await this.options.links.has(target, 'manifest', digest))) await this.confirm(target, digest, signal);
      await this.link(target, local);
      this.options.observer.cacheResult('manifest', 'hit');
      return { ...local, result: 'hit' };
    }
    try {
      const fetched = await this.digestFlights.run(`${target.upstreamKey}/${target.name}@${digest}`, () =>
        this.fetch(target, digest, digest, AbortSignal.timeout(this.options.revalidateTimeoutMs * 6)),
      );
      this.options.observer.cacheResult('manifest', 'miss');
      return { ...fetched, result: 'miss' };
    } catch (err) {
      throw this.failure(err);
    }
  }

  private async byTag(target: RepositoryTarget, tag: string, signal: AbortSignal): Promise<ManifestAnswer> {
    const key = `${target.upstreamKey}/${target.name}:${tag}`;
    const now = this.options.clock.now();
    let record: TagEntry | undefined = this.tags.get(key);
    if (!record || !this.fresh(record, now)) {
      // Another worker may have refreshed the answer on disk.
      const disk = await this.options.metadata.getTag(target.upstreamKey, target.name, tag);
      if (disk && (!record || disk.fetchedAt > record.fetchedAt)) {
        record = { ...disk, backoffUntil: record?.backoffUntil };
        this.tags.set(key, record);
      }
    }
    if (record && this.fresh(record, now)) {
      const local = await this.local(record.digest);
      if (local) {
        // A cache written before blob links existed gets them on the first hit.
        await this.link(target, local);
        this.options.observer.cacheResult('tag', 'hit');
        return { ...local, result: 'hit' };
      }
    }
    const known = record;
    return this.tagFlights.run(key, () => this.revalidate(target, tag, key, known));
  }

  private fresh(record: TagEntry, now: number): boolean {
    return now - record.fetchedAt < this.options.tagTtlMs || (record.backoffUntil ?? 0) > now;
  }

  /**
   * An answer another replica got from the primary within the TTL, newer
   * than ours: served once its manifest bytes verify, without asking the
   * primary about the tag. Undefined when there is none or it cannot be used.
   */
  private async fromSharedTag(target: RepositoryTarget, tag: string, key: string, known: TagEntry | undefined): Promise<ManifestAnswer | undefined> {
    const { sharedTags, clock, observer, logger } = this.options;
    if (sharedTags === undefined) return undefined;
    const shared = await sharedTags.get(target.upstreamKey, target.name, tag).catch(() => undefined);
    if (shared === undefined) return undefined;
    const now = clock.now();
    const record: TagEntry = { ...shared, fetchedAt: Math.min(shared.fetchedAt, now) };
    if (now - record.fetchedAt >= this.options.tagTtlMs || (known !== undefined && record.fetchedAt <= known.fetchedAt)) return undefined;
    try {
      const manifest =
        (await this.local(record.digest)) ??
        (await this.digestFlights.run(`${target.upstreamKey}/${target.name}@${record.digest}`, () =>
          this.fetch(target, record.digest, record.digest, AbortSignal.timeout(this.options.revalidateTimeoutMs * 6), record.mediaType),
        ));
      await this.remember(target, tag, key, record);
      void this.link(target, manifest);
      observer.cacheResult('tag', 'hit');
      logger.debug({ repository: target.name, tag, digest: record.digest }, 'tag answer shared by another replica');
      return { ...manifest, result: 'hit' };
    } catch (err) {
      logger.debug({ repository: target.name, tag, err: String((err as Error)?.message ?? err) }, 'could not use a shared tag answer; asking the primary');
      return undefined;
    }
  }

  /** Asks the primary about a tag; serves the last known answer if it cannot. Not tied to any one client. */
  private async revalidate(target: RepositoryTarget, tag: string, key: string, known: TagEntry | undefined): Promise<ManifestAnswer> {
    const shared = await this.fromSharedTag(target, tag, key, known);
    if (shared) return shared;
    const { observer, logger, clock } = this.options;
    const stale = known ? await this.local(known.digest) : undefined;
    // With a usable stale answer, a hung primary may hold the client only for the revalidate timeout.
    const signal = AbortSignal.timeout(stale ? this.options.revalidateTimeoutMs : this.options.revalidateTimeoutMs * 6);
    try {
      if (stale && known) {
        const head = await target.upstream.headManifest(target.name, tag, signal);
        if (head.digest === known.digest) {
          await this.remember(target, tag, key, { ...known, fetchedAt: clock.now(), backoffUntil: undefined }, true);
          await this.link(target, stale);
          observer.cacheResult('tag', 'revalidated');
          return { ...stale, result: 'revalidated' };
        }
      }
      const fetched = await this.fetch(target, tag, undefined, signal);
      await this.remember(
        target,
        tag,
        key,
        {
          digest: fetched.digest,
          mediaType: fetched.mediaType,
          size: fetched.body.byteLength,
          fetchedAt: clock.now(),
        },
        true,
      );
      observer.cacheResult('tag', 'miss');
      return { ...fetched, result: 'miss' };
    } catch (err) {
      if (stale && known && isUpstreamOutage(err)) {
        const reason = isUpstreamError(err) ? err.code : 'error';
        this.tags.set(key, { ...known, backoffUntil: clock.now() + Math.min(this.options.tagTtlMs, 30_000) });
        observer.staleServed('tag', reason);
        observer.cacheResult('tag', 'stale');
        logger.warn({ repository: target.name, tag, digest: known.digest, reason }, 'primary unavailable; serving last known tag answer');
        await this.link(target, stale);
        return { ...stale, result: 'stale' };
      }
      throw this.failure(err);
    }
  }

  /** Keeps a tag answer in memory and on disk; `share`: the primary just gave it, so the other replicas may reuse it. */
  private async remember(target: RepositoryTarget, tag: string, key: string, record: TagEntry, share = false): Promise<void> {
    this.tags.set(key, record);
    const { backoffUntil: _ignored, ...persisted } = record;
    if (share) this.options.sharedTags?.put(target.upstreamKey, target.name, tag, persisted);
    try {
      await this.options.metadata.putTag(target.upstreamKey, target.name, tag, persisted);
    } catch (err) {
      if (!isDiskWriteError(err)) throw err;
      this.options.observer.cacheWriteFailed(String((err as { code?: unknown }).code));
    }
  }

  /**
   * GETs a manifest upstream, verifies it against `expected` (by digest) or
   * Docker-Content-Digest (by tag), validates every descriptor in it, and
   * stores it. A manifest that fails any check is never cached.
   */
  private async fetch(target: RepositoryTarget, reference: string, expected: Digest | undefined, signal: AbortSignal, mediaTypeHint?: string): Promise<Manifest> {
    const fromPeer = expected === undefined ? undefined : await this.options.peers?.fetch(expected, this.options.maxManifestBytes, signal);
    if (fromPeer !== undefined && fromPeer.mediaType === '' && mediaTypeHint !== undefined) fromPeer.mediaType = mediaTypeHint;
    const response = fromPeer ?? (await target.upstream.getManifest(target.name, reference, this.options.maxManifestBytes, signal));
    const actual = digestOf(response.body, expected ? digestAlgorithm(expected) : 'sha256');
    if (expected && actual !== expected) {
      this.options.observer.upstreamFailure('DIGEST_MISMATCH');
      throw new RegistryError('UPSTREAM_UNAVAILABLE', 'the primary sent a manifest that does not match its digest', {
        detail: { digest: expected },
      });
    }
    if (!expected && response.digest !== undefined && response.digest !== actual && response.digest.startsWith('sha256:')) {
      this.options.observer.upstreamFailure('DIGEST_MISMATCH');
      throw new RegistryError('UPSTREAM_UNAVAILABLE', 'the primary sent a manifest that does not match Docker-Content-Digest');
    }
    const parsed = this.validate(target, reference, response.body, response.mediaType);
    const manifest: Manifest = { digest: actual, mediaType: parsed.mediaType, body: response.body };
    this.bodies.set(actual, manifest);
    try {
      await this.options.metadata.putManifestMeta(actual, { mediaType: parsed.mediaType, size: response.body.byteLength });
      const onDisk = await this.options.blobs.put(actual, response.body);
      this.index.added(actual, onDisk, 'manifest', response.body.byteLength);
      await this.link(target, manifest, parsed);
    } catch (err) {
      if (!isDiskWriteError(err)) throw err;
      // A full or broken disk must not stop pulls: serve what we verified, uncached.
      this.options.observer.cacheWriteFailed(String((err as { code?: unknown }).code));
      this.options.logger.warn({ digest: actual, code: (err as { code?: unknown }).code }, 'cache not writable; manifest served uncached');
    }
    return manifest;
  }

  /** Every descriptor of a manifest from the primary must parse; otherwise it is refused (502) and never cached. */
  private validate(target: RepositoryTarget, reference: string, body: Buffer, contentType: string | undefined): ParsedManifest {
    try {
      return parseManifest(body, contentType);
    } catch (err) {
      if (!(err instanceof RegistryError)) throw err;
      this.options.observer.upstreamFailure('MANIFEST_INVALID');
      this.options.logger.warn(
        { repository: target.name, reference, upstream: target.upstreamKey, reason: err.message },
        'the primary sent an invalid manifest; refused, nothing cached',
      );
      throw new RegistryError('UPSTREAM_UNAVAILABLE', 'the primary sent an invalid manifest', {
        detail: { code: 'MANIFEST_INVALID', ...(err.detail as Record<string, unknown>) },
      });
    }
  }

  /** The primary says whether this repository has a manifest cached from elsewhere; rejects as the primary's answer (404: MANIFEST_UNKNOWN). */
  private async confirm(target: RepositoryTarget, digest: Digest, signal: AbortSignal): Promise<void> {
    try {
      await target.upstream.headManifest(target.name, digest, AbortSignal.any([signal, AbortSignal.timeout(this.options.revalidateTimeoutMs * 6)]));
    } catch (err) {
      throw this.failure(err);
    }
  }

  /** Links the manifest and everything it references to the repository (once per process). */
  private async link(target: RepositoryTarget, manifest: Manifest, parsed?: ParsedManifest): Promise<void> {
    const key = `${target.upstreamKey}/${target.name}@${manifest.digest}`;
    if (this.linked.has(key)) return;
    let references: ParsedManifest | undefined = parsed;
    try {
      references ??= parseManifest(manifest.body, manifest.mediaType);
    } catch (err) {
      // Verified when it was cached, so this does not happen; the manifest itself still links.
      this.options.logger.warn({ digest: manifest.digest, err: String(err) }, 'cached manifest does not parse; its references are not linked');
    }
    const { links } = this.options;
    await Promise.all([links.add(target, 'manifest', manifest.digest), references ? links.addReferences(target, references) : undefined]);
    this.linked.set(key, true);
  }

  /** A verified manifest from memory or disk. */
  private async local(digest: Digest): Promise<Manifest | undefined> {
    const cached = this.bodies.get(digest);
    if (cached) {
      this.index.touched(digest);
      return cached;
    }
    const meta = await this.options.metadata.getManifestMeta(digest);
    if (!meta) return undefined;
    const blob = await this.options.blobs.open(digest);
    if (!blob) return undefined;
    try {
      const body = await blob.readAll();
      const manifest = { digest, mediaType: meta.mediaType, body };
      this.bodies.set(digest, manifest);
      this.index.touched(digest);
      return manifest;
    } finally {
      await blob.close();
    }
  }

  /** The client's error; the failed upstream call was counted by the instrumented Upstream already. */
  private failure(err: unknown): RegistryError {
    return toRegistryError(err, 'MANIFEST_UNKNOWN');
  }
}
