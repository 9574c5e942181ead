/**
 * How the cluster primary forks its workers: through tsx's require hook
 * (worker-entry.cjs), never through tsx's ESM loader, whose thread costs each
 * process ~30 MiB. The flags an operator or the bench gives the primary
 * still reach the workers.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { workerEnv, workerExecArgv, workerForkSettings } from '../../../src/process/worker-exec.ts';

const cjsHook = createRequire(import.meta.url).resolve('tsx/cjs');
const repoRoot = path.resolve(import.meta.dirname, '../../..');

describe('workerExecArgv', () => {
  it('replaces tsx ESM loader flags, in every spelling, with the require hook', () => {
    for (const primary of [
      ['--import', 'tsx'],
      ['--import=tsx'],
      ['--import', 'tsx/esm'],
      // The tsx CLI (`tsx src/main.ts`) starts node with these two.
      ['--require', '/app/node_modules/tsx/dist/preflight.cjs', '--import', 'file:///app/node_modules/tsx/dist/loader.mjs'],
      ['--loader', 'tsx'],
      ['-r', 'tsx/cjs'],
    ]) {
      expect(workerExecArgv(primary), primary.join(' ')).toEqual(['--require', cjsHook, '--max-semi-space-size=2']);
    }
  });

  it('passes the other flags through, in order', () => {
    const primary = ['--cpu-prof', '--cpu-prof-dir=/tmp/p', '--import', 'tsx', '--max-old-space-size', '512', '--require', './tracing.cjs', '--import=./otel.mjs', '-r', './my-tsx-helper.cjs'];
    expect(workerExecArgv(primary)).toEqual([
      '--cpu-prof',
      '--cpu-prof-dir=/tmp/p',
      '--max-old-space-size',
      '512',
      '--require',
      './tracing.cjs',
      '--import=./otel.mjs',
      '-r',
      './my-tsx-helper.cjs',
      '--require',
      cjsHook,
      '--max-semi-space-size=2',
    ]);
  });

  it("fixes glibc's mmap threshold at 128 KiB for the workers, unless the operator set one", () => {
    expect(workerEnv({})).toEqual({ MALLOC_MMAP_THRESHOLD_: '131072' });
    expect(workerEnv({ MALLOC_MMAP_THRESHOLD_: '65536' })).toEqual({ MALLOC_MMAP_THRESHOLD_: '65536' });
  });

  it('runs the CommonJS entry next to the worker module', () => {
    const { exec } = workerForkSettings([]);
    expect(exec).toBe(path.join(repoRoot, 'src/process/worker-entry.cjs'));
    expect(fs.readFileSync(exec, 'utf8')).toMatch(/^require\('\.\/worker-main\.ts'\);$/m);
  });
});

/** The relative modules `file` imports at run time: static imports (not `import type`), re-exports, and `import()` calls, the latter listed apart. */
function importsOf(file: string): { static: string[]; dynamic: string[] } {
  const source = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const found = { static: [] as string[], dynamic: [] as string[] };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && !node.importClause?.isTypeOnly && ts.isStringLiteral(node.moduleSpecifier)) found.static.push(node.moduleSpecifier.text);
    else if (ts.isExportDeclaration(node) && !node.isTypeOnly && node.moduleSpecifier !== undefined && ts.isStringLiteral(node.moduleSpecifier)) found.static.push(node.moduleSpecifier.text);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [specifier] = node.arguments;
      found.dynamic.push(specifier !== undefined && ts.isStringLiteralLike(specifier) ? specifier.text : '<computed>');
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

describe("the worker's module tree", () => {
  /** Every module of ours a worker loads, the import() calls of relative or computed modules among them, and the packages it imports. */
  function workerTree() {
    const seen = new Set<string>();
    const packages = new Set<string>();
    const pending = [path.join(repoRoot, 'src/process/worker-main.ts')];
    const offending: string[] = [];
    while (pending.length > 0) {
      const file = pending.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      const { static: imported, dynamic } = importsOf(file);
      for (const specifier of dynamic) if (specifier.startsWith('.') || specifier === '<computed>') offending.push(`${path.relative(repoRoot, file)}: import(${specifier})`);
      for (const specifier of imported) {
        if (specifier.startsWith('.')) pending.push(path.resolve(path.dirname(file), specifier));
        else packages.add(specifier);
      }
    }
    return { modules: seen, offending, packages };
  }

  it('has no import() of a TypeScript file: only the ESM loader, which workers do not load, could run it', () => {
    const { modules, offending } = workerTree();
    expect(modules.size).toBeGreaterThan(50); // the walk reached the request path
    expect(offending).toEqual([]);
  });

  it('does not load the config loader: the primary sends the configuration', () => {
    const { modules, packages } = workerTree();
    expect(packages).toContain('undici'); // the walk sees packages
    expect([...packages].filter((name) => ['convict', 'yaml'].includes(name))).toEqual([]);
    expect([...modules].map((file) => path.relative(repoRoot, file))).not.toContain('src/config/load.ts');
  });
});
