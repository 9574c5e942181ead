/** The state of one fill plus the waiters to wake when it moves; shared by the memory and IPC coordinators. */
import type { FillState, FillWatch } from '../cache/ports.ts';

export class FillStateCell {
  state: FillState = { status: 'pending' };
  private waiters = new Set<() => void>();

  constructor(private readonly onFinished: () => void = () => undefined) {}

  get finished(): boolean {
    return this.state.status === 'done' || this.state.status === 'failed';
  }

  set(state: FillState): void {
    if (this.finished) return;
    this.state = state;
    if (this.finished) this.onFinished();
    const waiters = this.waiters;
    this.waiters = new Set();
    for (const wake of waiters) wake();
  }

  wait(timeoutMs: number): Promise<void> {
    if (this.finished) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, timeoutMs);
      this.waiters.add(wake);
    });
  }

  watch(onClose: () => void = () => undefined): FillWatch {
    return {
      state: () => this.state,
      changed: (timeoutMs) => this.wait(timeoutMs),
      close: onClose,
    };
  }
}
