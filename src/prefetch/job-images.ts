/**
 * A job's patterns → the images it selects now (prefetch/ports.ts
 * JobImageSource), asking the primary only what the patterns need:
 *
 * - Repositories: an include pattern without `*` in its repository part
 *   names its repository; only a pattern with `*` there needs the primary's
 *   `_catalog` (paged). A primary that refuses it (401, 403, 404, 405) fails
 *   the expansion with a message saying to name repositories explicitly.
 * - Tags: for a repository named as written, when every include pattern
 *   that matches it names a tag without `*`, those tags are taken as written
 *   (a tag that does not exist fails its warm, which says so); otherwise the
 *   repository's `tags/list` (paged) is read. A repository found through the
 *   catalog always has its tag list read: `*:v1` selects the repositories
 *   that have a v1, not a failed warm for every one that has not. A
 *   repository whose tag list is gone (404) is left out.
 * - Every candidate then goes through `selectImage` (the last matching
 *   pattern decides; exclusions only ever remove).
 * - `updatedWithinDays`: only images whose config `created` is within that
 *   many days of now. An image whose config has no `created` (or not a date)
 *   counts as old and is left out: nothing says it was updated, and
 *   reproducible builds that pin `created` to 1970 mean exactly that. A tag
 *   that vanished meanwhile (404) is left out; any other failure fails the
 *   expansion (the run reports it) rather than silently dropping images.
 *
 * The result is sorted and free of duplicates; more than `maxImages` fails
 * the expansion (narrow the patterns).
 */
import type { PrefetchJobConfig } from '../config/types.ts';
import { isUpstreamError, type Clock, type Logger } from '../cache/ports.ts';
import { globMatches, parseImagePatterns, selectImage, type ImagePattern } from '../registry/image-pattern.ts';
import { isValidName, isValidTag } from '../registry/reference.ts';
import type { ImageRef, JobImageSource, Pace, RegistryCatalog } from './ports.ts';
import { formatImageRef } from './ports.ts';

/** Why a job's images could not be listed; one line, for the run's record and the logs. */
export class JobExpansionError extends Error {
  override readonly name = 'JobExpansionError';
  readonly code = 'PREFETCH_EXPANSION_FAILED';
}

export interface JobImagesDeps {
  catalog: RegistryCatalog;
  clock: Clock;
  logger: Logger;
  /** Most images one job may select. Default 10 000. */
  maxImages?: number;
  /** Image configs read at once for `updatedWithinDays`. Default 4. */
  configConcurrency?: number;
}

const dayMs = 24 * 60 * 60 * 1000;
const refusedStatuses = new Set([401, 403, 404, 405]);

export class CatalogJobImages implements JobImageSource {
  constructor(private readonly deps: JobImagesDeps) {}

  async expand(job: PrefetchJobConfig, signal: AbortSignal, pace: Pace = () => Promise.resolve()): Promise<ImageRef[]> {
    let patterns: ImagePattern[];
    try {
      patterns = parseImagePatterns(job.images);
    } catch (err) {
      throw new JobExpansionError(`job ${job.name}: ${(err as Error).message}`);
    }
    const includes = patterns.filter((p) => !p.exclude);
    const { repositories, listed } = await this.repositories(job, includes, signal, pace);
    const selected = new Map<string, ImageRef>();
    const maxImages = this.deps.maxImages ?? 10_000;
    for (const repository of [...repositories].sort()) {
      for (const tag of await this.tags(job, repository, includes, listed.has(repository), signal, pace)) {
        if (!selectImage(patterns, repository, tag)) continue;
        const ref = { upstream: job.upstream, repository, reference: tag };
        selected.set(formatImageRef(ref), ref);
        if (selected.size > maxImages) throw new JobExpansionError(`job ${job.name} selects more than ${maxImages} images; narrow its patterns`);
      }
    }
    let images = [...selected.values()];
    if (job.updatedWithinDays !== undefined) images = await this.recent(job, images, job.updatedWithinDays, signal, pace);
    return images.sort(compareRefs);
  }

