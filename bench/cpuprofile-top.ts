/**
 * Where a process spent its CPU: the top self-time functions and files of a
 * V8 .cpuprofile (written by `node --cpu-prof`). The same files open as
 * flame graphs in Chrome DevTools (Performance → Load profile) or speedscope.
 *
 *   node --import tsx bench/cpuprofile-top.ts DIR_OR_FILE... [--top N]
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Sampled time not idle (program, GC and JS). */
  busyMs: number;
  functions: Array<{ name: string; where: string; selfMs: number; percentOfBusy: number }>;
  files: Array<{ where: string; selfMs: number; percentOfBusy: number }>;
}

const shortUrl = (url: string): string => {
  if (url === '') return '(native)';
  const clean = url.replace(/^file:\/\//, '');
  const nm = clean.lastIndexOf('node_modules/');
  if (nm >= 0) return clean.slice(nm + 'node_modules/'.length);
  const src = clean.search(/\/(src|bench|test)\//);
  return src >= 0 ? clean.slice(src + 1) : clean;
};

export function summarizeProfile(file: string, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  let totalUs = 0;
  let idleUs = 0;
  const fnTotals = new Map<string, { name: string; where: string; us: number }>();
  const fileTotals = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    totalUs += us;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const name = functionName || '(anonymous)';
    const where = url ? `${shortUrl(url)}:${lineNumber + 1}` : '';
    const key = `${name}\u0000${where}`;
    const entry = fnTotals.get(key) ?? { name, where, us: 0 };
    entry.us += us;
    fnTotals.set(key, entry);
    const fileKey = url ? shortUrl(url) : name.startsWith('(') ? name : '(native)';
    fileTotals.set(fileKey, (fileTotals.get(fileKey) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const pct = (us: number): number => Math.round((us / Math.max(1, busyUs)) * 1000) / 10;
  return {
    file,
    totalMs: Math.round(totalUs / 1000),
    busyMs: Math.round(busyUs / 1000),
    functions: [...fnTotals.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ name: f.name, where: f.where, selfMs: Math.round(f.us / 1000), percentOfBusy: pct(f.us) })),
    files: [...fileTotals.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, Math.min(top, 15))
      .map(([where, us]) => ({ where, selfMs: Math.round(us / 1000), percentOfBusy: pct(us) })),
  };
}

export function formatSummary(s: ProfileSummary): string {
  // node names them CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile; thread 0 is the main thread,
  // thread 1 the module loader's hooks thread that --import tsx runs on.
  const m = /\.(\d+)\.(\d+)\.\d+\.cpuprofile$/.exec(s.file);
  const who = m ? ` (pid ${m[1]}, ${m[2] === '0' ? 'main thread' : `thread ${m[2]}: module loader hooks`})` : '';
  const lines = [`${path.basename(s.file)}${who}: ${s.busyMs} ms busy of ${s.totalMs} ms sampled`, '  top self time (function — where — ms — % of busy):'];
  for (const f of s.functions) lines.push(`    ${String(f.percentOfBusy).padStart(5)}%  ${String(f.selfMs).padStart(6)} ms  ${f.name}  ${f.where}`);
  lines.push('  by file:');
  for (const f of s.files) lines.push(`    ${String(f.percentOfBusy).padStart(5)}%  ${String(f.selfMs).padStart(6)} ms  ${f.where}`);
  return lines.join('\n');
}

export function profileFiles(paths: readonly string[]): string[] {
  return paths.flatMap((p) =>
    statSync(p).isDirectory()
      ? readdirSync(p)
          .filter((f) => f.endsWith('.cpuprofile'))
          .sort()
          .map((f) => path.join(p, f))
      : [p],
  );
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const topIndex = args.indexOf('--top');
  const top = topIndex >= 0 ? Number(args.splice(topIndex, 2)[1]) : 25;
  if (args.length === 0) {
    process.stderr.write('usage: node --import tsx bench/cpuprofile-top.ts DIR_OR_FILE... [--top N]\n');
    process.exit(2);
  }
  for (const file of profileFiles(args)) process.stdout.write(`${formatSummary(summarizeProfile(file, top))}\n\n`);
}
