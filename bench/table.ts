/** Markdown tables of a run: one block per scenario, peak RSS, and the targets. */
import type { GoalResult } from './goals.ts';
import type { ScenarioName } from './options.ts';
import type { RssPeaks } from './rss-sampler.ts';
import type { Summary } from './stats.ts';
import type { Row } from './summary.ts';

export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return '–';
  const abs = Math.abs(n);
  if (abs >= 1000) return Math.round(n).toLocaleString('en-US');
  if (abs >= 100) return n.toFixed(0);
  if (abs >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

function cell(s: Summary | undefined): string {
  if (!s) return '';
  if (s.n === 1 || s.min === s.max) return formatNumber(s.median);
  return `${formatNumber(s.median)} (${formatNumber(s.min)}–${formatNumber(s.max)})`;
}

export function markdownTable(header: readonly string[], body: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...body.map(line)].join('\n');
}

const isSubject = (target: string): boolean => target.startsWith('outpost');

function ratio(a: Summary | undefined, b: Summary | undefined): string {
  if (!a || !b || b.median === 0) return '';
  return `${(a.median / b.median).toFixed(2)}×`;
}

export function scenarioTable(rows: readonly Row[]): string {
  const targets: string[] = [];
  for (const row of rows) for (const t of row.cells.keys()) if (!targets.includes(t)) targets.push(t);
  const pairs: Array<[string, string]> = [];
  for (const s of targets.filter(isSubject)) {
    for (const a of targets.filter((t) => !isSubject(t))) {
      if (rows.some((r) => r.cells.has(s) && r.cells.has(a))) pairs.push([s, a]);
    }
  }
  const header = ['metric', ...targets, ...pairs.map(([s, a]) => `${s} ÷ ${a}`)];
  const body = rows.map((row) => [
    `${row.metric} ${row.better === 'higher' ? '↑' : '↓'}`,
    ...targets.map((t) => cell(row.cells.get(t))),
    ...pairs.map(([s, a]) => ratio(row.cells.get(s), row.cells.get(a))),
  ]);
  return markdownTable(header, body);
}

export function rssTable(rss: Partial<Record<ScenarioName, RssPeaks>>): string {
  const columns: string[] = [];
  for (const peaks of Object.values(rss)) {
    for (const [target, roles] of Object.entries(peaks?.byRole ?? {})) {
      for (const role of Object.keys(roles)) {
        if (role !== 'esbuild' && !columns.includes(`${target} ${role}`)) columns.push(`${target} ${role}`);
      }
    }
  }
  const body = Object.entries(rss).map(([scenario, peaks]) => [
    scenario,
    ...columns.map((c) => {
      const [target, role] = [c.slice(0, c.lastIndexOf(' ')), c.slice(c.lastIndexOf(' ') + 1)];
      const v = peaks?.byRole[target]?.[role];
      return v === undefined ? '' : v.toFixed(0);
    }),
  ]);
  return markdownTable(['scenario', ...columns], body);
}

export function goalsTable(goals: readonly GoalResult[]): string {
  return markdownTable(
    ['target', 'measured', 'met'],
    goals.map((g) => [g.goal, g.measured, g.met === undefined ? 'not run' : g.met ? 'yes' : 'NO']),
  );
}
