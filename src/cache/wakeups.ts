/** Callers waiting for the next change of something, each for a bounded time: the one wait-with-timeout of fill states and fill windows. */
export class Wakeups {
  private waiters = new Set<() => void>();

  /** Resolves at the next {@link wakeAll}, or after `timeoutMs`, whichever comes first. */
  next(timeoutMs: number): Promise<void> {
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

  /** Wakes everyone waiting now (not those who start waiting while they wake). */
  wakeAll(): void {
    const waiters = this.waiters;
    this.waiters = new Set();
    for (const wake of waiters) wake();
  }
}
