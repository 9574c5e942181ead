/**
 * Server CPU time over a measurement window: utime + stime of every process
 * in the server's tree (Outpost: cluster primary + workers; nginx: master +
 * workers; distribution: its one process), from /proc/<pid>/stat.
 */
import { clockTicksPerSecond, processTrees, readStat } from './process-tree.ts';

export interface CpuWindow {
  /** CPU-seconds the tree used since the window opened. */
  stop(): number;
}

function ticksOf(rootPid: number): Map<number, number> {
  const ticks = new Map<number, number>();
  for (const pid of processTrees([rootPid]).get(rootPid) ?? []) {
    const stat = readStat(pid);
    if (stat) ticks.set(pid, stat.cpuTicks);
  }
  return ticks;
}

/** Opens a window on the tree rooted at `rootPid`; processes that exit inside the window are not counted. */
export function openCpuWindow(rootPid: number): CpuWindow {
  const before = ticksOf(rootPid);
  return {
    stop() {
      let ticks = 0;
      for (const [pid, now] of ticksOf(rootPid)) ticks += now - (before.get(pid) ?? 0);
      return ticks / clockTicksPerSecond;
    },
  };
}
