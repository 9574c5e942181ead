/**
 * Peak resident memory of each server process while a scenario runs:
 * VmRSS of every process in each server's tree, sampled every ~100 ms.
 * The tree is re-read on every sample, so processes restarted between
 * rounds (cold scenarios) are followed.
 */
import { processTrees, readComm, readRssKiB } from './process-tree.ts';

export interface RssSubject {
  /** Target name ("outpost", "proxy", "nginx", ...). */
  target: string;
  /** The process we started; undefined while the server is stopped. */
  rootPid(): number | undefined;
  /**
   * Role of the root process and of its descendants ("primary"/"worker", "master"/"worker", "process").
   * tsx's esbuild service (a child of a node process run with --import tsx) gets the role "esbuild".
   */
  rootRole: string;
  childRole: string;
}

/** target → role → peak RSS in MiB; `perProcess` has the peak of every pid seen. */
export interface RssPeaks {
  byRole: Record<string, Record<string, number>>;
  perProcess: Record<string, Array<{ pid: number; role: string; peakMiB: number }>>;
  samples: number;
}

export interface RssSampler {
  stop(): RssPeaks;
}

export function startRssSampler(subjects: readonly RssSubject[], intervalMs = 100): RssSampler {
  const peaks = new Map<string, Map<number, { role: string; kib: number }>>();
  let samples = 0;
  const sample = (): void => {
    const roots = subjects.map((s) => s.rootPid());
    const trees = processTrees(roots.filter((pid): pid is number => pid !== undefined));
    subjects.forEach((subject, i) => {
      const root = roots[i];
      if (root === undefined) return;
      let byPid = peaks.get(subject.target);
      if (!byPid) peaks.set(subject.target, (byPid = new Map()));
      for (const pid of trees.get(root) ?? []) {
        const kib = readRssKiB(pid);
        if (kib === undefined) continue;
        const role = pid === root ? subject.rootRole : readComm(pid) === 'esbuild' ? 'esbuild' : subject.childRole;
        const seen = byPid.get(pid);
        if (!seen || kib > seen.kib) byPid.set(pid, { role, kib });
      }
    });
    samples += 1;
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const result: RssPeaks = { byRole: {}, perProcess: {}, samples };
      for (const [target, byPid] of peaks) {
        const roles: Record<string, number> = {};
        const list: Array<{ pid: number; role: string; peakMiB: number }> = [];
        for (const [pid, { role, kib }] of byPid) {
          const mib = kib / 1024;
          roles[role] = Math.max(roles[role] ?? 0, mib);
          list.push({ pid, role, peakMiB: Math.round(mib * 10) / 10 });
        }
        result.byRole[target] = roles;
        result.perProcess[target] = list;
      }
      return result;
    },
  };
}
