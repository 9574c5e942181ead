/**
 * Warms a run's images over the replica set, through ReplicaWarmClient.
 *
 * - `concurrency` images at once over the whole cluster; an image is in
 *   progress until it is warm on every replica it has to be.
 * - Each image first goes to one replica, chosen round-robin over the live
 *   replicas: that warm is the one that crosses the WAN. With
 *   `replicas: all` the image is then warmed on every other live replica, by
 *   digest, in parallel: those fills come from the first replica (peer fill),
 *   not from the primary. With `replicas: one` the first warm is all.
 * - A replica that cannot be reached or answers garbage (the client throws)
 *   is replaced once by another replica, for the first warm; a failed
 *   follow-up warm is retried once on the same replica. An image's own
 *   failure (the warmer's `ok: false`, e.g. manifest unknown) is recorded,
 *   not retried. No failure aborts the run.
 * - The token bucket caps the requests the run makes of the primary: one
 *   token before each first warm (its manifest request), then, once it
 *   answers, one per blob it did not have yet (charged after the fact, so
 *   the next image waits for the debt). Follow-up warms go to peers and
 *   take no token. Listing is charged by the caller (prefetch-jobs.ts).
 */
import type { Logger } from '../cache/ports.ts';
import { formatImageRef, type ImageRef, type ReplicaTarget, type ReplicaWarmClient, type WarmResult } from './ports.ts';
import type { ImageOutcome } from './run-store.ts';
import type { TokenBucket } from './token-bucket.ts';

export interface RunExecutorOptions {
  client: ReplicaWarmClient;
  /** The replicas to spread over (live, not draining), read once per image. */
  replicas: (signal: AbortSignal) => Promise<ReplicaTarget[]>;
  replicasMode: 'all' | 'one';
  concurrency: number;
  bucket: TokenBucket;
  platforms: readonly string[];
  /** Bound of one warm request (one image on one replica). */
  warmTimeoutMs: number;
  logger: Logger;
}

export interface PendingImage {
  index: number;
  ref: ImageRef;
}

export class RunExecutor {
  private nextReplica = 0;

  constructor(private readonly options: RunExecutorOptions) {}

  /**
   * Warms every image; `record` is called once per image, in completion
   * order. When `record` answers false (the record could not be written:
   * leadership lost) the run stops taking new images and resolves.
   */
  async execute(images: readonly PendingImage[], record: (outcome: ImageOutcome) => Promise<boolean>, signal: AbortSignal): Promise<void> {
    const stop = new AbortController();
    const both = AbortSignal.any([signal, stop.signal]);
    let next = 0;
    const lane = async (): Promise<void> => {
      while (!both.aborted && next < images.length) {
        const image = images[next++]!;
        let outcome: ImageOutcome;
        try {
          outcome = await this.warmImage(image, both);
        } catch (err) {
          if (both.aborted) return; // cut short: the image stays pending for whoever resumes the run
          outcome = failed(image, `unexpected: ${String((err as Error)?.message ?? err)}`, []);
        }
        if (both.aborted) return;
        if (!(await record(outcome).catch(() => false))) stop.abort(new Error('the run record could not be written'));
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(this.options.concurrency, images.length)) }, lane));
  }

  private async warmImage(image: PendingImage, signal: AbortSignal): Promise<ImageOutcome> {
    const { bucket, logger } = this.options;
    const targets = await this.options.replicas(signal);
    if (targets.length === 0) return failed(image, 'no live replica to warm it on', []);
    const start = this.nextReplica++ % targets.length;
    const order = [...targets.slice(start), ...targets.slice(0, start)];
    let first: { replica: ReplicaTarget; result: WarmResult } | undefined;
    let lastError = '';
    for (const replica of order.slice(0, 2)) {
      await bucket.take(1, signal);
      try {
        first = { replica, result: await this.warm(replica, image.ref, signal) };
        break;
      } catch (err) {
        signal.throwIfAborted();
        lastError = `${replica.id}: ${errorLine(err)}`;
        logger.warn({ image: formatImageRef(image.ref), replica: replica.id, err: errorLine(err) }, 'replica could not warm the image; trying another');
      }
    }
    if (first === undefined) return failed(image, lastError, []);
    const { result } = first;
    bucket.charge(Math.max(0, result.blobs - result.cachedBlobs));
    if (!result.ok) return failed(image, result.error ?? 'the warm failed', [], result);
    if (result.skipped !== undefined) {
      // Nothing to warm (no selected platform): nothing for the other replicas either.
      return { index: image.index, image: formatImageRef(image.ref), ok: true, skipped: true, blobs: 0, bytes: 0, replicas: [], error: result.skipped.slice(0, 300) };
    }
    const warmOn = [first.replica.id];
    const errors: string[] = [];
    if (this.options.replicasMode === 'all') {
      // By digest: immutable, so the other replicas fill manifest and blobs from a peer, never a tag lookup upstream.
      const byDigest: ImageRef = result.digest === undefined ? image.ref : { ...image.ref, reference: result.digest };
      const others = order.filter((r) => r.id !== first.replica.id);
      await Promise.all(
        others.map(async (replica) => {
          let error = '';
          for (let attempt = 0; attempt < 2; attempt++) {
            try {
              const r = await this.warm(replica, byDigest, signal);
              if (r.ok) {
                warmOn.push(replica.id);
                return;
              }
              error = r.error ?? 'the warm failed';
              break; // the image's own failure: not retried
            } catch (err) {
              signal.throwIfAborted();
              error = errorLine(err);
            }
          }
          errors.push(`${replica.id}: ${error}`);
        }),
      );
    }
    return {
      index: image.index,
      image: formatImageRef(image.ref),
      ok: errors.length === 0,
      skipped: false,
      blobs: result.blobs,
      bytes: result.bytes,
      replicas: warmOn.sort(),
      error: errors.length === 0 ? undefined : `not warm on ${errors.join('; ')}`.slice(0, 500),
    };
  }

  private warm(replica: ReplicaTarget, ref: ImageRef, signal: AbortSignal): Promise<WarmResult> {
    return this.options.client.warm(replica, ref, {
      platforms: this.options.platforms,
      signal: AbortSignal.any([signal, AbortSignal.timeout(this.options.warmTimeoutMs)]),
    });
  }
}

function failed(image: PendingImage, error: string, replicas: string[], result?: WarmResult): ImageOutcome {
  return {
    index: image.index,
    image: formatImageRef(image.ref),
    ok: false,
    skipped: false,
    blobs: result?.blobs ?? 0,
    bytes: result?.bytes ?? 0,
    replicas,
    error: error.slice(0, 500),
  };
}

function errorLine(err: unknown): string {
  const text = err instanceof Error ? `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}` : String(err);
  return text.split('\n')[0]!.slice(0, 300);
}
