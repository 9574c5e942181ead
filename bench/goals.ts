/**
 * The issue's targets, as ratios between medians measured in the same run
 * (never absolute figures: this is a shared, noisy 2-core machine).
 */
import type { ScenarioName } from './options.ts';
import type { RssPeaks } from './rss-sampler.ts';
import { memoryHeadroomMiB } from './scenarios/memory.ts';
import { outpostTrio, proxyTrio, replicaSetSize } from './scenarios/replica-set.ts';
import { findCell, type Row } from './summary.ts';

export interface GoalResult {
  goal: string;
  /** What was measured, e.g. "52.3× (12,300 vs 235 req/s)". */
  measured: string;
  /** undefined when the scenario was not run. */
  met: boolean | undefined;
}

const fmt = (n: number): string => (Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en-US') : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2));

function ratioGoal(
  rows: readonly Row[],
  goal: string,
  scenario: ScenarioName,
  metric: string,
  subject: string,
  anchor: string,
  test: (ratio: number) => boolean,
): GoalResult {
  const a = findCell(rows, scenario, metric, subject);
  const b = findCell(rows, scenario, metric, anchor);
  if (!a || !b) return { goal, measured: 'not run', met: undefined };
  const ratio = a.median / b.median;
  return { goal, measured: `${ratio.toFixed(2)}× (${fmt(a.median)} vs ${fmt(b.median)} ${metric})`, met: test(ratio) };
}

function maxGoal(rows: readonly Row[], goal: string, scenario: ScenarioName, metric: string, subject: string, limit: number): GoalResult {
  const cell = findCell(rows, scenario, metric, subject);
  if (!cell) return { goal, measured: 'not run', met: undefined };
  return { goal, measured: `max ${fmt(cell.max)} over ${cell.n} rounds (median ${fmt(cell.median)})`, met: cell.max <= limit };
}

function medianGoal(rows: readonly Row[], goal: string, scenario: ScenarioName, metric: string, subject: string, limit: number): GoalResult {
  const cell = findCell(rows, scenario, metric, subject);
  if (!cell) return { goal, measured: 'not run', met: undefined };
  return { goal, measured: `${cell.median.toFixed(2)}× (median; ${cell.min.toFixed(2)}–${cell.max.toFixed(2)})`, met: cell.median <= limit };
}

/**
 * A cold-pull goal with the Node relay's figure next to it (bench/node-relay.ts:
 * the least a Node mirror does), so the measured ratio reads against what any
 * mirror written in Node reaches on this machine.
 */
function withFloor(rows: readonly Row[], result: GoalResult, metric: string, anchor: string): GoalResult {
  const relay = findCell(rows, 'cold-pull', metric, 'relay');
  const base = findCell(rows, 'cold-pull', metric, anchor);
  const outpost = findCell(rows, 'cold-pull', metric, 'outpost');
  if (!relay || !base || !outpost) return result;
  return { ...result, measured: `${result.measured}; the Node relay ${(relay.median / base.median).toFixed(2)}×, Outpost ${(outpost.median / relay.median).toFixed(2)}× the relay` };
}

/** N cold GETs against one, with what bounds them on this machine: delivering N warm copies. */
function coldGoal(rows: readonly Row[], goal: string, scenario: ScenarioName, subject: string, clients: number): GoalResult {
  const result = medianGoal(rows, goal, scenario, `${clients} cold ÷ 1 cold`, subject, 1.5);
  const warm = findCell(rows, scenario, `${clients} warm GETs s`, subject);
  const single = findCell(rows, scenario, '1 cold GET s', subject);
  const overhead = findCell(rows, scenario, `${clients} cold ÷ max(1 cold, ${clients} warm)`, subject);
  if (warm && single && overhead) {
    result.measured += `; ${clients} warm GETs alone take ${(warm.median / single.median).toFixed(2)}× one cold GET here; cold ÷ max(1 cold, ${clients} warm) = ${overhead.median.toFixed(2)}×`;
  }
  return result;
}

export function evaluateGoals(rows: readonly Row[], rss: Partial<Record<ScenarioName, RssPeaks>>, clients: number): GoalResult[] {
  const goals: GoalResult[] = [
    ratioGoal(rows, 'warm tag HEAD ≥ 20× proxy', 'tag-head', 'req/s', 'outpost', 'proxy', (r) => r >= 20),
    ratioGoal(rows, 'warm tag GET ≥ 20× proxy', 'tag-get', 'req/s', 'outpost', 'proxy', (r) => r >= 20),
    ratioGoal(rows, 'small (config) blob GET ≥ 5× proxy', 'config-blob', 'req/s', 'outpost', 'proxy', (r) => r >= 5),
    ratioGoal(rows, '4 KiB layers, many repos ≥ 5× proxy', 'layers-4k', 'req/s', 'outpost', 'proxy', (r) => r >= 5),
    ratioGoal(rows, 'big blob, 8 clients ≥ 1.0× proxy', 'big-blob-8', 'MB/s', 'outpost', 'proxy', (r) => r >= 1.0),
    ratioGoal(rows, 'big blob, 8 clients ≥ 0.8× nginx', 'big-blob-8', 'MB/s', 'outpost', 'nginx', (r) => r >= 0.8),
    ratioGoal(rows, 'big blob, 1 client ≥ 1.0× proxy', 'big-blob-1', 'MB/s', 'outpost', 'proxy', (r) => r >= 1.0),
    ratioGoal(rows, 'big blob, 1 client ≥ 0.8× nginx', 'big-blob-1', 'MB/s', 'outpost', 'nginx', (r) => r >= 0.8),
    ratioGoal(rows, 'big blob, 8 clients: CPU-s/GB ≤ 1.5× proxy', 'big-blob-8', 'server CPU-s/GB', 'outpost', 'proxy', (r) => r <= 1.5),
    ratioGoal(rows, 'big blob, 1 client: CPU-s/GB ≤ 1.5× proxy', 'big-blob-1', 'server CPU-s/GB', 'outpost', 'proxy', (r) => r <= 1.5),
    withFloor(rows, ratioGoal(rows, 'cold pull ≤ 1.15× direct', 'cold-pull', 'pull s', 'outpost', 'direct', (r) => r <= 1.15), 'pull s', 'direct'),
    withFloor(rows, ratioGoal(rows, "cold pull: mirror CPU-s ≤ the proxy's", 'cold-pull', 'mirror CPU-s', 'outpost', 'proxy', (r) => r <= 1), 'mirror CPU-s', 'proxy'),
    maxGoal(rows, 'cold pull: each blob fetched once', 'cold-pull', 'fetches per blob (max)', 'outpost', 1),
    maxGoal(rows, `${clients} cold GETs: one upstream GET`, 'cold-32', `upstream GETs (${clients} cold)`, 'outpost', 1),
    coldGoal(rows, `${clients} cold GETs ≤ 1.5× one cold GET (loopback primary)`, 'cold-32', 'outpost', clients),
    ratioGoal(rows, 'WAN: cold pull ≤ 1.1× direct', 'wan', 'pull s', 'outpost cold', 'direct (WAN)', (r) => r <= 1.1),
    maxGoal(rows, `WAN: ${clients} cold GETs, one upstream GET`, 'wan', `upstream GETs (${clients} cold)`, 'outpost (WAN)', 1),
    coldGoal(rows, `WAN: ${clients} cold GETs ≤ 1.5× one cold GET`, 'wan', 'outpost (WAN)', clients),
  ];
  for (const scenario of ['cold-200', 'slow-200'] as const) {
    const what = scenario === 'cold-200' ? '200 clients of a cold blob (cold-200)' : '200 slow clients (slow-200)';
    goals.push(
      withAnchor(maxGoal(rows, `${what}: every process's peak RSS ≤ idle + ${memoryHeadroomMiB} MiB`, scenario, 'worst peak − idle MiB', 'outpost', memoryHeadroomMiB), rows, scenario, 'worst peak − idle MiB', 'proxy', ' MiB'),
      withAnchor(maxGoal(rows, `${what}: every process back within idle + ${memoryHeadroomMiB} MiB after`, scenario, 'worst after − idle MiB', 'outpost', memoryHeadroomMiB), rows, scenario, 'worst after − idle MiB', 'proxy', ' MiB'),
    );
  }
  const correct = rows.filter((r) => r.metric.startsWith('correct bodies'));
  if (correct.length > 0) {
    const worst = Math.min(...correct.flatMap((r) => [...r.cells.entries()].filter(([t]) => t.startsWith('outpost')).map(([, s]) => s.min)));
    goals.push({ goal: `cold GETs: all ${clients} bodies correct (sha256)`, measured: `worst round ${worst}/${clients}`, met: worst === clients });
  }
  let worstWorker = 0;
  let where = '';
  for (const [scenario, peaks] of Object.entries(rss)) {
    for (const [target, roles] of Object.entries(peaks?.byRole ?? {})) {
      // This tree's Outposts only, not the ref's of a --compare run (outpost@<ref>).
      if (!target.startsWith('outpost') || target.includes('@')) continue;
      const worker = roles['worker'] ?? 0;
      if (worker > worstWorker) {
        worstWorker = worker;
        where = `${scenario}${target === 'outpost' ? '' : `, ${target}`}`;
      }
    }
  }
  goals.push({
    goal: 'peak RSS per Outpost worker < 150 MiB, every scenario',
    measured: Object.keys(rss).length === 0 ? 'not run' : `max ${worstWorker.toFixed(0)} MiB (${where})`,
    met: Object.keys(rss).length === 0 ? undefined : worstWorker < 150,
  });
  return goals;
}

/** The anchor's figure for the same row, to read the subject's against. */
function withAnchor(result: GoalResult, rows: readonly Row[], scenario: ScenarioName, metric: string, anchor: string, unit: string): GoalResult {
  const cell = findCell(rows, scenario, metric, anchor);
  if (cell && result.met !== undefined) result.measured += `; ${anchor}: ${fmt(cell.median)}${unit}`;
  return result;
}

/**
 * The replica-set targets of issue 9: one WAN crossing per blob for the whole set, no slower
 * than one replica alone, and a replica warming up from a peer costs the primary nothing.
 */
export function evaluateReplicaSetGoals(rows: readonly Row[]): GoalResult[] {
  const n = replicaSetSize;
  const scenario: ScenarioName = 'replica-set';
  const bytes = findCell(rows, scenario, `${n} at once: WAN bytes ÷ image`, outpostTrio);
  const bytesGoal: GoalResult = bytes
    ? {
        goal: `${n} cold pulls at once, one per replica: WAN bytes 1.0× the image (≤ 1.01× with headers and manifests)`,
        measured: `${bytes.median.toFixed(2)}× (median; ${bytes.min.toFixed(2)}–${bytes.max.toFixed(2)})`,
        met: bytes.median <= 1.01,
      }
    : { goal: `${n} cold pulls at once, one per replica: WAN bytes 1.0× the image`, measured: 'not run', met: undefined };
  const peer = findCell(rows, scenario, 'b after a: blob MiB from primary', outpostTrio);
  return [
    withAnchor(bytesGoal, rows, scenario, `${n} at once: WAN bytes ÷ image`, proxyTrio, '×'),
    withAnchor(
      medianGoal(rows, `${n} cold pulls at once ≤ 1.2× one cold pull on one replica`, scenario, `${n} at once ÷ 1 cold`, outpostTrio, 1.2),
      rows,
      scenario,
      `${n} at once ÷ 1 cold`,
      proxyTrio,
      '×',
    ),
    peer
      ? {
          goal: 'peer fill: replica b pulling what a holds fetches no blob bytes from the primary',
          measured: `max ${fmt(peer.max)} MiB over ${peer.n} rounds (median ${fmt(peer.median)})`,
          met: peer.max === 0,
        }
      : { goal: 'peer fill: replica b pulling what a holds fetches no blob bytes from the primary', measured: 'not run', met: undefined },
  ];
}
