/**
 * `npm run bench`: Outpost side by side with CNCF distribution's proxy mode
 * (the anchor) and nginx (the physical limit), all on this machine in the
 * same run, targets alternating within each round. Prints markdown tables
 * (median and min–max over rounds, ratios between medians) and writes the
 * raw figures to bench/results/. Every process it starts is stopped at the
 * end, on errors and on Ctrl-C too.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCleanupStack } from '../test/support/cleanup.ts';
import { compareRows, compareTable, type CompareRow } from './compare-table.ts';
import { checkOutCompareTree, compareTargetName, describeCurrentTree } from './compare-tree.ts';
import { evaluateGoals, evaluateReplicaSetGoals } from './goals.ts';
import { machineInfo } from './machine.ts';
import { parseOptions, type BenchOptions, type ScenarioName } from './options.ts';
import { processTrees } from './process-tree.ts';
import { startRssSampler, type RssPeaks, type RssSubject } from './rss-sampler.ts';
import { allScenarios } from './scenarios/index.ts';
import type { Measurement, ScenarioContext } from './scenarios/scenario.ts';
import { layOutForNginx, seedPrimary } from './seed.ts';
import { summarizeRows } from './summary.ts';
import { goalsTable, rssTable, scenarioTable } from './table.ts';
import { rssSubjects, startTargets } from './targets.ts';

const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));

const log = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

/** tsx's esbuild service: a helper of this process that ends with it, not a server. */
function isOwnHelper(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]!.endsWith('/esbuild');
  } catch {
    return true;
  }
}

/**
 * SIGKILLs every process this run started, by pid (servers, their workers, skopeo, the relay).
 * All are stopped (SIGSTOP) first, so that no master (nginx, Outpost's cluster primary) can
 * replace a killed worker before it is killed itself.
 */
function killDescendants(): number {
  const pids = (processTrees([process.pid]).get(process.pid) ?? []).filter((pid) => pid !== process.pid && !isOwnHelper(pid));
  for (const signal of ['SIGSTOP', 'SIGKILL'] as const) {
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
  }
  return pids.length;
}

