import { describe, expect, it } from 'vitest';
import { CronSchedule, CronScheduleError } from '../../../src/prefetch/cron-schedule.ts';

const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());

describe('CronSchedule', () => {
  it('gives the next instant strictly after the given one, in UTC by default', () => {
    const s = new CronSchedule('*/15 * * * *');
    expect(iso(s.nextAfter(Date.parse('2026-11-30T10:00:00Z')))).toBe('2026-11-30T10:15:00.000Z');
    expect(iso(s.nextAfter(Date.parse('2026-11-30T10:14:59.999Z')))).toBe('2026-11-30T10:15:00.000Z');
  });

  it('reads the schedule in its time zone, winter and summer', () => {
    const s = new CronSchedule('0 3 * * *', 'Europe/Berlin');
    expect(iso(s.nextAfter(Date.parse('2026-01-10T12:00:00Z')))).toBe('2026-01-11T02:00:00.000Z'); // CET, UTC+1
    expect(iso(s.nextAfter(Date.parse('2026-07-10T12:00:00Z')))).toBe('2026-07-11T01:00:00.000Z'); // CEST, UTC+2
  });

  it('fires once on the spring-forward night, even for a wall time that does not exist that night', () => {
    // 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that night.
    const s = new CronSchedule('30 2 * * *', 'Europe/Berlin');
    const first = s.nextAfter(Date.parse('2026-03-28T12:00:00Z'))!;
    const second = s.nextAfter(first)!;
    expect(iso(first)).toBe('2026-03-29T01:00:00.000Z'); // 03:00 CEST, the first instant after the gap
    expect(iso(second)).toBe('2026-03-30T00:30:00.000Z'); // 02:30 CEST the next day
  });

  it('fires once on the fall-back night, when the wall time happens twice', () => {
    // 2026-10-25 in Berlin: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    const s = new CronSchedule('30 2 * * *', 'Europe/Berlin');
    const instants: string[] = [];
    let at = Date.parse('2026-10-24T12:00:00Z');
    for (let i = 0; i < 3; i++) {
      at = s.nextAfter(at)!;
      instants.push(iso(at)!);
    }
    expect(instants).toEqual(['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z', '2026-10-27T01:30:00.000Z']);
  });

  it('refuses anything but 5-field cron, and unknown zones, naming the expression', () => {
    expect(() => new CronSchedule('61 * * * *')).toThrow(CronScheduleError);
    expect(() => new CronSchedule('0 0 3 * * *')).toThrow(/invalid schedule "0 0 3 \* \* \*"/);
    expect(() => new CronSchedule('0 3 * * *', 'Mars/Olympus')).toThrow(/Mars\/Olympus/);
  });
});
