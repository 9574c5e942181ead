import { describe, expect, it } from 'vitest';
import {
  canEverInclude,
  coversEveryTag,
  globMatches,
  ImagePatternError,
  matchRepository,
  parseImagePattern,
  parseImagePatterns,
  selectImage,
} from '../../../src/registry/image-pattern.ts';

const parse = (...patterns: string[]) => parseImagePatterns(patterns);

describe('selectImage (prefetch include/exclude)', () => {
  const nightly = parse('library/nginx:1.*', 'library/alpine:*', '-*:*-rc*');

  it('includes the tags a pattern names', () => {
    expect(selectImage(nightly, 'library/nginx', '1.27')).toBe(true);
    expect(selectImage(nightly, 'library/nginx', '1.27.3-alpine')).toBe(true);
    expect(selectImage(nightly, 'library/alpine', '3.20')).toBe(true);
  });

  it('leaves out tags and repositories no pattern includes', () => {
    expect(selectImage(nightly, 'library/nginx', '2.0')).toBe(false);
    expect(selectImage(nightly, 'library/nginx', 'latest')).toBe(false);
    expect(selectImage(nightly, 'library/redis', '7')).toBe(false);
  });

  it('lets a later exclusion win over an earlier include', () => {
    expect(selectImage(nightly, 'library/nginx', '1.28.0-rc1')).toBe(false);
    expect(selectImage(nightly, 'library/alpine', '3.21-rc2')).toBe(false);
  });

  it('lets a later include win over an earlier exclusion', () => {
    const patterns = parse('library/*', '-library/nginx', 'library/nginx:1.27');
    expect(selectImage(patterns, 'library/nginx', '1.27')).toBe(true);
    expect(selectImage(patterns, 'library/nginx', '1.26')).toBe(false);
    expect(selectImage(patterns, 'library/redis', '7')).toBe(true);
  });

  it('crosses "/" with "*", so -*:v1 excludes cwpp/ubuntu:v1', () => {
    const patterns = parse('*', '-*:v1');
    expect(selectImage(patterns, 'cwpp/ubuntu', 'v1')).toBe(false);
    expect(selectImage(patterns, 'a/b/c/d', 'v1')).toBe(false);
    expect(selectImage(patterns, 'cwpp/ubuntu', 'v2')).toBe(true);
  });

  it('reads a pattern without ":" as every tag of the repository', () => {
    const patterns = parse('library/nginx');
    expect(selectImage(patterns, 'library/nginx', '1.27')).toBe(true);
    expect(selectImage(patterns, 'library/nginx', 'latest')).toBe(true);
    expect(selectImage(patterns, 'library/nginx-unprivileged', 'latest')).toBe(false);
    expect(coversEveryTag(parseImagePattern('library/nginx'))).toBe(true);
    expect(coversEveryTag(parseImagePattern('library/nginx:*'))).toBe(true);
    expect(coversEveryTag(parseImagePattern('library/nginx:1.*'))).toBe(false);
  });

  it('includes nothing from an empty list or a list of exclusions only', () => {
    expect(selectImage([], 'library/nginx', '1')).toBe(false);
    expect(selectImage(parse('-library/redis'), 'library/nginx', '1')).toBe(false);
  });

  it('matches the whole name, not a part of it', () => {
    const patterns = parse('nginx:1');
    expect(selectImage(patterns, 'library/nginx', '1')).toBe(false);
    expect(selectImage(patterns, 'nginx', '10')).toBe(false);
    expect(selectImage(patterns, 'nginx', '1')).toBe(true);
  });

  it('treats "." and other characters literally', () => {
    const patterns = parse('library/nginx:1.2');
    expect(selectImage(patterns, 'library/nginx', '1x2')).toBe(false);
    expect(selectImage(patterns, 'library/nginx', '1.2')).toBe(true);
  });

  it('compares tags case-sensitively, as registries do', () => {
    expect(selectImage(parse('app:Latest'), 'app', 'latest')).toBe(false);
    expect(selectImage(parse('app:Latest'), 'app', 'Latest')).toBe(true);
  });
});

describe('matchRepository (access rules)', () => {
  it('grants the repositories a pattern names, across "/"', () => {
    const patterns = parse('team-a/*');
    expect(matchRepository(patterns, 'team-a/app')).toBe(true);
    expect(matchRepository(patterns, 'team-a/group/app')).toBe(true);
    expect(matchRepository(patterns, 'team-b/app')).toBe(false);
    expect(matchRepository(patterns, 'team-a')).toBe(false);
  });

  it('lets the last matching pattern decide', () => {
    const patterns = parse('team-a/*', '-team-a/secret-*');
    expect(matchRepository(patterns, 'team-a/app')).toBe(true);
    expect(matchRepository(patterns, 'team-a/secret-keys')).toBe(false);
  });

  it('skips patterns limited to some tags, which cannot decide about a whole repository', () => {
    expect(matchRepository(parse('team-a/*:v1'), 'team-a/app')).toBe(false);
    expect(matchRepository(parse('*', '-*:*-rc*'), 'team-a/app')).toBe(true);
    expect(matchRepository(parse('team-a/*:*'), 'team-a/app')).toBe(true);
  });

  it('grants nothing with no pattern', () => {
    expect(matchRepository([], 'library/nginx')).toBe(false);
  });
});

