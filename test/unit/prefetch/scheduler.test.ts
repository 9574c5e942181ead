import { describe, expect, it } from 'vitest';
import { CronSchedule } from '../../../src/prefetch/cron-schedule.ts';
import { Scheduler, type RunReason } from '../../../src/prefetch/scheduler.ts';
import { FakeTime, gate, recordingLogger } from './fakes.ts';

const minute = 60_000;

function setup(options: { leader?: () => boolean; runOnStart?: boolean; schedule?: string; timezone?: string; runFor?: () => Promise<void> } = {}) {
  const time = new FakeTime(Date.parse('2026-11-30T10:00:00Z'));
  const logger = recordingLogger();
  const runs: Array<{ job: string; dueAt: string; reason: RunReason; firedAt: string }> = [];
  const scheduler = new Scheduler({
    jobs: [{ name: 'j', schedule: new CronSchedule(options.schedule ?? '*/10 * * * *', options.timezone ?? 'UTC'), runOnStart: options.runOnStart ?? false }],
    clock: time,
    timers: time,
    isLeader: options.leader ?? (() => true),
    run: async (job, dueAt, reason) => {
      runs.push({ job, dueAt: new Date(dueAt).toISOString(), reason, firedAt: new Date(time.now()).toISOString() });
      await options.runFor?.();
    },
    logger,
  });
  return { time, scheduler, runs, logger };
}

describe('Scheduler', () => {
  it('fires each cron instant on time, with no drift over many periods', async () => {
    const { time, scheduler, runs } = setup();
    scheduler.start();
    expect(new Date(scheduler.nextRunAt('j')!).toISOString()).toBe('2026-11-30T10:10:00.000Z');
    await time.advance(24 * 60 * minute);
    expect(runs).toHaveLength(144);
    expect(runs.every((r) => r.dueAt === r.firedAt && r.reason === 'schedule')).toBe(true);
    expect(runs.at(-1)!.dueAt).toBe('2026-12-01T10:00:00.000Z');
    await scheduler.stop();
  });

  it('follows the time zone across a DST change (Europe/Berlin, 03:00 local)', async () => {
    const time = new FakeTime(Date.parse('2026-03-27T12:00:00Z'));
    const fired: string[] = [];
    const scheduler = new Scheduler({
      jobs: [{ name: 'j', schedule: new CronSchedule('0 3 * * *', 'Europe/Berlin'), runOnStart: false }],
      clock: time,
      timers: time,
      isLeader: () => true,
      run: async (_job, dueAt) => void fired.push(new Date(dueAt).toISOString()),
      logger: recordingLogger(),
    });
    scheduler.start();
    await time.advance(3 * 24 * 60 * minute);
    expect(fired).toEqual(['2026-03-28T02:00:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-30T01:00:00.000Z']);
    await scheduler.stop();
  });

  it('arms a far instant in steps of at most an hour and still fires exactly on it', async () => {
    const { time, scheduler, runs } = setup({ schedule: '0 3 1 * *' }); // monthly
    scheduler.start();
    expect(time.armed()[0]! - time.now()).toBeLessThanOrEqual(60 * minute);
    await time.advance(30 * 24 * 60 * minute);
    expect(runs.map((r) => r.firedAt)).toEqual(['2026-12-01T03:00:00.000Z']);
    await scheduler.stop();
  });

  it('does not start a run while the previous one of the job is still going; the due instant is skipped and logged', async () => {
    const running = gate();
    const { time, scheduler, runs, logger } = setup({ runFor: () => running.promise });
    scheduler.start();
    await time.advance(35 * minute); // due at :10, :20, :30
    expect(runs.map((r) => r.dueAt)).toEqual(['2026-11-30T10:10:00.000Z']);
    expect(logger.lines.filter((l) => l.msg.includes('still in progress'))).toHaveLength(2);
    running.open();
    await time.advance(10 * minute);
    expect(runs.map((r) => r.dueAt)).toEqual(['2026-11-30T10:10:00.000Z', '2026-11-30T10:40:00.000Z']);
    await scheduler.stop();
  });

  it('starts runs only while leading, asking at the moment a run is due', async () => {
    let leading = false;
    const { time, scheduler, runs } = setup({ leader: () => leading });
    scheduler.start();
    await time.advance(25 * minute);
    expect(runs).toHaveLength(0);
    expect(new Date(scheduler.nextRunAt('j')!).toISOString()).toBe('2026-11-30T10:30:00.000Z'); // still known off the leader
    leading = true;
    await time.advance(10 * minute);
    expect(runs.map((r) => r.dueAt)).toEqual(['2026-11-30T10:30:00.000Z']);
    await scheduler.stop();
  });

  it('fires runOnStart jobs once, when the process first leads', async () => {
    let leading = false;
    const { time, scheduler, runs } = setup({ leader: () => leading, runOnStart: true, schedule: '0 0 1 1 *' });
    scheduler.start();
    await time.advance(minute);
    expect(runs).toHaveLength(0);
    leading = true;
    scheduler.leadershipChanged(true);
    await time.advance(minute);
    scheduler.leadershipChanged(false);
    scheduler.leadershipChanged(true);
    await time.advance(minute);
    expect(runs).toEqual([{ job: 'j', dueAt: '2026-11-30T10:01:00.000Z', reason: 'start', firedAt: '2026-11-30T10:01:00.000Z' }]);
    await scheduler.stop();
  });

  it('stops cleanly: no timer left, runs in progress awaited, nothing fired after', async () => {
    const running = gate();
    const { time, scheduler, runs } = setup({ runOnStart: true, runFor: () => running.promise });
    scheduler.start();
    await time.advance(0);
    let stopped = false;
    const stopping = scheduler.stop().then(() => {
      stopped = true;
    });
    expect(time.armed()).toEqual([]);
    await time.advance(0);
    expect(stopped).toBe(false);
    running.open();
    await stopping;
    await time.advance(60 * minute);
    expect(runs).toHaveLength(1);
    expect(scheduler.fire('j', time.now(), 'manual')).toBe(false);
  });
});
