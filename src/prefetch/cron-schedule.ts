/**
 * A 5-field cron expression read in an IANA time zone (croner does the
 * calendar: month lengths, day-of-week/day-of-month, DST gaps and repeats).
 * Pure: the instant to count from is always given, never read from a clock.
 */
import { Cron } from 'croner';

export class CronScheduleError extends Error {
  readonly code = 'CRON_INVALID';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CronScheduleError';
  }
}

export class CronSchedule {
  private readonly cron: Cron;

  /** Throws {@link CronScheduleError} when the expression is not 5-field cron or the zone is unknown. */
  constructor(
    readonly expression: string,
    readonly timezone = 'UTC',
  ) {
    try {
      this.cron = new Cron(expression, { timezone, paused: true, mode: '5-part' });
      // An unknown zone only shows when a date is converted: try one now.
      this.cron.nextRun(new Date(0));
    } catch (err) {
      throw new CronScheduleError(`invalid schedule "${expression}" in time zone ${timezone}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The first instant (ms since the epoch) strictly after `afterMs` the schedule fires at; undefined when it never does again. */
  nextAfter(afterMs: number): number | undefined {
    const next = this.cron.nextRun(new Date(afterMs));
    return next === null ? undefined : next.getTime();
  }
}
