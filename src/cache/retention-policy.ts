/**
 * Which cache entries a retention sweep removes: `cache.retention` for
 * everything, refined per repository by `cache.retentionRules`.
 *
 * An entry (blob or manifest) is referenced by the cached repositories
 * whose manifests lead to it. When every one of them matches some rule,
 * the entry is kept for the longest period among the rules matching any of
 * them (a rule matching a repository several times: its longest period);
 * when one of them matches no rule, or no repository references it, the
 * global `retention` applies (0: never). Pins always win. Pure: the
 * references and the clock come in.
 */
import type { Digest } from '../registry/digest.ts';
import { matchRepository, parseImagePatterns, type ImagePattern } from '../registry/image-pattern.ts';
import type { IndexEntry } from './ports.ts';

export interface RetentionRule {
  repositories: readonly string[];
  unusedForMs: number;
}

export class RetentionPolicy {
  private readonly rules: Array<{ patterns: ImagePattern[]; unusedForMs: number }>;

  constructor(
    /** `cache.retention` (ms); 0 = entries no rule covers are never swept. */
    private readonly defaultMs: number,
    rules: readonly RetentionRule[],
  ) {
    this.rules = rules.map((rule) => ({ patterns: parseImagePatterns(rule.repositories), unusedForMs: rule.unusedForMs }));
  }

  /** Whether any rule exists (then a sweep needs to know which repositories reference what). */
  get hasRules(): boolean {
    return this.rules.length > 0;
  }

  /** Whether a sweep can ever remove anything. */
  get active(): boolean {
    return this.defaultMs > 0 || this.rules.length > 0;
  }

  /** The shortest period any entry can be kept for (ms), for a periodic sweep's pace; 0 when inactive. */
  get shortestMs(): number {
    const periods = [...(this.defaultMs > 0 ? [this.defaultMs] : []), ...this.rules.map((r) => r.unusedForMs)];
    return periods.length === 0 ? 0 : Math.min(...periods);
  }

  /** The longest period of the rules matching `repository`; undefined when none does. */
  periodOf(repository: string): number | undefined {
    let longest: number | undefined;
    for (const rule of this.rules) {
      if (matchRepository(rule.patterns, repository)) longest = Math.max(longest ?? 0, rule.unusedForMs);
    }
    return longest;
  }

  /** How long an entry referenced by `repositories` is kept unused (ms); 0 = forever. */
  periodFor(repositories: Iterable<string>): number {
    let longest = 0;
    let any = false;
    for (const repository of repositories) {
      any = true;
      const period = this.periodOf(repository);
      if (period === undefined) return this.defaultMs;
      longest = Math.max(longest, period);
    }
    return any ? longest : this.defaultMs;
  }

  /** The entries unused for longer than their period, pinned ones excepted. */
  plan(
    entries: Iterable<IndexEntry>,
    options: { now: number; pinned: ReadonlySet<Digest>; referencedBy: ReadonlyMap<Digest, Iterable<string>> },
  ): IndexEntry[] {
    const victims: IndexEntry[] = [];
    for (const entry of entries) {
      if (options.pinned.has(entry.digest)) continue;
      const period = this.hasRules ? this.periodFor(options.referencedBy.get(entry.digest) ?? []) : this.defaultMs;
      if (period > 0 && options.now - entry.lastAccess > period) victims.push(entry);
    }
    return victims;
  }
}
