/**
 * The ad-hoc warm, behind the admin token (`OUTPOST_ADMIN_TOKEN`, bearer):
 *
 *   POST /api/v0/prefetch   {"images":["nginx:1.27","ghcr.io/org/app:v1"],"platforms":["linux/amd64"]}
 *   → 200 application/x-ndjson, the images warmed on this node a few at once:
 *       {"progress":{...WarmProgress}}   per image, at most ~4/s each, repeated while quiet
 *       {"result":{...WarmResult}}       per image, as each ends
 *       {"summary":{"images":2,"warmed":1,"skipped":0,"failed":1,"blobs":7,"bytes":1234}}   last
 *
 * Images are named as clients name them (prefetch/image-reference.ts); the
 * whole list is checked before anything starts: a bad body, reference or
 * platform is 400 (BODY_INVALID, NAME_INVALID, TAG_INVALID, DIGEST_INVALID),
 * a registry no primary is configured for 404 NAME_UNKNOWN. A client that
 * goes away stops the warms (fills already started finish, as for a pull).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { warmHeartbeatMs } from '../cluster/peer-protocol.ts';
import { MAX_IMAGE_REFERENCE_LENGTH, parseClientImageReference, type PrimaryRouting } from '../prefetch/image-reference.ts';
import { parsePlatforms, PlatformError } from '../prefetch/platform-filter.ts';
import type { ImageRef, ImageWarmer, RunCounts, WarmProgress, WarmResult } from '../prefetch/ports.ts';
import { isRegistryError, RegistryError } from '../registry/errors.ts';
import { readJson } from './admin-routes.ts';
import type { AdminToken } from './admin-token.ts';
import { abortSignalOf, ProgressThrottle, startNdjson } from './ndjson-response.ts';

export const prefetchPath = '/api/v0/prefetch';

/** Most images one request may name. */
export const MAX_PREFETCH_IMAGES = 100;

export interface PrefetchRoutesDeps {
  token: AdminToken;
  warmer: ImageWarmer;
  routing: PrimaryRouting;
  /** Images warmed at once; default 2. */
  concurrency?: number;
  /** Shortest time between two progress lines of one image; default 250 ms. */
  progressIntervalMs?: number;
}

/** The summary line: the same counts as a job run's. */
export type PrefetchSummary = RunCounts;

export class PrefetchRoutes {
  constructor(private readonly deps: PrefetchRoutesDeps) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.deps.token.authorize(req);
    if (req.method !== 'POST') throw new RegistryError('UNSUPPORTED', 'prefetch is a POST', { headers: { allow: 'POST' } });
    const { images, platforms } = this.parse(await readJson(req));
    const signal = abortSignalOf(res);
    const write = startNdjson(res);
    const summary: PrefetchSummary = { images: images.length, warmed: 0, skipped: 0, failed: 0, blobs: 0, bytes: 0 };
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < images.length && !signal.aborted) {
        const ref = images[next++]!;
        const progress = new ProgressThrottle<WarmProgress>((p) => write({ progress: p }), {
          intervalMs: this.deps.progressIntervalMs ?? 250,
          heartbeatMs: warmHeartbeatMs,
        });
        let result: WarmResult;
        try {
          result = await this.deps.warmer.warm(ref, { platforms, signal, onProgress: (p) => progress.update(p) });
        } finally {
          progress.stop();
        }
        write({ result });
        if (!result.ok) summary.failed += 1;
        else if (result.skipped !== undefined) summary.skipped += 1;
        else summary.warmed += 1;
        summary.blobs += result.blobs;
        summary.bytes += result.bytes;
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.deps.concurrency ?? 2, images.length) }, worker));
    write({ summary });
    res.end();
  }

  /** The images and platforms of the body, every one checked; 400/404 naming the first bad one. */
  private parse(body: Record<string, unknown>): { images: ImageRef[]; platforms: string[] } {
    for (const key of Object.keys(body)) {
      if (key !== 'images' && key !== 'platforms') throw new RegistryError('BODY_INVALID', `unknown field ${JSON.stringify(key.slice(0, 50))}: prefetch takes {"images":[...],"platforms":[...]}`);
    }
    const { images, platforms = [] } = body;
    if (!Array.isArray(images) || images.length === 0 || images.length > MAX_PREFETCH_IMAGES) {
      throw new RegistryError('BODY_INVALID', `"images" is a list of 1 to ${MAX_PREFETCH_IMAGES} image references`);
    }
    if (!Array.isArray(platforms)) throw new RegistryError('BODY_INVALID', '"platforms" is a list of os/arch[/variant]');
    let parsedPlatforms: string[];
    try {
      parsedPlatforms = parsePlatforms(platforms);
    } catch (err) {
      if (err instanceof PlatformError) throw new RegistryError('BODY_INVALID', err.message);
      throw err;
    }
    const refs = new Map<string, ImageRef>();
    images.forEach((image, i) => {
      if (typeof image !== 'string' || image.length > MAX_IMAGE_REFERENCE_LENGTH) {
        throw new RegistryError('BODY_INVALID', `images[${i}] is not an image reference of at most ${MAX_IMAGE_REFERENCE_LENGTH} characters`);
      }
      try {
        const ref = parseClientImageReference(image, this.deps.routing);
        refs.set(`${ref.upstream}/${ref.repository}/${ref.reference}`, ref);
      } catch (err) {
        if (!isRegistryError(err)) throw err;
        throw new RegistryError(err.code, `images[${i}] ${JSON.stringify(image)}: ${err.message}`, { detail: err.detail });
      }
    });
    return { images: [...refs.values()], platforms: parsedPlatforms };
  }
}
