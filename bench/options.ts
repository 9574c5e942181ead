/** Command-line options of `npm run bench` and the sizes they imply. */

export const scenarioNames = [
  'tag-head',
  'tag-get',
  'config-blob',
  'layers-4k',
  'big-blob-1',
  'big-blob-8',
  'cold-pull',
  'cold-32',
  'wan',
  'replica-set',
] as const;
export type ScenarioName = (typeof scenarioNames)[number];

/**
 * Scenarios a run leaves out unless `--scenarios` names them: `replica-set`
 * moves the image over the slow link about ten times per round (~4 min per
 * round on 2 cores, ~11 min for 3), too much to add to the ~15 min of the rest.
 */
export const optInScenarios: readonly ScenarioName[] = ['replica-set'];
export const defaultScenarios: readonly ScenarioName[] = scenarioNames.filter((s) => !optInScenarios.includes(s));

export interface BenchOptions {
  scenarios: ScenarioName[];
  rounds: number;
  /** autocannon run length per target per round, seconds. */
  durationS: number;
  /** autocannon warm-up run per target before the rounds, seconds. */
  warmupS: number;
  quick: boolean;
  connections: number;
  /** The big layer (in the pulled image; the big-blob and cold-32 scenarios use it). */
  bigLayerBytes: number;
  /** The other layers of the pulled image. */
  otherLayerBytes: number[];
  /** Tiny images, one repository each (manifest, ~600 B config, one ~4 KiB layer). */
  tinyImages: number;
  /** Sequential GETs per client in the warm big-blob scenarios (1 client, 8 clients). */
  bigGetsPerClient: { one: number; eight: number };
  concurrentColdClients: number;
  wan: { latencyMs: number; mbit: number };
  outDir: string;
}

const MiB = 1024 * 1024;

export const usage = `usage: npm run bench -- [options]

  --scenarios a,b,c   subset of: ${scenarioNames.join(', ')}
                      (default: all but the opt-in ${optInScenarios.join(', ')})
  --rounds N          rounds per scenario, targets alternating within each round (default 3; --quick 1)
  --duration S        seconds per autocannon run (default 8; --quick 2)
  --quick             small sizes for a smoke run (16 MiB big layer, 20 tiny images)
  --wan-latency-ms N  one-way delay of the simulated WAN link (default 20)
  --wan-mbit N        bandwidth of the simulated WAN link, each direction (default 200)
  --out DIR           where the raw results JSON goes (default bench/results)
`;

export function parseOptions(argv: readonly string[]): BenchOptions {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}\n${usage}`);
    const eq = arg.indexOf('=');
    if (eq > 0) flags.set(arg.slice(2, eq), arg.slice(eq + 1));
    else if (arg === '--quick' || arg === '--help') flags.set(arg.slice(2), true);
    else {
      const value = argv[++i];
      if (value === undefined) throw new Error(`${arg} needs a value\n${usage}`);
      flags.set(arg.slice(2), value);
    }
  }
  const known = new Set(['scenarios', 'rounds', 'duration', 'quick', 'help', 'wan-latency-ms', 'wan-mbit', 'out']);
  for (const key of flags.keys()) if (!known.has(key)) throw new Error(`unknown option --${key}\n${usage}`);
  if (flags.has('help')) {
    process.stdout.write(usage);
    process.exit(0);
  }
  const quick = flags.get('quick') === true;
  const number = (key: string, fallback: number): number => {
    const raw = flags.get(key);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (typeof raw !== 'string' || !Number.isFinite(n) || n <= 0) throw new Error(`--${key} must be a positive number, got ${String(raw)}`);
    return n;
  };
  const scenariosRaw = flags.get('scenarios');
  const scenarios =
    typeof scenariosRaw === 'string'
      ? scenariosRaw.split(',').map((s) => s.trim()).filter(Boolean)
      : [...defaultScenarios];
  for (const s of scenarios) {
    if (!(scenarioNames as readonly string[]).includes(s)) throw new Error(`unknown scenario ${s}; known: ${scenarioNames.join(', ')}`);
  }
  return {
    scenarios: scenarios as ScenarioName[],
    rounds: Math.round(number('rounds', quick ? 1 : 3)),
    durationS: number('duration', quick ? 2 : 8),
    warmupS: quick ? 1 : 2,
    quick,
    connections: 64,
    bigLayerBytes: quick ? 16 * MiB : 256 * MiB,
    otherLayerBytes: quick ? [2 * MiB, 256 * 1024] : [32 * MiB, 4 * MiB, 256 * 1024],
    tinyImages: quick ? 20 : 200,
    bigGetsPerClient: quick ? { one: 4, eight: 2 } : { one: 4, eight: 2 },
    concurrentColdClients: 32,
    wan: { latencyMs: number('wan-latency-ms', 20), mbit: number('wan-mbit', 200) },
    outDir: typeof flags.get('out') === 'string' ? (flags.get('out') as string) : 'bench/results',
  };
}
