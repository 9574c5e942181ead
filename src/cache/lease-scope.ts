/**
 * A fill lease as a scoped resource. `runLeased(lease, fill)` runs the whole
 * fill — asking the primary, opening the partial file, pumping it to disk —
 * and guarantees the lease is settled when `fill` ends: if it throws, or
 * returns without calling succeed() or fail(), the lease fails at once. No
 * code path (a store that throws, a read-only disk, a bug) leaves the host's
 * readers of a digest waiting for a fill nobody runs.
 *
 * A RegistryError is the primary's answer (404, denied, timeout, wrong
 * bytes) and fails the lease with its code; anything else fails it with
 * LEADER_GONE, which readers recover from by taking over. The returned
 * promise never rejects: what `fill` threw is logged.
 */
import { RegistryError } from '../registry/errors.ts';
import type { FillError, FillLease, Logger } from './ports.ts';

export function runLeased(lease: FillLease, logger: Logger, context: object, fill: (lease: FillLease) => Promise<void>): Promise<void> {
  let settled = false;
  const scoped: FillLease = {
    started: (size, partialPath) => lease.started(size, partialPath),
    progress: (bytes) => lease.progress(bytes),
    succeed(size) {
      settled = true;
      lease.succeed(size);
    },
    fail(error) {
      settled = true;
      lease.fail(error);
    },
    streaming: (size, url) => lease.streaming(size, url),
    watch: () => lease.watch(),
  };
  const settle = (error: FillError): void => {
    if (!settled) scoped.fail(error);
  };
  return fill(scoped)
    .then(
      () => {
        if (settled) return;
        logger.error(context, 'fill ended without an outcome; failing its lease');
        settle({ code: 'LEADER_GONE', message: 'the fill ended without an outcome' });
      },
      (err: unknown) => {
        if (err instanceof RegistryError) {
          settle({ code: err.code, message: err.message });
          return;
        }
        logger.error({ ...context, err: describe(err) }, 'fill broke off; failing its lease so readers take over');
        settle({ code: 'LEADER_GONE', message: 'the fill broke off' });
      },
    )
    .catch((err: unknown) => logger.error({ ...context, err: describe(err) }, 'could not fail a fill lease'));
}

export function describe(err: unknown): { code?: unknown; message: string } {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  return { code: e?.code, message: String(e?.message ?? err) };
}
