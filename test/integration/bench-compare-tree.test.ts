/** bench --compare's checkout: a real git repository in a temp dir, a worktree added and removed again. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkOutCompareTree } from '../../bench/compare-tree.ts';
import { createCleanupStack } from '../support/cleanup.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';

const cleanup = createCleanupStack();
afterEach(() => cleanup.run());

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=bench', '-c', 'user.email=bench@example.invalid', ...args], { cwd, encoding: 'utf8' }).trim();
}

async function repoWithTwoCommits(): Promise<{ repo: string; first: string }> {
  const repo = await makeTempDir('compare-repo');
  cleanup.add(() => removeTempDir(repo));
  git(repo, 'init', '-q', '-b', 'main');
  writeFileSync(join(repo, 'package-lock.json'), '{"lockfileVersion":3}\n');
  mkdirSync(join(repo, 'src'));
  writeFileSync(join(repo, 'src', 'main.ts'), 'export const version = 1;\n');
  git(repo, 'add', '-A');
  git(repo, 'commit', '-q', '-m', 'first');
  const first = git(repo, 'rev-parse', 'HEAD');
  writeFileSync(join(repo, 'src', 'main.ts'), 'export const version = 2;\n');
  git(repo, 'commit', '-q', '-am', 'second');
  // node_modules is never committed; the current tree has one.
  mkdirSync(join(repo, 'node_modules', 'dep'), { recursive: true });
  writeFileSync(join(repo, 'node_modules', 'dep', 'index.js'), 'module.exports = 1;\n');
  return { repo, first };
}

describe('bench --compare checkout', () => {
  it('checks the ref out into a temp worktree with node_modules hard-linked, and removes it again', async () => {
    const { repo, first } = await repoWithTwoCommits();
    const lines: string[] = [];
    const tree = await checkOutCompareTree(repo, 'HEAD~1', (line) => lines.push(line));
    cleanup.add(() => tree.dispose());
    expect(tree.commit).toBe(first);
    expect(tree.modules).toBe('hard-links');
    expect(readFileSync(join(tree.root, 'src', 'main.ts'), 'utf8')).toBe('export const version = 1;\n');
    // The same inode: a hard link, not a copy.
    expect(statSync(join(tree.root, 'node_modules', 'dep', 'index.js')).ino).toBe(statSync(join(repo, 'node_modules', 'dep', 'index.js')).ino);
    expect(git(repo, 'worktree', 'list')).toContain(tree.root);
    expect(lines.join('\n')).toMatch(/node_modules: hard-links/);

    await tree.dispose();
    expect(existsSync(tree.root)).toBe(false);
    expect(git(repo, 'worktree', 'list')).not.toContain(tree.root);
    // The current tree is untouched.
    expect(readFileSync(join(repo, 'src', 'main.ts'), 'utf8')).toBe('export const version = 2;\n');
    expect(existsSync(join(repo, 'node_modules', 'dep', 'index.js'))).toBe(true);
  });

  it('fails on a ref that names no commit, leaving no worktree behind', async () => {
    const { repo } = await repoWithTwoCommits();
    await expect(checkOutCompareTree(repo, 'no-such-branch', () => undefined)).rejects.toThrow();
    expect(git(repo, 'worktree', 'list').split('\n')).toHaveLength(1);
  });
});
