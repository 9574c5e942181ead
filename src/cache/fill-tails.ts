/**
 * Shared tails of fills another process runs (another worker's, or a
 * replica's peer fill landing in another worker): the first reader in this
 * process that reads such a fill's partial file starts one tail, which reads
 * the file as the fill's progress says it grew and pushes it into a window
 * (a FillFeed) that every reader in this process shares, as views, nothing
 * copied (send.ts). One read of the file per process instead of one per
 * client, and no send buffer per client.
 *
 *   other worker's fill ──► partial file ──► tail (this process) ──► window ──► readers that keep up
 *                                        └──────────────────────────────────► readers behind it (fill-source.ts)
 *
 * A tail hashes nothing: its chunks carry no hash, and a reader that must
 * continue elsewhere hashes back from the file it opened before it joined.
 * Its outcome is the fill's, read from its own watch: it ends when the fill
 * is done (readers then hand out their last byte) and stops when the fill
 * failed, when nobody has read it for a second, or when its file is gone —
 * readers then go on with their own file and watch, as without a tail.
 * At most `maxTails` run per process; beyond, readers read the file
 * themselves.
 */
import { type Digest } from '../registry/digest.ts';
import { FillFeed } from './fill-feed.ts';
import { systemClock, type BlobStore, type Clock, type FillState, type FillWatch, type Logger, type PartialFile } from './ports.ts';

export interface FillTailsOptions {
  store: Pick<BlobStore, 'openPartial'>;
  /** A watch on the fill of a digest (the coordinator's `follow`). */
  follow: (digest: Digest) => Promise<FillWatch | undefined>;
  logger: Logger;
  clock?: Clock;
  /** Bytes of recent chunks a tail keeps (default 4 MiB; up to twice that while a reader has yet to read them). */
  windowBytes?: number;
  /** Tails at once in this process (default 8). */
  maxTails?: number;
  /** Largest read of the partial file (default 1 MiB). */
  readBytes?: number;
  /** A tail nobody reads stops after this long (default 1 s). */
  idleMs?: number;
}

type Running = Extract<FillState, { status: 'running' }>;

/** Below this many new bytes a tail waits once for more (a tiny read costs a syscall for every reader's little). */
const minReadBytes = 256 * 1024;
const waitMs = 20;

export class FillTails {
  private readonly tails = new Map<string, FillFeed>();
  private readonly clock: Clock;

  constructor(private readonly options: FillTailsOptions) {
    this.clock = options.clock ?? systemClock;
  }

  /**
   * This process's tail of the fill `state` describes, started (at
   * `position`, the asking reader's) when there is none; undefined when
   * there is no room for one or the fill's size is not known.
   */
  join(digest: Digest, state: Running, position: number): FillFeed | undefined {
    const existing = this.tails.get(state.partialPath);
    if (existing) return existing.status === 'running' ? existing : undefined;
    if (state.size === undefined || this.tails.size >= (this.options.maxTails ?? 8)) return undefined;
    const feed = new FillFeed({
      digest,
      kind: 'cached',
      size: state.size,
      partialPath: state.partialPath,
      windowBytes: this.options.windowBytes ?? 4 * 1024 * 1024,
      clock: this.clock,
      tail: { startAt: position },
    });
    this.tails.set(state.partialPath, feed);
    void this.run(digest, feed, state.partialPath)
      .catch((err: unknown) => {
        this.options.logger.warn({ digest, err: err instanceof Error ? err.message : String(err) }, 'the shared tail of a fill failed; its readers read the file themselves');
        feed.fail({ code: 'TAIL_STOPPED', message: 'the shared tail failed' });
      })
      .finally(() => {
        if (this.tails.get(state.partialPath) === feed) this.tails.delete(state.partialPath);
      });
    return feed;
  }

  /** Tails running now (for tests). */
  get size(): number {
    return this.tails.size;
  }

  private async run(digest: Digest, feed: FillFeed, partialPath: string): Promise<void> {
    const stop = (message: string): void => feed.fail({ code: 'TAIL_STOPPED', message });
    const watch = await this.options.follow(digest);
    if (!watch) return stop('the fill ended');
    let file: PartialFile | undefined;
    try {
      file = await this.options.store.openPartial(partialPath);
      if (!file) return stop('the partial file is gone');
      const readBytes = this.options.readBytes ?? 1024 * 1024;
      const idleMs = this.options.idleMs ?? 1_000;
      let position = feed.end;
      let lastRead = this.clock.now();
      let waited = false;
      for (;;) {
        const state = watch.state();
        if (state.status === 'failed' || state.status === 'pending' || state.partialPath !== partialPath) return stop('the fill ended without this tail');
        if (feed.readerCount > 0) lastRead = this.clock.now();
        else if (this.clock.now() - lastRead > idleMs) return stop('nobody reads it');
        const available = Math.min(state.bytes, state.size ?? state.bytes) - position;
        if (available > 0 && (available >= minReadBytes || state.status === 'done' || waited)) {
          const want = Math.min(readBytes, available);
          const buffer = Buffer.allocUnsafe(want);
          const n = await file.read(buffer, position, want);
          if (n <= 0) return stop('the partial file is shorter than the fill says');
          // A fresh buffer per read: readers' views keep it alive while sockets take it.
          feed.push(n === want ? buffer : buffer.subarray(0, n));
          position += n;
          feed.persisted(position);
          waited = false;
          continue;
        }
        if (state.status === 'done' && position >= state.size) {
          feed.succeed();
          return;
        }
        waited = available > 0;
        await watch.changed(waitMs);
      }
    } finally {
      watch.close();
      await file?.close();
    }
  }
}
