import { describe, expect, it } from 'vitest';
import { compareTargetName, planModules } from '../../../bench/compare-tree.ts';

describe('compare tree', () => {
  it('hard-links node_modules only when both lockfiles are byte for byte the same', () => {
    expect(planModules(Buffer.from('{"a":1}'), Buffer.from('{"a":1}'))).toBe('hard-links');
    expect(planModules(Buffer.from('{"a":1}'), Buffer.from('{"a":2}'))).toBe('npm ci');
    expect(planModules(Buffer.from('{"a":1}'), undefined)).toBe('npm ci');
    expect(planModules(undefined, Buffer.from('{"a":1}'))).toBe('npm ci');
  });

  it('names the ref Outpost after the ref, a full commit id shortened', () => {
    expect(compareTargetName('main')).toBe('outpost@main');
    expect(compareTargetName('HEAD~2')).toBe('outpost@HEAD~2');
    expect(compareTargetName('0123456789abcdef0123456789abcdef01234567')).toBe('outpost@0123456789');
    expect(compareTargetName('a-very-long-branch-name-for-testing')).toBe('outpost@a-very-long-branch-name…');
  });
});
