import { describe, expect, it } from 'vitest';
import { evaluateGoals } from '../../../bench/goals.ts';
import type { Measurement } from '../../../bench/scenarios/scenario.ts';
import { summarizeRows } from '../../../bench/summary.ts';

const pull = (target: string, seconds: number, cpu?: number): Measurement[] => [
  { scenario: 'cold-pull', metric: 'pull s', target, round: 0, value: seconds, better: 'lower' },
  ...(cpu === undefined ? [] : [{ scenario: 'cold-pull' as const, metric: 'mirror CPU-s', target, round: 0, value: cpu, better: 'lower' as const }]),
];

describe('bench goals', () => {
  it("reads the cold pull against the Node relay's figure, the floor of any Node mirror here", () => {
    const rows = summarizeRows([...pull('direct', 1.0), ...pull('relay', 1.3, 1.2), ...pull('outpost', 1.43, 1.32), ...pull('proxy', 1.4, 1.0)]);
    const goals = evaluateGoals(rows, {}, 32);
    const time = goals.find((g) => g.goal === 'cold pull ≤ 1.15× direct');
    expect(time).toEqual({ goal: 'cold pull ≤ 1.15× direct', measured: '1.43× (1.43 vs 1.00 pull s); the Node relay 1.30×, Outpost 1.10× the relay', met: false });
    const cpu = goals.find((g) => g.goal.startsWith('cold pull: mirror CPU-s'));
    expect(cpu?.measured).toBe('1.32× (1.32 vs 1.00 mirror CPU-s); the Node relay 1.20×, Outpost 1.10× the relay');
    expect(cpu?.met).toBe(false);
  });

  it('leaves the relay out when it did not run (a --compare run without --anchors)', () => {
    const rows = summarizeRows([...pull('direct', 1.0), ...pull('outpost', 1.1)]);
    const time = evaluateGoals(rows, {}, 32).find((g) => g.goal === 'cold pull ≤ 1.15× direct');
    expect(time).toEqual({ goal: 'cold pull ≤ 1.15× direct', measured: '1.10× (1.10 vs 1.00 pull s)', met: true });
  });
});
