/**
 * Referrers of a subject manifest, for every primary.
 *
 * 1. The primary's referrers API (`GET /v2/<name>/referrers/<digest>`), asked
 *    without a filter; its index is validated entry by entry.
 * 2. A 404 there means the primary has no referrers API (distribution 2.x,
 *    many hosted registries): the index under the referrers tag schema
 *    (`<alg>-<encoded>`) is read instead. Its entries were written by
 *    clients and are not trusted: each named manifest is fetched (through
 *    the manifest cache, so verified against its digest and kept), checked to
 *    name this subject, and its descriptor rebuilt from the manifest itself.
 *    No tag means no referrers: an empty list.
 *
 * The unfiltered list is cached per subject for the tag TTL, in memory and on
 * disk, and served stale when the primary is unavailable (PassThroughCache).
 * The `artifactType` filter is applied by the HTTP layer on that list, so it
 * is always really applied.
 */
import type { Digest } from '../registry/digest.ts';
import { RegistryError } from '../registry/errors.ts';
import { mediaTypes } from '../registry/media-types.ts';
import {
  parseReferrersIndex,
  referrerOf,
  referrersIndex,
  referrersTag,
  type ReferrerDescriptor,
  type VerifiedManifest,
} from '../registry/referrers.ts';
import type { PassThroughCache } from './pass-through-cache.ts';
import { isUpstreamError, UpstreamError, type CacheResult, type Logger, type ReferrersResponse } from './ports.ts';
import type { RelayedAnswers } from './relayed-answers.ts';
import type { RepositoryTarget } from './repository-target.ts';

/** Where referrer manifests come from: verified against their digest (the manifest cache). */
export interface VerifiedManifests {
  byDigest(target: RepositoryTarget, digest: string, signal: AbortSignal): Promise<VerifiedManifest>;
}

export interface ReferrersServiceOptions {
  cache: PassThroughCache<ReferrersResponse>;
  relayed: RelayedAnswers;
  manifests: VerifiedManifests;
  logger: Logger;
  /** Largest referrers-tag index read from the primary. */
  maxIndexBytes: number;
  /** Most referrers listed for one subject. Default 1000. */
  maxReferrers?: number;
  /** Referrer manifests fetched at once when checking a tag-schema index. Default 4. */
  concurrency?: number;
}

export interface ReferrersAnswer {
  descriptors: ReferrerDescriptor[];
  result: CacheResult;
}

export class ReferrersService {
  private readonly maxReferrers: number;
  private readonly concurrency: number;

  constructor(private readonly options: ReferrersServiceOptions) {
    this.maxReferrers = options.maxReferrers ?? 1000;
    this.concurrency = options.concurrency ?? 4;
  }

  /** Every referrer of `subject` that could be validated, unfiltered. */
  async list(target: RepositoryTarget, subject: Digest): Promise<ReferrersAnswer> {
    const { value, result } = await this.options.cache.get(
      `${target.upstreamKey}/${target.name}@${subject}`,
      (signal) => this.load(target, subject, signal),
      this.options.relayed.referrers(target, subject, undefined),
    );
    // Parsed again on every answer: a stale entry on disk may predate this validation.
    const parsed = parseReferrersIndex(value.body);
    return { descriptors: parsed?.descriptors.slice(0, this.maxReferrers) ?? [], result };
  }

  private async load(target: RepositoryTarget, subject: Digest, signal: AbortSignal): Promise<ReferrersResponse> {
    let descriptors: ReferrerDescriptor[];
    try {
      descriptors = await this.fromReferrersApi(target, subject, signal);
    } catch (err) {
      if (!isUpstreamError(err) || err.code !== 'UPSTREAM_NOT_FOUND') throw err;
      descriptors = await this.fromTagSchema(target, subject, signal);
    }
    return { body: referrersIndex(descriptors), mediaType: mediaTypes.ociIndex };
  }

  private async fromReferrersApi(target: RepositoryTarget, subject: Digest, signal: AbortSignal): Promise<ReferrerDescriptor[]> {
    const answer = await target.upstream.getReferrers(target.name, subject, undefined, signal);
    const parsed = parseReferrersIndex(answer.body);
    if (!parsed) throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `GET referrers ${target.name}@${subject}: not an image index`);
    this.noteSkipped(target, subject, 'referrers API', parsed.skipped);
    return this.bounded(target, subject, parsed.descriptors);
  }

  private async fromTagSchema(target: RepositoryTarget, subject: Digest, signal: AbortSignal): Promise<ReferrerDescriptor[]> {
    const tag = referrersTag(subject);
    let body: Buffer;
    try {
      const response = await target.upstream.getManifest(target.name, tag, this.options.maxIndexBytes, signal);
      if (response.mediaType !== mediaTypes.ociIndex) {
        this.options.logger.warn({ repository: target.name, tag, mediaType: response.mediaType }, 'referrers tag is not an image index; ignored');
        return [];
      }
      body = response.body;
    } catch (err) {
      if (isUpstreamError(err) && err.code === 'UPSTREAM_NOT_FOUND') return [];
      throw err;
    }
    const parsed = parseReferrersIndex(body);
    if (!parsed) {
      this.options.logger.warn({ repository: target.name, tag }, 'referrers tag is not an image index; ignored');
      return [];
    }
    const candidates = this.bounded(target, subject, parsed.descriptors);
    const checked = await mapLimit(candidates, this.concurrency, (candidate) => this.referrer(target, subject, candidate.digest, signal));
    const referrers = checked.filter((d): d is ReferrerDescriptor => d !== undefined);
    this.noteSkipped(target, subject, 'referrers tag', parsed.skipped + candidates.length - referrers.length);
    return referrers;
  }

  /** The descriptor of one candidate, from its verified manifest; undefined when it is gone or does not refer to `subject`. */
  private async referrer(target: RepositoryTarget, subject: Digest, digest: string, signal: AbortSignal): Promise<ReferrerDescriptor | undefined> {
    let manifest: VerifiedManifest;
    try {
      manifest = await this.options.manifests.byDigest(target, digest, signal);
    } catch (err) {
      if (err instanceof RegistryError) {
        // Deleted since the tag was written: not a referrer any more.
        if (err.code === 'MANIFEST_UNKNOWN') return undefined;
        // The primary failed: rethrow its error so the last known list can be served.
        if (isUpstreamError(err.cause)) throw err.cause;
        // Bytes that do not match the digest, or that are no manifest: not a referrer.
        if (err.code === 'UPSTREAM_UNAVAILABLE') return undefined;
      }
      throw err;
    }
    return referrerOf(subject, manifest);
  }

  private bounded(target: RepositoryTarget, subject: Digest, descriptors: ReferrerDescriptor[]): ReferrerDescriptor[] {
    if (descriptors.length <= this.maxReferrers) return descriptors;
    this.options.logger.warn({ repository: target.name, subject: subject, count: descriptors.length, max: this.maxReferrers }, 'referrers list truncated');
    return descriptors.slice(0, this.maxReferrers);
  }

  private noteSkipped(target: RepositoryTarget, subject: Digest, source: string, skipped: number): void {
    if (skipped > 0) this.options.logger.warn({ repository: target.name, subject: subject, source, skipped }, 'referrers: invalid entries skipped');
  }
}

/** `fn` over `items` with at most `limit` calls in flight, results in input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
