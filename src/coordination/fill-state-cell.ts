/** The state of one fill plus the waiters to wake when it moves; shared by the memory and IPC coordinators. */
import type { FillState, FillWatch } from '../cache/ports.ts';
import { Wakeups } from '../cache/wakeups.ts';

export class FillStateCell {
  state: FillState = { status: 'pending' };
  private readonly wakeups = new Wakeups();

  constructor(private readonly onFinished: () => void = () => undefined) {}

  get finished(): boolean {
    return this.state.status === 'done' || this.state.status === 'failed';
  }

  set(state: FillState): void {
    if (this.finished) return;
    this.state = state;
    if (this.finished) this.onFinished();
    this.wakeups.wakeAll();
  }

  wait(timeoutMs: number): Promise<void> {
    return this.finished ? Promise.resolve() : this.wakeups.next(timeoutMs);
  }

  watch(onClose: () => void = () => undefined): FillWatch {
    return {
      state: () => this.state,
      changed: (timeoutMs) => this.wait(timeoutMs),
      close: onClose,
    };
  }
}
