/**
 * A stack of cleanup actions for a test file: register each resource as it is
 * created, run them all (last registered first) in `afterAll`/`afterEach`.
 * Every action runs even when an earlier one fails; the failures are thrown
 * together at the end.
 */
export interface CleanupStack {
  /** Registers an action to run at cleanup time. */
  add(action: () => unknown | Promise<unknown>): void;
  /** Runs and forgets every registered action, last first. */
  run(): Promise<void>;
}

export function createCleanupStack(): CleanupStack {
  const actions: Array<() => unknown | Promise<unknown>> = [];
  return {
    add(action) {
      actions.push(action);
    },
    async run() {
      const errors: unknown[] = [];
      while (actions.length > 0) {
        const action = actions.pop()!;
        try {
          await action();
        } catch (err) {
          errors.push(err);
        }
      }
      if (errors.length === 1) throw errors[0];
      if (errors.length > 1) throw new AggregateError(errors, `${errors.length} cleanup actions failed`);
    },
  };
}
