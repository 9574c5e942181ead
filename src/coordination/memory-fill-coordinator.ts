/**
 * Fill coordination inside one process. The cluster primary runs one of
 * these for the whole host and workers reach it over IPC
 * (ipc-fill-coordinator.ts); tests and single-process nodes use it directly.
 */
import type { FillCoordinator, FillError, FillLease, FillRole, FillWatch } from '../cache/ports.ts';
import { FillStateCell } from './fill-state-cell.ts';

/** A lease that drives a cell; `onUpdate` sees every new state (the IPC bridge forwards them). */
export function cellLease(cell: FillStateCell): FillLease {
  return {
    started(size, partialPath) {
      cell.set({ status: 'running', size, partialPath, bytes: 0 });
    },
    progress(bytes) {
      const state = cell.state;
      if (state.status === 'running') cell.set({ ...state, bytes });
    },
    succeed(size) {
      const state = cell.state;
      const partialPath = state.status === 'running' ? state.partialPath : '';
      cell.set({ status: 'done', size, partialPath, bytes: size });
    },
    fail(error: FillError) {
      cell.set({ status: 'failed', error });
    },
    streaming(size, url) {
      if (cell.state.status === 'pending') cell.set({ status: 'streaming', size, url });
    },
    watch: () => cell.watch(),
  };
}

export class MemoryFillCoordinator implements FillCoordinator {
  private readonly fills = new Map<string, FillStateCell>();

  /** Fills in progress (for metrics and tests). */
  get inflight(): number {
    return this.fills.size;
  }

  acquire(digest: string): Promise<FillRole> {
    return Promise.resolve(this.acquireSync(digest));
  }

  follow(digest: string): Promise<FillWatch | undefined> {
    return Promise.resolve(this.followSync(digest));
  }

  followSync(digest: string): FillWatch | undefined {
    return this.fills.get(digest)?.watch();
  }

  acquireSync(digest: string): FillRole {
    const existing = this.fills.get(digest);
    if (existing) return { role: 'follower', watch: existing.watch() };
    const cell: FillStateCell = new FillStateCell(() => {
      if (this.fills.get(digest) === cell) this.fills.delete(digest);
    });
    this.fills.set(digest, cell);
    return { role: 'leader', lease: cellLease(cell) };
  }
}
