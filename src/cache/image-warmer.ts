/**
 * Warms one image on this replica: an ordinary pull whose bodies are read
 * and dropped, on the node's own manifest and blob services, so single
 * flight, peer fill, verification, the disk budget and repository links all
 * apply exactly as for a client's pull.
 *
 *   reference ──ManifestService.get──▶ manifest ─┬─ image: config + layers
 *                                                └─ index: children selected by platform
 *                                                     └─ byDigest ─▶ config + layers
 *   each blob (a few at once) ──BlobService.open──▶ hit: counted as cached, not read
 *                                                    else: read to the end (the fill caches it)
 *
 * An index's Docker attestation manifests (`vnd.docker.reference.type:
 * attestation-manifest`, platform unknown/unknown) are left out: no client
 * pulls them. A single-platform image is warmed whatever `platforms` says
 * (its platform is only in its config). An index none of whose children
 * matches `platforms` warms nothing and is reported `ok` with `skipped`.
 *
 * `onProgress` is called once at the start (all zeros), once the blobs are
 * known, and on every chunk read (256 KiB): callers that send it anywhere
 * throttle it (http/ndjson-response.ts). An already cached blob counts as
 * done at once and is not read: `BlobService.open` says `hit` without a
 * request upstream, where `stat` would HEAD every blob that is missing.
 *
 * A blob this replica would only stream through (larger than the cache
 * budget, or the disk not writable) fails the image without being fetched.
 * Whatever fails — the reference, a manifest, one blob — ends the warm of
 * that image with a one-line reason in the result; `warm` never throws.
 */
import type { ImageRef, ImageWarmer, WarmOptions, WarmProgress, WarmResult } from '../prefetch/ports.ts';
import { formatImageRef } from '../prefetch/ports.ts';
import { platformSelected } from '../prefetch/platform-filter.ts';
import type { Digest } from '../registry/digest.ts';
import { RegistryError } from '../registry/errors.ts';
import { isIndexMediaType } from '../registry/media-types.ts';
import { parseManifest, type Descriptor } from '../registry/manifest-references.ts';
import { parseReference, validateName, type Reference } from '../registry/reference.ts';
import { readIntoCache, type BlobSource } from './blob-source.ts';
import type { ManifestAnswer } from './manifest-service.ts';
import type { Logger } from './ports.ts';
import type { BlobTarget, RepositoryTarget } from './repository-target.ts';

export interface ImageWarmerDeps {
  /** The primary and repository a reference names (RepositoryResolver.resolve with `ns` = the primary's host). */
  targets: { resolve(name: string, ns: string | undefined): RepositoryTarget };
  manifests: {
    get(target: RepositoryTarget, reference: Reference, signal: AbortSignal): Promise<ManifestAnswer>;
    byDigest(target: RepositoryTarget, digest: Digest, signal: AbortSignal): Promise<ManifestAnswer>;
  };
  blobs: { open(target: BlobTarget, digest: Digest, signal: AbortSignal): Promise<BlobSource> };
  logger: Logger;
  /** Blobs of one image read at once; default 3. */
  blobConcurrency?: number;
  /** Each finished warm (metrics). */
  onResult?: (result: WarmResult) => void;
}

/** Child manifests followed per image (an index of indexes counts its grandchildren too). */
const maxManifests = 256;
/** Distinct blobs per image. */
const maxBlobs = 8192;
const readChunkBytes = 256 * 1024;

/** A failure of the warm with its one-line reason. */
class WarmFailure extends Error {}

export class CacheImageWarmer implements ImageWarmer {
  private readonly concurrency: number;

  constructor(private readonly deps: ImageWarmerDeps) {
    this.concurrency = Math.max(1, deps.blobConcurrency ?? 3);
  }

  async warm(ref: ImageRef, options: WarmOptions): Promise<WarmResult> {
    const image = formatImageRef(ref);
    const result: WarmResult = { image, ok: false, digest: undefined, blobs: 0, bytes: 0, cachedBlobs: 0, error: undefined };
    const started = performance.now();
    try {
      await this.run(ref, options, result);
      result.ok = true;
    } catch (err) {
      result.error = options.signal.aborted ? 'aborted' : reasonOf(err);
      this.deps.logger.warn({ image, error: result.error }, 'prefetch: image not warmed');
    }
    if (result.ok) {
      this.deps.logger.info(
        { image, digest: result.digest, blobs: result.blobs, cachedBlobs: result.cachedBlobs, bytes: result.bytes, ms: Math.round(performance.now() - started), skipped: result.skipped },
        'prefetch: image warmed',
      );
    }
    try {
      this.deps.onResult?.(result);
    } catch {
      // A metrics callback never fails a warm.
    }
    return result;
  }

