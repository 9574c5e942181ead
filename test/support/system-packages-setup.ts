/**
 * vitest globalSetup: before any test file runs (`npm test`, `npx vitest run
 * FILE`), make sure the binaries in test/system-packages.txt are on PATH.
 * As root the missing Debian packages are installed; otherwise the run stops
 * with one list of what to install. When everything is present this costs
 * one bash process.
 */
import { spawnSync } from 'node:child_process';
import { ensureSystemPackagesScript } from './system-packages.ts';

/** Set to 1 to run without the check; the tests that need a missing binary then fail one by one. */
const skipVariable = 'OUTPOST_SKIP_SYSTEM_PACKAGES';

export function setup(): void {
  if (process.env[skipVariable] === '1') return;
  const result = spawnSync('bash', [ensureSystemPackagesScript], { stdio: 'inherit' });
  if (result.status === 0) return;
  if (result.error !== undefined) process.stderr.write(`cannot run ${ensureSystemPackagesScript}: ${result.error.message}\n`);
  process.stderr.write(`To run the tests anyway, those that need a missing binary failing: ${skipVariable}=1 npm test\n`);
  // Exit rather than throw: a throw here buries the list above under vitest's
  // "No test files found" and a stack trace of this file.
  process.exit(1);
}
