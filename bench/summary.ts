/** Rounds folded into one row per (scenario, metric): a median and a spread per target. */
import type { ScenarioName } from './options.ts';
import type { Measurement } from './scenarios/scenario.ts';
import { summarize, type Summary } from './stats.ts';

export interface Row {
  scenario: ScenarioName;
  metric: string;
  better: 'higher' | 'lower';
  /** target → summary over rounds, in the order targets first appeared. */
  cells: Map<string, Summary>;
}

export function summarizeRows(measurements: readonly Measurement[]): Row[] {
  const rows = new Map<string, { row: Row; values: Map<string, number[]> }>();
  for (const m of measurements) {
    const key = `${m.scenario}\u0000${m.metric}`;
    let entry = rows.get(key);
    if (!entry) {
      entry = { row: { scenario: m.scenario, metric: m.metric, better: m.better, cells: new Map() }, values: new Map() };
      rows.set(key, entry);
    }
    const list = entry.values.get(m.target);
    if (list) list.push(m.value);
    else entry.values.set(m.target, [m.value]);
  }
  return [...rows.values()].map(({ row, values }) => {
    for (const [target, list] of values) row.cells.set(target, summarize(list));
    return row;
  });
}

export function findCell(rows: readonly Row[], scenario: ScenarioName, metric: string, target: string): Summary | undefined {
  return rows.find((r) => r.scenario === scenario && r.metric === metric)?.cells.get(target);
}