  /** The repositories the include patterns can name: literal ones as written, globs from `_catalog`. */
  private async repositories(job: PrefetchJobConfig, includes: ImagePattern[], signal: AbortSignal, pace: Pace): Promise<{ repositories: Set<string>; listed: Set<string> }> {
    const names = new Set<string>();
    const listed = new Set<string>();
    const globs: ImagePattern[] = [];
    for (const pattern of includes) {
      if (pattern.repository.pieces.length > 1) {
        globs.push(pattern);
        continue;
      }
      const name = pattern.repository.pieces[0] ?? '';
      if (!isValidName(name)) throw new JobExpansionError(`job ${job.name}: ${JSON.stringify(pattern.source)} names no valid repository`);
      names.add(name);
    }
    if (globs.length === 0) return { repositories: names, listed };
    try {
      for await (const name of this.deps.catalog.listRepositories(job.upstream, signal, pace)) {
        if (!isValidName(name) || !globs.some((p) => globMatches(p.repository, name))) continue;
        listed.add(name);
        names.add(name);
      }
    } catch (err) {
      if (isUpstreamError(err) && err.status !== undefined && refusedStatuses.has(err.status)) {
        const patterns = globs.map((p) => p.source).join(', ');
        throw new JobExpansionError(
          `job ${job.name}: ${job.upstream} does not list its repositories (_catalog answered ${err.status}), which ${patterns} needs; ` +
            'name the repositories explicitly (no "*" in the repository part)',
        );
      }
      throw new JobExpansionError(`job ${job.name}: could not list the repositories of ${job.upstream}: ${reason(err)}`);
    }
    return { repositories: names, listed };
  }

  /** The tags to consider in one repository: as written when it was named and every matching include names a tag, else its tag list. */
  private async tags(job: PrefetchJobConfig, repository: string, includes: ImagePattern[], fromCatalog: boolean, signal: AbortSignal, pace: Pace): Promise<string[]> {
    const matching = includes.filter((p) => globMatches(p.repository, repository));
    const literal = !fromCatalog && matching.every((p) => p.tag !== undefined && p.tag.pieces.length === 1);
    if (literal) return matching.map((p) => p.tag!.pieces[0] ?? '').filter(isValidTag);
    const tags: string[] = [];
    try {
      for await (const tag of this.deps.catalog.listTags(job.upstream, repository, signal, pace)) if (isValidTag(tag)) tags.push(tag);
    } catch (err) {
      if (isUpstreamError(err) && err.status === 404) {
        this.deps.logger.warn({ job: job.name, upstream: job.upstream, repository }, 'prefetch: repository has no tag list (gone?); left out');
        return [];
      }
      throw new JobExpansionError(`job ${job.name}: could not list the tags of ${repository}: ${reason(err)}`);
    }
    return tags;
  }

  /** The images whose config `created` is within `days` of now (a few configs read at once). */
  private async recent(job: PrefetchJobConfig, images: ImageRef[], days: number, signal: AbortSignal, pace: Pace): Promise<ImageRef[]> {
    const since = this.deps.clock.now() - days * dayMs;
    const keep: boolean[] = new Array<boolean>(images.length).fill(false);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < images.length) {
        const i = next++;
        const ref = images[i]!;
        signal.throwIfAborted();
        let created: Date | undefined;
        try {
          created = await this.deps.catalog.imageCreated(ref, job.platforms, signal, pace);
        } catch (err) {
          if (isUpstreamError(err) && err.status === 404) continue;
          throw new JobExpansionError(`job ${job.name}: could not read when ${formatImageRef(ref)} was created: ${reason(err)}`);
        }
        keep[i] = created !== undefined && created.getTime() >= since;
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.deps.configConcurrency ?? 4, images.length) }, worker));
    return images.filter((_, i) => keep[i]);
  }
}

function compareRefs(a: ImageRef, b: ImageRef): number {
  return a.repository < b.repository ? -1 : a.repository > b.repository ? 1 : a.reference < b.reference ? -1 : a.reference > b.reference ? 1 : 0;
}

function reason(err: unknown): string {
  const text = err instanceof Error ? `${(err as { code?: unknown }).code ?? err.name}: ${err.message}` : String(err);
  return text.replace(/\s+/g, ' ').slice(0, 300);
}
