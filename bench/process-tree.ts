/**
 * Linux /proc readers for a server's process tree: the process we started
 * plus every descendant (Outpost's cluster workers, nginx's workers).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime, in clock ticks. */
  cpuTicks: number;
  /** stime alone (time in the kernel on the process's behalf: syscalls, copies, page faults). */
  sysTicks: number;
}

/** Clock ticks per second for /proc/<pid>/stat times (`getconf CLK_TCK`, 100 on Linux). */
export const clockTicksPerSecond: number = (() => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

/** /proc/<pid>/stat: the command name may hold spaces and parentheses, so fields are counted after the last ')'. */
export function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  return { pid, ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]), sysTicks: Number(fields[12]) };
}

/**
 * CPU ticks of this process's children that have exited and been waited for
 * (cutime + cstime): over a window in which only one short-lived child ran
 * and ended (a skopeo pull), that child's CPU time.
 */
export function reapedChildTicks(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8');
  const rest = fields.slice(fields.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3: cutime is field 16, cstime 17.
  return Number(rest[13]) + Number(rest[14]);
}

/** Resident set size in KiB (VmRSS), undefined once the process is gone. */
export function readRssKiB(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The command name (/proc/<pid>/comm), undefined once the process is gone. */
export function readComm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Every live process, keyed by parent pid. One pass over /proc. */
function childrenByParent(): Map<number, number[]> {
  const byParent = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (!stat) continue;
    const list = byParent.get(stat.ppid);
    if (list) list.push(stat.pid);
    else byParent.set(stat.ppid, [stat.pid]);
  }
  return byParent;
}

/** For each root pid: the root itself (first) and all its live descendants. */
export function processTrees(roots: readonly number[]): Map<number, number[]> {
  const byParent = childrenByParent();
  const trees = new Map<number, number[]>();
  for (const root of roots) {
    const pids: number[] = [];
    const queue = [root];
    while (queue.length > 0) {
      const pid = queue.shift()!;
      pids.push(pid);
      queue.push(...(byParent.get(pid) ?? []));
    }
    trees.set(root, pids);
  }
  return trees;
}

/**
 * CPU ticks of a process's threads, grouped by thread name (/proc/<pid>/task/<tid>/comm):
 * the main thread carries the process name; libuv's threadpool is "libuv-worker", V8's
 * GC and compiler helpers "V8 DefaultWorke"; node --import hooks run on their own thread.
 */
export function threadTicks(pid: number): Map<string, number> {
  const byName = new Map<string, number>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return byName;
  }
  for (const tid of tids) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      const name = tid === String(pid) ? 'main' : readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      byName.set(name, (byName.get(name) ?? 0) + Number(fields[11]) + Number(fields[12]));
    } catch {
      // thread gone
    }
  }
  return byName;
}