function header(options: BenchOptions, machine: ReturnType<typeof machineInfo>, trees: string): string {
  return [
    `Outpost bench — ${new Date().toISOString()} — ${trees}`,
    `machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB RAM, ${machine.kernel}; node ${machine.node}; ${machine.distribution}; ${machine.nginx}; ${machine.skopeo}`,
    `run: ${options.rounds} round(s), ${options.durationS} s per autocannon run, ${options.connections} connections, big layer ${(options.bigLayerBytes / 2 ** 20).toFixed(0)} MiB, ${options.tinyImages} tiny repositories${options.quick ? ' (--quick)' : ''}`,
    'Every server and the load generator share this machine (127.0.0.1): autocannon, the blob clients and skopeo compete with the server for the same cores,',
    'so absolute figures understate what a server does with the machine to itself. Every target gets the same client settings; compare ratios, not absolutes.',
    'Cells: median over rounds (min–max). ↑ higher is better, ↓ lower is better. Ratios are between medians.',
  ].join('\n');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const cleanup = createCleanupStack();
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    const killed = killDescendants();
    log(`\n${signal}: stopped ${killed} process(es); removing temp dirs`);
    cleanup.run().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const started = Date.now();
  const machine = machineInfo();
  const measurements: Measurement[] = [];
  const rss: Partial<Record<ScenarioName, RssPeaks>> = {};
  const failures: Array<{ scenario: ScenarioName; error: string }> = [];
  const timings: Partial<Record<ScenarioName, number>> = {};
  const loadBefore: Partial<Record<ScenarioName, number>> = {};
  let compareRowsOut: CompareRow[] = [];
  try {
    const current = await describeCurrentTree(repoRoot);
    const compareName = options.compare === undefined ? undefined : compareTargetName(options.compare);
    let trees = `outpost = this tree (${current})`;
    let compareTree: Awaited<ReturnType<typeof checkOutCompareTree>> | undefined;
    if (options.compare !== undefined) {
      log(`checking out ${options.compare} for --compare`);
      compareTree = await checkOutCompareTree(repoRoot, options.compare, (line) => log(`  ${line}`));
      // Registered before the servers: removed after the Outpost running from it has stopped.
      cleanup.add(compareTree.dispose);
      trees += `; ${compareName} = ${compareTree.commit.slice(0, 10)}${options.anchors ? '' : '; anchors left out (--anchors to add them)'}`;
    }
    log(header(options, machine, trees));
    log('\nstarting servers');
    const targets = await startTargets(
      (dispose) => cleanup.add(dispose),
      (line) => log(`  ${line}`),
      compareTree && compareName ? { name: compareName, root: compareTree.root } : undefined,
    );
    log('seeding the primary');
    const seedStarted = Date.now();
    const seed = await seedPrimary(targets.primary.url, options);
    await layOutForNginx(targets.nginx.www, targets.primary.dataDir, seed);
    log(`  app image ${seed.app.layers.map((l) => `${(l.size / 2 ** 20).toFixed(1)} MiB`).join(' + ')} + ${seed.app.config.size} B config; ` +
      `${seed.tiny.length} tiny images (config ${seed.tiny[0]?.config.size} B, layer ${seed.tiny[0]?.layers[0]?.size} B) in ${((Date.now() - seedStarted) / 1000).toFixed(1)} s`);

    for (const name of options.scenarios) {
      if (interrupted) return;
      const scenario = allScenarios[name];
      log(`\n[${name}] ${scenario.title}`);
      const subjects: RssSubject[] = rssSubjects(targets);
      const ctx: ScenarioContext = {
        options,
        targets,
        seed,
        cleanup,
        record: (m) => measurements.push({ ...m, scenario: name }),
        watch: (subject) => subjects.push(subject),
        log: (line) => log(line),
      };
      const load = os.loadavg()[0]!;
      loadBefore[name] = Math.round(load * 100) / 100;
      if (load > 1) log(`  note: load average ${load.toFixed(2)} before this scenario: something else is using this machine`);
      const sampler = startRssSampler(subjects);
      const scenarioStarted = Date.now();
      try {
        await scenario.run(ctx);
      } catch (err) {
        if (interrupted) return;
        const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
        failures.push({ scenario: name, error: message });
        log(`  ! scenario ${name} failed: ${message}`);
      } finally {
        rss[name] = sampler.stop();
        timings[name] = (Date.now() - scenarioStarted) / 1000;
        log(`  (${timings[name]!.toFixed(0)} s)`);
      }
    }

    if (interrupted) return;
    const rows = summarizeRows(measurements);
    const goals = evaluateGoals(rows, rss, options.concurrentColdClients);
    const replicaSetGoals = options.scenarios.includes('replica-set') ? evaluateReplicaSetGoals(rows) : [];
    log(`\n${'='.repeat(100)}\n${header(options, machine, trees)}`);
    for (const name of options.scenarios) {
      const scenarioRows = rows.filter((r) => r.scenario === name);
      if (scenarioRows.length === 0) continue;
      log(`\n${name} — ${allScenarios[name].title}\n`);
      log(scenarioTable(scenarioRows));
    }
    log('\npeak RSS, MiB (per process role; "worker" = the largest worker)\n');
    log(rssTable(rss));
    if (compareName !== undefined) {
      compareRowsOut = compareRows(measurements, 'outpost', compareName);
      log(`\n--compare: outpost (this tree, ${current}) ÷ ${compareName}; "per round" = the ratio within each round (median, min–max);`);
      log('verdict "better"/"worse" only when every round (at least two) agrees by more than 3 %, else "≈"');
      for (const name of options.scenarios) {
        const scenarioRows = compareRowsOut.filter((r) => r.scenario === name);
        if (scenarioRows.length === 0) continue;
        log(`\n${name} — ${allScenarios[name].title}\n`);
        log(compareTable(scenarioRows, 'outpost', compareName));
      }
    }
    if (options.anchors) {
      log('\ntargets (issues 3 and 12)\n');
      // A run of a few scenarios shows the targets it measured; a full run shows every one.
      const measured = goals.filter((g) => g.met !== undefined);
      log(goalsTable(measured.length > 0 ? measured : goals));
    }
    if (replicaSetGoals.length > 0) {
      log('\ntargets (issue 9: replica set)\n');
      log(goalsTable(replicaSetGoals));
    }
    for (const f of failures) log(`\n! scenario ${f.scenario} failed: ${f.error.split('\n')[0]}`);
    const elapsed = (Date.now() - started) / 1000;
    log(`\ntotal ${(elapsed / 60).toFixed(1)} min`);

    const outDir = resolve(options.outDir);
    await mkdir(outDir, { recursive: true });
    const file = join(outDir, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    const summary = rows.map((r) => ({ scenario: r.scenario, metric: r.metric, better: r.better, cells: Object.fromEntries(r.cells) }));
    const compare = compareName === undefined ? undefined : { current, ref: options.compare, commit: compareTree?.commit, name: compareName, rows: compareRowsOut };
    await writeFile(file, `${JSON.stringify({ options, trees, machine, elapsedS: elapsed, timings, loadBefore, measurements, summary, rss, goals, replicaSetGoals, compare, failures }, null, 2)}\n`);
    log(`raw results: ${file}`);
    if (failures.length > 0) process.exitCode = 1;
  } finally {
    if (!interrupted) {
      await cleanup.run();
      const left = killDescendants();
      if (left > 0) log(`! ${left} process(es) were still running after cleanup and were killed`);
    }
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
