export interface WaitOptions {
  /** Upper bound for the whole wait. Default 10 000 ms. */
  timeoutMs?: number;
  /** Pause between two checks. Default 50 ms. */
  intervalMs?: number;
  /** What is being waited for, used in the timeout message ("registry to answer GET /v2/"). */
  what: string;
  /** Stops the wait early (the error names the reason). */
  signal?: AbortSignal;
}

/**
 * Polls `condition` until it returns true, or throws when `timeoutMs` passes.
 * A condition that throws counts as "not yet"; its last error is attached as
 * `cause` of the timeout error so the reason is visible in the test output.
 */
export async function waitFor(
  condition: () => Promise<boolean> | boolean,
  options: WaitOptions,
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 50;
  const started = Date.now();
  let lastError: unknown;
  let attempts = 0;
  for (;;) {
    options.signal?.throwIfAborted();
    attempts += 1;
    try {
      if (await condition()) return;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    const elapsed = Date.now() - started;
    if (elapsed >= timeoutMs) {
      const detail =
        lastError === undefined
          ? ''
          : `; last check threw: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
      throw new Error(
        `Timed out after ${timeoutMs} ms (${attempts} checks) waiting for ${options.what}${detail}`,
        lastError === undefined ? undefined : { cause: lastError },
      );
    }
    await pause(Math.min(intervalMs, Math.max(1, timeoutMs - elapsed)));
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