describe('canEverInclude', () => {
  it('is false when every pattern excludes', () => {
    expect(canEverInclude(parse('-*:*-rc*', '-library/redis'))).toBe(false);
    expect(canEverInclude([])).toBe(false);
  });

  it('is true when some pattern includes', () => {
    expect(canEverInclude(parse('-*:*-rc*', 'library/nginx:1.*'))).toBe(true);
  });
});

describe('parseImagePattern', () => {
  it('reads the exclusion marker, repository and tag', () => {
    const pattern = parseImagePattern('-*:*-rc*');
    expect(pattern.exclude).toBe(true);
    expect(pattern.source).toBe('-*:*-rc*');
    expect(parseImagePattern('library/alpine:*').exclude).toBe(false);
  });

  it.each([
    ['an empty pattern', '', 'empty pattern'],
    ['a lone "-"', '-', '"-" must be followed'],
    ['--library/nginx', '--library/nginx', 'cannot start with "-"'],
    [':latest', ':latest', 'empty repository part'],
    ['library/nginx:', 'library/nginx:', 'empty tag part'],
    ['a:b:c', 'a:b:c', 'more than one ":"'],
    ['Library/nginx', 'Library/nginx', 'lower case'],
    ['a trailing space', 'library/nginx ', 'may only contain'],
    ['library/ng?nx', 'library/ng?nx', 'may only contain'],
    ['library/[a-z]', 'library/[a-z]', 'may only contain'],
    ['library/nginx:1.2/3', 'library/nginx:1.2/3', 'the tag part may only contain'],
    ['library/nginx:1.2+x', 'library/nginx:1.2+x', 'the tag part may only contain'],
    ['library/nginx@sha256:abc', 'library/nginx@sha256:abc', 'may only contain'],
    ['a pattern of 600 characters', 'x'.repeat(600), 'longer than 512'],
  ])('refuses %s, naming the pattern and the reason', (_label, text, reason) => {
    const attempt = () => parseImagePattern(text);
    expect(attempt).toThrow(ImagePatternError);
    expect(attempt).toThrow(reason);
    try {
      attempt();
    } catch (error) {
      expect((error as ImagePatternError).code).toBe('IMAGE_PATTERN_INVALID');
      expect((error as Error).message).toContain(`invalid image pattern ${JSON.stringify(text).slice(0, 60)}`);
    }
  });

  it('refuses values that are not strings', () => {
    expect(() => parseImagePattern(42)).toThrow(ImagePatternError);
    expect(() => parseImagePattern(null)).toThrow('not a string');
  });

  it('names the position of a bad entry in a list', () => {
    expect(() => parseImagePatterns(['library/*', 'ok:1', 'bad pattern'])).toThrow(
      /^\[2\]: invalid image pattern "bad pattern": /,
    );
  });
});

describe('glob matching', () => {
  it('matches an empty run and runs of stars alike', () => {
    const glob = parseImagePattern('nginx**').repository;
    expect(globMatches(glob, 'nginx')).toBe(true);
    expect(globMatches(glob, 'nginx-x/y')).toBe(true);
    expect(globMatches(parseImagePattern('a*b*c').repository, 'abc')).toBe(true);
    expect(globMatches(parseImagePattern('a*b*c').repository, 'ac')).toBe(false);
  });

  it('does not let a middle piece overlap the suffix', () => {
    // "aba" must not count its last "a" twice: "ab" then suffix "ba" needs 4 characters.
    expect(globMatches(parseImagePattern('ab*ba').repository, 'aba')).toBe(false);
    expect(globMatches(parseImagePattern('a*b*ba').repository, 'aba')).toBe(false);
    expect(globMatches(parseImagePattern('a*b*ba').repository, 'abba')).toBe(true);
  });

  it('agrees with an anchored regular expression on many generated cases', () => {
    const alphabet = ['a', 'b', '/'];
    const words: string[] = [''];
    for (let length = 1; length <= 5; length++) {
      for (const prefix of words.filter((w) => w.length === length - 1)) for (const c of alphabet) words.push(prefix + c);
    }
    const globs = ['*', 'a*', '*a', 'a*b', '*a*', 'a*b*a', '*/*', 'ab*ba', '*b*b*', 'a/*/b', 'aba'];
    for (const text of globs) {
      const glob = parseImagePattern(text).repository;
      const regex = new RegExp(`^${text.replace(/\*/g, '.*')}$`, 's');
      for (const word of words) expect(globMatches(glob, word), `${text} vs ${JSON.stringify(word)}`).toBe(regex.test(word));
    }
  });

  it('answers a pathological pattern against a long name quickly', () => {
    const patterns = parse('*a*a*a*a*a*a*a*a*a*a*b', '-*a*a*a*a*a*a*a*a*:*a*a*a*a*a*a*a*b');
    const name = 'a'.repeat(255);
    const tag = 'a'.repeat(128);
    const started = performance.now();
    for (let i = 0; i < 1000; i++) {
      expect(selectImage(patterns, name, tag)).toBe(false);
      expect(matchRepository(patterns, name)).toBe(false);
    }
    // A backtracking regex takes minutes here; the piecewise matcher takes milliseconds.
    expect(performance.now() - started).toBeLessThan(2000);
  });
});
