/** What a scenario gets to work with, and what it reports. */
import type { CleanupStack } from '../../test/support/cleanup.ts';
import type { BenchOptions, ScenarioName } from '../options.ts';
import type { RssSubject } from '../rss-sampler.ts';
import type { Seed } from '../seed.ts';
import type { Targets } from '../targets.ts';

/** One figure from one round for one target. */
export interface Measurement {
  scenario: ScenarioName;
  /** Row label, e.g. "req/s", "MB/s", "pull s". */
  metric: string;
  target: string;
  round: number;
  value: number;
  better: 'higher' | 'lower';
  /** Whatever explains the figure (latency percentiles, CPU, error counts, upstream GETs...). */
  detail?: Record<string, unknown>;
}

export interface ScenarioContext {
  options: BenchOptions;
  targets: Targets;
  seed: Seed;
  cleanup: CleanupStack;
  record(m: Omit<Measurement, 'scenario'>): void;
  /** Adds a process tree to the RSS sampling of the running scenario (servers a scenario starts itself). */
  watch(subject: RssSubject): void;
  log(line: string): void;
}

export interface Scenario {
  name: ScenarioName;
  title: string;
  run(ctx: ScenarioContext): Promise<void>;
}

/** The targets in a different order each round, so no target always runs right after the same neighbour. */
export function rotate<T>(items: readonly T[], round: number): T[] {
  const k = round % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

export function round1(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
