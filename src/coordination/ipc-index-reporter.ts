/**
 * Worker side of the per-host eviction index: hits and additions are
 * batched (deduplicated touches, flushed every `flushMs` or when large) and
 * sent to the eviction service in the cluster primary, so the hit path never
 * waits for bookkeeping.
 */
import type { CacheIndexReporter } from '../cache/ports.ts';
import type { IndexBatch } from '../cache/eviction-index.ts';
import type { Digest } from '../registry/digest.ts';

export class BatchingIndexReporter implements CacheIndexReporter {
  private touchedSet = new Set<Digest>();
  private addedList: IndexBatch['added'] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly send: (batch: IndexBatch) => void,
    private readonly flushMs = 100,
    private readonly maxBatch = 1_000,
  ) {}

  touched(digest: Digest): void {
    this.touchedSet.add(digest);
    this.schedule();
  }

  added(digest: Digest, diskBytes: number, kind: 'blob' | 'manifest', size?: number): void {
    this.addedList.push(size === undefined ? [digest, diskBytes, kind] : [digest, diskBytes, kind, size]);
    // Additions matter to the budget: send them promptly.
    this.flush();
  }

  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.touchedSet.size === 0 && this.addedList.length === 0) return;
    const batch: IndexBatch = { touched: [...this.touchedSet], added: this.addedList };
    this.touchedSet = new Set();
    this.addedList = [];
    this.send(batch);
  }

  private schedule(): void {
    if (this.touchedSet.size >= this.maxBatch) {
      this.flush();
      return;
    }
    if (!this.timer) this.timer = setTimeout(() => this.flush(), this.flushMs);
  }
}
