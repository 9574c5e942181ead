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
  'cold-200',
  'slow-200',
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

/** Scenarios that `--compare` cannot run for two trees (they start sets of nodes of their own). */
export const notComparable: readonly ScenarioName[] = ['replica-set'];

/** Scenarios that read the tiny images; a run without them seeds none. */
const tinyImageScenarios: readonly ScenarioName[] = ['config-blob', 'layers-4k'];

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
  /** The memory scenarios: clients of the same cold big blob (`cold-200`, `slow-200`). */
  memoryClients: number;
  /** Rounds of the memory scenarios (each round empties and restarts every mirror, ~1 min per mirror). */
  memoryRounds: number;
  /** What each slow client reads per second (`slow-200`), bytes. */
  slowClientBytesPerSec: number;
  /** How long the slow clients read before they hang up (`slow-200`), seconds. */
  slowClientSeconds: number;
  wan: { latencyMs: number; mbit: number };
  outDir: string;
  /**
   * `--compare <git-ref>`: the ref, checked out into a temp worktree and run as a second Outpost
   * ("outpost@<ref>") next to this tree's ("outpost"), interleaved in every round.
   */
  compare: string | undefined;
  /** Run the proxy, nginx and the direct pulls too (always without --compare; with it only on --anchors). */
  anchors: boolean;
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
  --memory-rounds N   rounds of cold-200 and slow-200 (default 2; --quick 1)
  --out DIR           where the raw results JSON goes (default bench/results)
  --compare REF       also run Outpost as of git ref REF (a temp worktree) next to this tree's,
                      interleaved in every round, and print both side by side with ratios;
                      the anchors (proxy, nginx, direct) are left out unless --anchors is given
  --anchors           with --compare: run the anchors too
`;

export function parseOptions(argv: readonly string[]): BenchOptions {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}\n${usage}`);
    const eq = arg.indexOf('=');
    if (eq > 0) flags.set(arg.slice(2, eq), arg.slice(eq + 1));
    else if (arg === '--quick' || arg === '--help' || arg === '--anchors') flags.set(arg.slice(2), true);
    else {
      const value = argv[++i];
      if (value === undefined) throw new Error(`${arg} needs a value\n${usage}`);
      flags.set(arg.slice(2), value);
    }
  }
  const known = new Set(['scenarios', 'rounds', 'duration', 'quick', 'help', 'wan-latency-ms', 'wan-mbit', 'out', 'compare', 'anchors', 'memory-rounds']);
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
  const compareRaw = flags.get('compare');
  const compare = typeof compareRaw === 'string' ? compareRaw.trim() : undefined;
  if (compare !== undefined) {
    // A ref goes to git as one argument; refuse what git would read as an option or a range.
    if (!/^[A-Za-z0-9][A-Za-z0-9._/@{}~^-]*$/.test(compare) || compare.includes('..')) {
      throw new Error(`--compare needs a git ref (branch, tag, commit, HEAD~N), got ${JSON.stringify(compareRaw)}`);
    }
    const excluded = scenarios.filter((s) => (notComparable as readonly string[]).includes(s));
    if (excluded.length > 0) throw new Error(`--compare cannot run ${excluded.join(', ')} (it starts sets of nodes of its own)`);
  }
  if (flags.has('anchors') && compare === undefined) throw new Error('--anchors only makes sense with --compare (a plain run always has the anchors)');
  const tinyImages = scenarios.some((s) => (tinyImageScenarios as readonly string[]).includes(s)) ? (quick ? 20 : 200) : 0;
  return {
    scenarios: scenarios as ScenarioName[],
    rounds: Math.round(number('rounds', quick ? 1 : 3)),
    durationS: number('duration', quick ? 2 : 8),
    warmupS: quick ? 1 : 2,
    quick,
    connections: 64,
    bigLayerBytes: quick ? 16 * MiB : 256 * MiB,
    otherLayerBytes: quick ? [2 * MiB, 256 * 1024] : [32 * MiB, 4 * MiB, 256 * 1024],
    tinyImages,
    bigGetsPerClient: quick ? { one: 4, eight: 2 } : { one: 4, eight: 2 },
    concurrentColdClients: 32,
    memoryClients: 200,
    memoryRounds: Math.round(number('memory-rounds', quick ? 1 : 2)),
    slowClientBytesPerSec: 64 * 1024,
    slowClientSeconds: quick ? 5 : 20,
    wan: { latencyMs: number('wan-latency-ms', 20), mbit: number('wan-mbit', 200) },
    outDir: typeof flags.get('out') === 'string' ? (flags.get('out') as string) : 'bench/results',
    compare,
    anchors: compare === undefined || flags.has('anchors'),
  };
}
