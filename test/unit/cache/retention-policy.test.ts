import { describe, expect, it } from 'vitest';
import type { IndexEntry } from '../../../src/cache/ports.ts';
import { RetentionPolicy } from '../../../src/cache/retention-policy.ts';
import type { Digest } from '../../../src/registry/digest.ts';

const day = 24 * 3_600_000;
const now = Date.parse('2026-11-30T00:00:00Z');
const d = (n: number): Digest => `sha256:${String(n).padStart(64, '0')}` as Digest;
const entry = (n: number, unusedDays: number): IndexEntry => ({ digest: d(n), bytes: 100, kind: 'blob', lastAccess: now - unusedDays * day, size: 100 }) as IndexEntry;

describe('RetentionPolicy', () => {
  const rules = [
    { repositories: ['ci/*'], unusedForMs: 7 * day },
    { repositories: ['ci/keep-*'], unusedForMs: 60 * day },
    { repositories: ['team/app'], unusedForMs: 30 * day },
  ];

  it('keeps an entry for the longest period among the rules of the repositories referencing it', () => {
    const policy = new RetentionPolicy(90 * day, rules);
    expect(policy.periodFor(['ci/build'])).toBe(7 * day);
    expect(policy.periodFor(['ci/keep-this'])).toBe(60 * day); // matched by two rules: the longest
    expect(policy.periodFor(['ci/build', 'team/app'])).toBe(30 * day); // shared: the longest of both
  });

  it('falls back to cache.retention when one referencing repository has no rule, or none references the entry', () => {
    const policy = new RetentionPolicy(90 * day, rules);
    expect(policy.periodFor(['ci/build', 'library/nginx'])).toBe(90 * day);
    expect(policy.periodFor([])).toBe(90 * day);
    expect(new RetentionPolicy(0, rules).periodFor(['library/nginx'])).toBe(0); // never
  });

  it('plans the entries unused longer than their period, never a pinned one', () => {
    const policy = new RetentionPolicy(0, rules);
    const referencedBy = new Map<Digest, string[]>([
      [d(1), ['ci/build']], // 7 days
      [d(2), ['ci/build']],
      [d(3), ['ci/build', 'library/nginx']], // no rule for nginx: retention 0 = forever
      [d(4), ['ci/build']], // pinned
      [d(5), ['team/app']], // 30 days
    ]);
    const victims = policy.plan([entry(1, 8), entry(2, 6), entry(3, 400), entry(4, 100), entry(5, 31), entry(6, 1_000)], {
      now,
      pinned: new Set([d(4)]),
      referencedBy,
    });
    expect(victims.map((v) => v.digest)).toEqual([d(1), d(5)]);
  });

  it('without rules is cache.retention for every entry', () => {
    const policy = new RetentionPolicy(10 * day, []);
    expect(policy.hasRules).toBe(false);
    const victims = policy.plan([entry(1, 11), entry(2, 9)], { now, pinned: new Set(), referencedBy: new Map() });
    expect(victims.map((v) => v.digest)).toEqual([d(1)]);
  });
});
