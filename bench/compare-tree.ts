/**
 * `--compare <git-ref>`: the ref checked out into a temp worktree
 * (`git worktree add --detach`), with a node_modules of its own, so a second
 * Outpost can run from it next to this tree's. When the ref's
 * package-lock.json is byte for byte this tree's, node_modules is a tree of
 * hard links to this one (`cp -al`: a second or two, no disk); otherwise
 * `npm ci --prefer-offline` installs the ref's own. `dispose` removes the
 * worktree (and its registration in the repository) again.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeTempDir, removeTempDir } from '../test/support/temp.ts';

const run = promisify(execFile);

export interface CompareTree {
  /** The ref as given on the command line. */
  ref: string;
  /** The commit it names. */
  commit: string;
  /** The worktree's root: where `node --import tsx src/main.ts` runs. */
  root: string;
  /** How node_modules got there. */
  modules: ModulesPlan;
  dispose(): Promise<void>;
}

export type ModulesPlan = 'hard-links' | 'npm ci';

/** Hard links only when both trees would install exactly the same packages. */
export function planModules(currentLock: Buffer | undefined, refLock: Buffer | undefined): ModulesPlan {
  return currentLock !== undefined && refLock !== undefined && currentLock.equals(refLock) ? 'hard-links' : 'npm ci';
}

/** The column name of the ref's Outpost: `outpost@<ref>`, the ref shortened to something a table can hold. */
export function compareTargetName(ref: string): string {
  const short = /^[0-9a-f]{40}$/.test(ref) ? ref.slice(0, 10) : ref.length > 24 ? `${ref.slice(0, 23)}…` : ref;
  return `outpost@${short}`;
}

async function git(cwd: string, args: readonly string[], timeoutMs = 60_000): Promise<string> {
  const { stdout } = await run('git', args, { cwd, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' });
  return stdout.trim();
}

async function gitBytes(cwd: string, args: readonly string[]): Promise<Buffer | undefined> {
  try {
    const { stdout } = await run('git', args, { cwd, timeout: 60_000, maxBuffer: 64 * 1024 * 1024, encoding: 'buffer' });
    return stdout;
  } catch {
    return undefined;
  }
}

/** What this tree is, for the header: the commit and whether the working tree has changes on top. */
export async function describeCurrentTree(repoRoot: string): Promise<string> {
  const commit = await git(repoRoot, ['rev-parse', '--short=10', 'HEAD']);
  const dirty = (await git(repoRoot, ['status', '--porcelain', '--untracked-files=no'])).length > 0;
  return `${commit}${dirty ? ' + uncommitted changes' : ''}`;
}

export async function checkOutCompareTree(repoRoot: string, ref: string, log: (line: string) => void): Promise<CompareTree> {
  // `--end-of-options` so that nothing in `ref` is read as an option (options.ts refuses those anyway).
  const commit = await git(repoRoot, ['rev-parse', '--verify', '--end-of-options', `${ref}^{commit}`]);
  const parent = await makeTempDir('bench-compare');
  const root = join(parent, 'tree');
  let added = false;
  const dispose = async (): Promise<void> => {
    if (added) {
      await git(repoRoot, ['worktree', 'remove', '--force', root]).catch(() => undefined);
      added = false;
    }
    await removeTempDir(parent);
    await git(repoRoot, ['worktree', 'prune']).catch(() => undefined);
  };
  try {
    await git(repoRoot, ['worktree', 'add', '--detach', root, commit], 120_000);
    added = true;
    const currentLock = await readFile(join(repoRoot, 'package-lock.json')).catch(() => undefined);
    const refLock = await gitBytes(repoRoot, ['show', `${commit}:package-lock.json`]);
    const modules = planModules(currentLock, refLock);
    const started = Date.now();
    if (modules === 'hard-links') {
      await run('cp', ['-al', join(repoRoot, 'node_modules'), join(root, 'node_modules')], { timeout: 300_000 });
    } else {
      await run('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: root, timeout: 900_000, maxBuffer: 64 * 1024 * 1024 });
    }
    log(`compare tree ${ref} = ${commit.slice(0, 10)} at ${root} (node_modules: ${modules}, ${((Date.now() - started) / 1000).toFixed(1)} s)`);
    return { ref, commit, root, modules, dispose };
  } catch (err) {
    await dispose();
    throw err;
  }
}
