/**
 * The scrub: hashes cached blobs against their digests in the cluster
 * primary, at a bounded rate, and deletes the ones that do not match
 * (the store reports each to the eviction service and the corrupt-files metric).
 *
 * - `unverified`: after an unclean shutdown, in the background — only blobs
 *   older than `index/unverified-before` are read; when the run completes
 *   the cache is verified again and that file is removed.
 * - `all`: `outpost cache verify` (POST /api/v0/cache/verify) — every blob.
 *   It supersedes a background run (it covers it).
 *
 * One run at a time; its progress is what the admin API reports.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Digest } from '../registry/digest.ts';
import { systemClock, type BlobCheckResult, type BlobVerifier, type Clock, type IndexEntry, type Logger } from './ports.ts';

export type ScrubScope = 'unverified' | 'all';

export interface ScrubStatus {
  /** 0 when no scrub ran since the node started. */
  id: number;
  scope: ScrubScope | null;
  running: boolean;
  outcome: 'running' | 'done' | 'aborted' | null;
  /** Files looked at (verified, skipped as already verified, missing, corrupt, unreadable). */
  checked: number;
  total: number;
  /** Bytes hashed. */
  bytes: number;
  totalBytes: number;
  corrupt: number;
  missing: number;
  /** Files that could not be read (I/O errors); they stay unverified. */
  errors: number;
  /** The first corrupt digests found (at most 100). */
  corruptDigests: Digest[];
  startedAt: string | null;
  finishedAt: string | null;
}

export interface CacheScrubOptions {
  store: BlobVerifier;
  /** What to check: the index's entries when the run starts. */
  entries: () => Iterable<IndexEntry>;
  /** Bytes per second to read; 0 for no limit. */
  bytesPerSecond: number;
  logger: Logger;
  clock?: Clock;
  /** After a run that checked every file it listed without an I/O error. */
  onComplete?: (scope: ScrubScope) => Promise<void>;
  /** A blob hashed to its digest: `size` is now known to be its true size. */
  onVerified?: (digest: Digest, size: number) => void;
}

const maxListedDigests = 100;

const idle: ScrubStatus = {
  id: 0,
  scope: null,
  running: false,
  outcome: null,
  checked: 0,
  total: 0,
  bytes: 0,
  totalBytes: 0,
  corrupt: 0,
  missing: 0,
  errors: 0,
  corruptDigests: [],
  startedAt: null,
  finishedAt: null,
};

interface Run {
  status: ScrubStatus;
  controller: AbortController;
  done: Promise<void>;
}

export class CacheScrub {
  private current: Run | undefined;
  private last: ScrubStatus = idle;
  private nextId = 1;
  private readonly clock: Clock;

  constructor(private readonly options: CacheScrubOptions) {
    this.clock = options.clock ?? systemClock;
  }

  /** Starts a run, or returns the one in progress when it already covers `scope`. */
  start(scope: ScrubScope): ScrubStatus {
    const running = this.current;
    if (running) {
      if (running.status.scope === 'all' || scope === 'unverified') return this.status();
      running.controller.abort(); // a full run covers the background one
    }
    const entries = [...this.options.entries()];
    const status: ScrubStatus = {
      ...idle,
      id: this.nextId++,
      scope,
      running: true,
      outcome: 'running',
      total: entries.length,
      totalBytes: entries.reduce((n, e) => n + (e.size ?? e.bytes), 0),
      corruptDigests: [],
      startedAt: new Date(this.clock.now()).toISOString(),
    };
    const controller = new AbortController();
    const run: Run = { status, controller, done: Promise.resolve() };
    run.done = this.run(run, entries);
    this.current = run;
    this.last = status;
    return this.status();
  }

  /** The run in progress, else the last one. */
  status(): ScrubStatus {
    const status = this.current?.status ?? this.last;
    return { ...status, corruptDigests: [...status.corruptDigests] };
  }

  async stop(): Promise<void> {
    const run = this.current;
    if (!run) return;
    run.controller.abort();
    await run.done;
  }

  /** Resolves when the current run (if any) has ended. */
  async settled(): Promise<void> {
    while (this.current) await this.current.done;
  }

  private async run(run: Run, entries: IndexEntry[]): Promise<void> {
    const { status, controller } = run;
    const { signal } = controller;
    const { logger, bytesPerSecond } = this.options;
    const started = this.clock.now();
    let consumed = 0;
    const throttle = async (bytes: number): Promise<void> => {
      consumed += bytes;
      if (bytesPerSecond <= 0) return;
      const wait = started + (consumed * 1000) / bytesPerSecond - this.clock.now();
      if (wait > 0) await sleep(wait, undefined, { signal, ref: false });
    };
    logger.info({ scope: status.scope, files: status.total, bytes: status.totalBytes, bytesPerSecond }, 'cache scrub started');
    try {
      for (const entry of entries) {
        signal.throwIfAborted();
        let checked: BlobCheckResult;
        try {
          checked = await this.options.store.verify(entry.digest, { all: status.scope === 'all', throttle, signal });
        } catch (err) {
          if (signal.aborted) throw err;
          status.errors += 1;
          status.checked += 1;
          logger.warn({ digest: entry.digest, err: String(err) }, 'scrub could not read a cached blob');
          continue;
        }
        status.checked += 1;
        status.bytes += checked.bytes;
        if (checked.result === 'missing') status.missing += 1;
        if (checked.result === 'ok') this.options.onVerified?.(entry.digest, checked.bytes);
        if (checked.result === 'corrupt') {
          status.corrupt += 1;
          if (status.corruptDigests.length < maxListedDigests) status.corruptDigests.push(entry.digest);
          logger.warn({ digest: entry.digest }, 'scrub found a corrupt cached blob; deleted');
        }
      }
      status.outcome = 'done';
    } catch {
      status.outcome = 'aborted';
    } finally {
      status.running = false;
      status.finishedAt = new Date(this.clock.now()).toISOString();
      if (this.current === run) this.current = undefined;
    }
    logger.info(
      { scope: status.scope, outcome: status.outcome, checked: status.checked, bytes: status.bytes, corrupt: status.corrupt, errors: status.errors },
      'cache scrub ended',
    );
    if (status.outcome === 'done' && status.errors === 0) {
      try {
        await this.options.onComplete?.(status.scope ?? 'all');
      } catch (err) {
        logger.warn({ err: String(err) }, 'could not record the scrub result');
      }
    }
  }
}
