import { describe, expect, it } from 'vitest';
import { CronSchedule } from '../../../src/prefetch/cron-schedule.ts';
import { RetentionSweeps } from '../../../src/prefetch/retention-sweeps.ts';
import { FakeTime, recordingLogger, replicas } from './fakes.ts';

function setup(leading: () => boolean) {
  const time = new FakeTime(Date.parse('2026-11-30T02:00:00Z'));
  const logger = recordingLogger();
  const calls: string[] = [];
  const sweeps = new RetentionSweeps({
    schedule: new CronSchedule('0 3 * * *'),
    clock: time,
    timers: time,
    isLeader: leading,
    logger,
    replicas: async () => replicas('n1', 'n2', 'n3'),
    selfId: 'n1',
    local: async () => (calls.push('local n1'), { evicted: 2, bytes: 200 }),
    remote: async (replica) => {
      calls.push(`remote ${replica.id}`);
      if (replica.id === 'n3') throw new Error('replica n3 answered HTTP 503');
      return { evicted: 1, bytes: 10 };
    },
  });
  return { time, sweeps, calls, logger };
}

describe('RetentionSweeps', () => {
  it('has every live replica sweep on the schedule, this one directly, the others over the peer API', async () => {
    const { time, sweeps, calls, logger } = setup(() => true);
    sweeps.start();
    await time.advance(59 * 60_000);
    expect(calls).toEqual([]);
    await time.advance(60_000);
    expect(calls.sort()).toEqual(['local n1', 'remote n2', 'remote n3']);
    const done = logger.lines.find((l) => l.msg === 'retention sweep done');
    expect(done?.obj).toMatchObject({ replicas: 3, failed: 1, evicted: 3, bytes: 210 });
    expect(logger.lines.find((l) => l.msg.startsWith('retention sweep failed on a replica'))?.obj).toMatchObject({ replica: 'n3' });
    expect(new Date(sweeps.nextSweepAt()!).toISOString()).toBe('2026-12-01T03:00:00.000Z');
    await sweeps.stop();
  });

  it('sweeps nothing on a replica that does not lead', async () => {
    const { time, sweeps, calls } = setup(() => false);
    sweeps.start();
    await time.advance(2 * 24 * 3_600_000);
    expect(calls).toEqual([]);
    await sweeps.stop();
  });
});
