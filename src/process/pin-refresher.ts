/**
 * Re-resolves pinned image references in a worker, one refresh at a time:
 * a refresh asked for while one runs is remembered (the latest list wins)
 * and runs right after, so slow primaries never stack refreshes up.
 */
import type { Logger } from '../cache/ports.ts';

export class PinRefresher {
  private running = false;
  private next: string[] | undefined;

  constructor(
    private readonly refreshOne: (reference: string) => Promise<void>,
    private readonly logger: Logger,
  ) {}

  /** Starts a refresh of `references`, or queues it behind the one running. Resolves when this call's work is done or queued. */
  request(references: string[]): Promise<void> {
    this.next = references;
    if (this.running) return Promise.resolve();
    this.running = true;
    return this.drain().finally(() => {
      this.running = false;
    });
  }

  get busy(): boolean {
    return this.running;
  }

  private async drain(): Promise<void> {
    while (this.next) {
      const references = this.next;
      this.next = undefined;
      for (const reference of references) {
        try {
          await this.refreshOne(reference);
        } catch (err) {
          this.logger.warn({ reference, err: String((err as Error)?.message ?? err) }, 'could not resolve a pinned image');
        }
      }
    }
  }
}
