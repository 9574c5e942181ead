/**
 * `--compare`: this tree's Outpost against the ref's, figure by figure. Both
 * ran in the same rounds, one right after the other, so besides the ratio of
 * the medians each round gives a paired ratio; the verdict says "better" or
 * "worse" only when every round (at least two) agrees by more than 3 %, else
 * "≈" (inside the noise).
 */
import type { ScenarioName } from './options.ts';
import type { Measurement } from './scenarios/scenario.ts';
import { summarize, type Summary } from './stats.ts';
import { formatNumber, markdownTable } from './table.ts';

export interface CompareRow {
  scenario: ScenarioName;
  /** The metric, with the step it belongs to when a scenario measures several (e.g. "pull s [cold]"). */
  metric: string;
  better: 'higher' | 'lower';
  subject: Summary;
  baseline: Summary;
  /** subject median ÷ baseline median. */
  ratio: number;
  /** subject ÷ baseline within each round both were measured in. */
  roundRatios: Summary;
  verdict: 'better' | 'worse' | '≈';
}

/** The part of a target name after `prefix` ("" or " cold", " (WAN)"), undefined when it is another target. */
function suffixOf(target: string, prefix: string): string | undefined {
  if (target === prefix) return '';
  return target.startsWith(`${prefix} `) ? target.slice(prefix.length) : undefined;
}

/** Per-round ratios closer to 1 than this are noise, whatever their sign. */
export const noiseBand = 0.03;

function verdictOf(better: 'higher' | 'lower', ratios: Summary): CompareRow['verdict'] {
  // One round cannot tell a change from the noise of a shared machine.
  if (ratios.n < 2) return '≈';
  const up = ratios.min > 1 + noiseBand;
  const down = ratios.max < 1 - noiseBand;
  const improved = better === 'higher' ? up : down;
  const regressed = better === 'higher' ? down : up;
  return improved ? 'better' : regressed ? 'worse' : '≈';
}

/**
 * Pairs every figure of `subject` (and of `subject <step>`) with the same figure of `baseline`
 * (`baseline <step>`), in the order the figures were recorded.
 */
export function compareRows(measurements: readonly Measurement[], subject: string, baseline: string): CompareRow[] {
  interface Pair {
    scenario: ScenarioName;
    metric: string;
    better: 'higher' | 'lower';
    subject: Map<number, number[]>;
    baseline: Map<number, number[]>;
  }
  const pairs = new Map<string, Pair>();
  for (const m of measurements) {
    const ofSubject = suffixOf(m.target, subject);
    const ofBaseline = ofSubject === undefined ? suffixOf(m.target, baseline) : undefined;
    const suffix = ofSubject ?? ofBaseline;
    if (suffix === undefined) continue;
    const metric = suffix === '' ? m.metric : `${m.metric} [${suffix.trim().replace(/^\((.*)\)$/, '$1')}]`;
    const key = `${m.scenario}\u0000${metric}`;
    let pair = pairs.get(key);
    if (!pair) pairs.set(key, (pair = { scenario: m.scenario, metric, better: m.better, subject: new Map(), baseline: new Map() }));
    const side = ofSubject !== undefined ? pair.subject : pair.baseline;
    const list = side.get(m.round);
    if (list) list.push(m.value);
    else side.set(m.round, [m.value]);
  }
  const rows: CompareRow[] = [];
  for (const pair of pairs.values()) {
    const subjectValues = [...pair.subject.values()].flat();
    const baselineValues = [...pair.baseline.values()].flat();
    if (subjectValues.length === 0 || baselineValues.length === 0) continue;
    const s = summarize(subjectValues);
    const b = summarize(baselineValues);
    const perRound: number[] = [];
    for (const [round, values] of pair.subject) {
      const other = pair.baseline.get(round);
      if (!other) continue;
      const sv = summarize(values).median;
      const bv = summarize(other).median;
      if (bv !== 0 && Number.isFinite(sv) && Number.isFinite(bv)) perRound.push(sv / bv);
    }
    const roundRatios = summarize(perRound);
    rows.push({
      scenario: pair.scenario,
      metric: pair.metric,
      better: pair.better,
      subject: s,
      baseline: b,
      ratio: b.median === 0 ? Number.NaN : s.median / b.median,
      roundRatios,
      verdict: verdictOf(pair.better, roundRatios),
    });
  }
  return rows;
}

function cell(s: Summary): string {
  if (s.n === 1 || s.min === s.max) return formatNumber(s.median);
  return `${formatNumber(s.median)} (${formatNumber(s.min)}–${formatNumber(s.max)})`;
}

function ratioCell(r: number): string {
  return Number.isFinite(r) ? `${r.toFixed(2)}×` : '–';
}

function roundsCell(s: Summary): string {
  if (s.n === 0) return '';
  if (s.n === 1 || s.min === s.max) return ratioCell(s.median);
  return `${ratioCell(s.median)} (${s.min.toFixed(2)}–${s.max.toFixed(2)})`;
}

/** One markdown table for one scenario's rows: both trees, the ratio of medians, the per-round ratios, the verdict. */
export function compareTable(rows: readonly CompareRow[], subjectLabel: string, baselineLabel: string): string {
  return markdownTable(
    ['metric', subjectLabel, baselineLabel, 'ratio', 'per round', 'verdict'],
    rows.map((r) => [
      `${r.metric} ${r.better === 'higher' ? '↑' : '↓'}`,
      cell(r.subject),
      cell(r.baseline),
      ratioCell(r.ratio),
      roundsCell(r.roundRatios),
      r.verdict,
    ]),
  );
}