  private async run(ref: ImageRef, options: WarmOptions, result: WarmResult): Promise<void> {
    const { signal } = options;
    let target: RepositoryTarget;
    let reference: Reference;
    try {
      target = this.deps.targets.resolve(validateName(ref.repository), ref.upstream);
      reference = parseReference(ref.reference);
    } catch (err) {
      throw new WarmFailure(`bad reference: ${reasonOf(err)}`);
    }
    const progress: WarmProgress = { image: result.image, blobsDone: 0, blobsTotal: 0, bytesDone: 0, bytesTotal: 0 };
    const report = (): void => {
      try {
        options.onProgress?.({ ...progress });
      } catch {
        // A progress listener never fails a warm.
      }
    };
    // At once, so a caller sees the warm started (and its stream is not silent) while manifests resolve.
    report();
    const top = await this.step('manifest', () => this.deps.manifests.get(target, reference, signal));
    result.digest = top.digest;
    signal.throwIfAborted();
    const blobs = await this.blobsOf(target, top, options, result);
    if (blobs === undefined) return;
    progress.blobsTotal = blobs.length;
    progress.bytesTotal = blobs.reduce((sum, blob) => sum + blob.size, 0);
    result.blobs = progress.blobsTotal;
    result.bytes = progress.bytesTotal;
    report();
    // The first failure stops the other blobs of this image.
    const stop = new AbortController();
    const blobSignal = AbortSignal.any([signal, stop.signal]);
    let next = 0;
    let failure: unknown;
    const worker = async (): Promise<void> => {
      const buffer = Buffer.allocUnsafe(readChunkBytes);
      while (failure === undefined && next < blobs.length) {
        const blob = blobs[next++]!;
        try {
          const cached = await this.drain(target, blob, buffer, blobSignal, (n) => {
            progress.bytesDone += n;
            report();
          });
          if (cached) {
            result.cachedBlobs += 1;
            progress.bytesDone += blob.size;
          }
          progress.blobsDone += 1;
          report();
        } catch (err) {
          if (failure === undefined) failure = new WarmFailure(`blob ${blob.digest}: ${reasonOf(err)}`);
          stop.abort();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, blobs.length) }, worker));
    if (failure !== undefined) throw failure;
  }

  /**
   * The distinct config and layer blobs of the selected platforms, in
   * manifest order; undefined when an index has no selected platform
   * (`result.skipped` says so).
   */
  private async blobsOf(target: RepositoryTarget, top: ManifestAnswer, options: WarmOptions, result: WarmResult): Promise<Descriptor[] | undefined> {
    const blobs = new Map<Digest, Descriptor>();
    const seen = new Set<Digest>([top.digest]);
    let followed = 0;
    const walk = async (manifest: ManifestAnswer, depth: number): Promise<boolean> => {
      const parsed = parseManifest(manifest.body, manifest.mediaType);
      if (!isIndexMediaType(parsed.mediaType)) {
        for (const blob of parsed.blobs) {
          if (!blobs.has(blob.digest)) blobs.set(blob.digest, blob);
          if (blobs.size > maxBlobs) throw new WarmFailure(`more than ${maxBlobs} blobs`);
        }
        return true;
      }
      if (depth >= 2) throw new WarmFailure('an index nested more than two levels deep');
      const children = parsed.manifests.filter((child) => !isAttestation(child) && (depth > 0 || platformSelected(options.platforms, child.platform)));
      let any = false;
      for (const child of children) {
        if (seen.has(child.digest)) continue;
        seen.add(child.digest);
        if (++followed > maxManifests) throw new WarmFailure(`more than ${maxManifests} child manifests`);
        options.signal.throwIfAborted();
        const body = await this.step(`manifest ${child.digest}`, () => this.deps.manifests.byDigest(target, child.digest, options.signal));
        any = (await walk(body, depth + 1)) || any;
      }
      return any;
    };
    const found = await walk(top, 0);
    if (!found) {
      result.skipped = options.platforms.length > 0 ? `no platform of the index matches ${options.platforms.join(', ')}` : 'the index lists no image';
      return undefined;
    }
    return [...blobs.values()];
  }

  /** Opens a blob and reads it to the end unless it was already on disk (true then). */
  private async drain(target: BlobTarget, blob: Descriptor, buffer: Buffer, signal: AbortSignal, onBytes: (n: number) => void): Promise<boolean> {
    const source = await this.deps.blobs.open(target, blob.digest, signal);
    try {
      if (source.result === 'hit') return true;
      // Streamed through uncached: reading it would fetch it for nothing.
      if (source.result === 'passthrough') throw new WarmFailure('cannot be cached on this replica (larger than the cache budget, or the disk is not writable); not fetched');
      await readIntoCache(source, buffer, signal, onBytes);
      return false;
    } finally {
      await source.close();
    }
  }

  private async step<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw err instanceof WarmFailure ? err : new WarmFailure(`${what}: ${reasonOf(err)}`);
    }
  }
}

function isAttestation(descriptor: Descriptor): boolean {
  return descriptor.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest';
}

/** One line, bounded, naming the code when there is one. */
export function reasonOf(err: unknown): string {
  let text: string;
  if (err instanceof WarmFailure) text = err.message;
  else if (err instanceof RegistryError) text = `${err.code}: ${err.message}`;
  else if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    text = typeof code === 'string' ? `${code}: ${err.message}` : err.message;
  } else text = String(err);
  text = text.replace(/\s+/g, ' ').trim();
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}
