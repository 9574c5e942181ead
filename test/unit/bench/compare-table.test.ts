import { describe, expect, it } from 'vitest';
import { compareRows, compareTable } from '../../../bench/compare-table.ts';
import type { Measurement } from '../../../bench/scenarios/scenario.ts';

function m(target: string, round: number, value: number, metric = 'MB/s', better: 'higher' | 'lower' = 'higher'): Measurement {
  return { scenario: 'big-blob-1', metric, target, round, value, better };
}

describe('compare rows', () => {
  it('pairs this tree with the ref round by round and says better only when every round agrees', () => {
    const rows = compareRows(
      [m('outpost', 0, 900), m('outpost@main', 0, 600), m('proxy', 0, 1000), m('outpost@main', 1, 700), m('outpost', 1, 1050), m('outpost', 2, 800), m('outpost@main', 2, 750)],
      'outpost',
      'outpost@main',
    );
    expect(rows).toHaveLength(1);
    const [row] = rows;
    expect(row!.subject.median).toBe(900);
    expect(row!.baseline.median).toBe(700);
    expect(row!.ratio).toBeCloseTo(900 / 700);
    expect(row!.roundRatios.n).toBe(3);
    expect(row!.roundRatios.min).toBeCloseTo(800 / 750);
    expect(row!.roundRatios.max).toBeCloseTo(1.5);
    expect(row!.verdict).toBe('better');
  });

  it('reads "lower is better" figures the other way round and calls mixed rounds ≈', () => {
    const cpu = (values: Array<[number, number]>): Measurement[] =>
      values.flatMap(([a, b], round) => [m('outpost', round, a, 'CPU-s/GB', 'lower'), m('outpost@x', round, b, 'CPU-s/GB', 'lower')]);
    expect(compareRows(cpu([[2, 1], [3, 2]]), 'outpost', 'outpost@x')[0]!.verdict).toBe('worse');
    expect(compareRows(cpu([[1, 2], [2, 3]]), 'outpost', 'outpost@x')[0]!.verdict).toBe('better');
    // One round is no evidence either way, nor are rounds that agree within 3 %.
    expect(compareRows(cpu([[1, 2]]), 'outpost', 'outpost@x')[0]!.verdict).toBe('≈');
    expect(compareRows(cpu([[1.02, 1], [1.025, 1]]), 'outpost', 'outpost@x')[0]!.verdict).toBe('≈');
    expect(compareRows(cpu([[1.04, 1], [1.05, 1]]), 'outpost', 'outpost@x')[0]!.verdict).toBe('worse');
    const mixed = compareRows(
      [m('outpost', 0, 1), m('outpost@x', 0, 2), m('outpost', 1, 3), m('outpost@x', 1, 2)],
      'outpost',
      'outpost@x',
    );
    expect(mixed[0]!.verdict).toBe('≈');
  });

  it('pairs the steps of a scenario by the name after the Outpost ("outpost cold" with "outpost@x cold")', () => {
    const rows = compareRows(
      [
        { scenario: 'wan', metric: 'pull s', target: 'outpost cold', round: 0, value: 10, better: 'lower' },
        { scenario: 'wan', metric: 'pull s', target: 'outpost warm', round: 0, value: 2, better: 'lower' },
        { scenario: 'wan', metric: 'pull s', target: 'outpost@x cold', round: 0, value: 12, better: 'lower' },
        { scenario: 'wan', metric: 'pull s', target: 'outpost@x warm', round: 0, value: 2, better: 'lower' },
        { scenario: 'wan', metric: 'pull s', target: 'direct (WAN)', round: 0, value: 9, better: 'lower' },
        { scenario: 'wan', metric: '1 cold GET s', target: 'outpost (WAN)', round: 0, value: 3, better: 'lower' },
        { scenario: 'wan', metric: '1 cold GET s', target: 'outpost@x (WAN)', round: 0, value: 4, better: 'lower' },
      ],
      'outpost',
      'outpost@x',
    );
    expect(rows.map((r) => [r.metric, r.ratio])).toEqual([
      ['pull s [cold]', 10 / 12],
      ['pull s [warm]', 1],
      ['1 cold GET s [WAN]', 0.75],
    ]);
  });

  it('leaves out a figure only one of the two trees has', () => {
    expect(compareRows([m('outpost', 0, 1), m('proxy', 0, 1)], 'outpost', 'outpost@x')).toEqual([]);
  });

  it('prints one markdown row per figure with both cells, the ratio, the per-round ratios and the verdict', () => {
    const rows = compareRows([m('outpost', 0, 900), m('outpost@x', 0, 600), m('outpost', 1, 1000), m('outpost@x', 1, 800)], 'outpost', 'outpost@x');
    const lines = compareTable(rows, 'outpost', 'outpost@x').split('\n');
    expect(lines[0]).toMatch(/^\| metric +\| outpost +\| outpost@x +\| ratio +\| per round +\| verdict \|$/);
    expect(lines[1]).toMatch(/^\| -+ \| -+ \| -+ \| -+ \| -+ \| -+ \|$/);
    const cells = lines[2]!.split('|').map((c) => c.trim());
    expect(cells.slice(1, 7)).toEqual(['MB/s ↑', '950 (900–1,000)', '700 (600–800)', '1.36×', '1.38× (1.25–1.50)', 'better']);
  });
});
