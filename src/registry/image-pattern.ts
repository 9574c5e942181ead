/**
 * Image patterns, shared by prefetch jobs and access rules:
 *
 *   pattern    = [ "-" ] repository [ ":" tag ]
 *   repository = 1*( [a-z0-9._/-] / "*" )     e.g. library/nginx, team-a/*, *
 *   tag        = 1*( [A-Za-z0-9._-] / "*" )   e.g. 1.*, *-rc*, v1
 *
 * - `*` matches any run of characters, `/` included: `*:v1` names the tag v1
 *   of every repository, `cwpp/ubuntu` too.
 * - A pattern without `:` (or with `:*`) means every tag.
 * - A leading `-` excludes. In a list, the last pattern that matches decides;
 *   nothing is included unless some pattern includes it.
 *
 * Patterns are parsed once ({@link parseImagePatterns}); the matchers take
 * only parsed patterns. A glob is kept as its literal pieces between the
 * stars and matched by finding each piece leftmost in turn — correct for
 * globs whose only wildcard is `*`, and at most one `indexOf` per piece, so
 * `*a*a*a*a*a*a*b` against a long run of `a` cannot backtrack. No regular
 * expression is built from configuration.
 */

/** Longest pattern accepted: a maximal repository name, `:`, a maximal tag, with room for stars. */
export const MAX_IMAGE_PATTERN_LENGTH = 512;

/** The allowed forms, for error messages. */
export const IMAGE_PATTERN_ALLOWED =
  'an image pattern "repository[:tag]" with an optional leading "-" to exclude, where "*" matches any run of ' +
  'characters ("/" included), repositories use a-z 0-9 . _ - / and tags A-Z a-z 0-9 . _ -, ' +
  'e.g. library/nginx:1.*, team-a/*, -*:*-rc*';

/** A pattern that could not be parsed. The message names the pattern and what is wrong with it. */
export class ImagePatternError extends Error {
  override readonly name = 'ImagePatternError';
  readonly code = 'IMAGE_PATTERN_INVALID';

  constructor(
    /** The offending pattern, as given (cut short when very long). */
    readonly pattern: string,
    /** What is wrong, without the pattern. */
    readonly reason: string,
    /** Its position in a list, when it came from one. */
    readonly index?: number,
  ) {
    super(`${index === undefined ? '' : `[${index}]: `}invalid image pattern ${JSON.stringify(pattern)}: ${reason}`);
  }
}

declare const globBrand: unique symbol;

/** A parsed `*` glob: the literal pieces around its stars. */
export interface Glob {
  readonly [globBrand]: true;
  /** `source.split('*')` after runs of `*` were collapsed; one piece means no star. */
  readonly pieces: readonly string[];
}

declare const patternBrand: unique symbol;

/** A parsed image pattern; only {@link parseImagePattern} makes one. */
export interface ImagePattern {
  readonly [patternBrand]: true;
  /** The pattern as written. */
  readonly source: string;
  readonly exclude: boolean;
  readonly repository: Glob;
  /** Undefined when the pattern covers every tag (no `:`, or `:*`). */
  readonly tag: Glob | undefined;
}

const REPOSITORY_CHARS = /^[a-z0-9._/*-]+$/;
const TAG_CHARS = /^[A-Za-z0-9._*-]+$/;

function compileGlob(text: string): Glob {
  return { pieces: text.replace(/\*+/g, '*').split('*') } as unknown as Glob;
}

/** Whether `glob` matches the whole of `text`. Linear in practice: one `indexOf` per piece. */
export function globMatches(glob: Glob, text: string): boolean {
  const { pieces } = glob;
  const first = pieces[0] ?? '';
  if (pieces.length === 1) return text === first;
  const last = pieces[pieces.length - 1] ?? '';
  if (text.length < first.length + last.length) return false;
  if (!text.startsWith(first) || !text.endsWith(last)) return false;
  const end = text.length - last.length;
  let at = first.length;
  for (let i = 1; i < pieces.length - 1; i++) {
    const piece = pieces[i] ?? '';
    const found = text.indexOf(piece, at);
    if (found < 0 || found + piece.length > end) return false;
    at = found + piece.length;
  }
  return true;
}

function quoted(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Parses one pattern; throws {@link ImagePatternError} naming it when it is malformed. */
export function parseImagePattern(value: unknown): ImagePattern {
  if (typeof value !== 'string') {
    throw new ImagePatternError(String(value), `not a string; allowed: ${IMAGE_PATTERN_ALLOWED}`);
  }
  const source = value;
  const fail = (reason: string): never => {
    throw new ImagePatternError(quoted(source), reason);
  };
  if (source === '') fail('empty pattern');
  if (source.length > MAX_IMAGE_PATTERN_LENGTH) fail(`longer than ${MAX_IMAGE_PATTERN_LENGTH} characters`);
  const exclude = source.startsWith('-');
  const body = exclude ? source.slice(1) : source;
  if (body === '') fail('"-" must be followed by a repository pattern');
  if (body.startsWith('-')) fail('a repository pattern cannot start with "-" (one leading "-" excludes)');
  const colon = body.indexOf(':');
  if (colon !== body.lastIndexOf(':')) fail('more than one ":" (the form is repository[:tag])');
  const repository = colon < 0 ? body : body.slice(0, colon);
  const tag = colon < 0 ? undefined : body.slice(colon + 1);
  if (repository === '') fail('empty repository part (use "*" for every repository)');
  if (!REPOSITORY_CHARS.test(repository)) {
    fail(
      /[A-Z]/.test(repository)
        ? 'repository names are lower case'
        : 'the repository part may only contain a-z, 0-9, ".", "_", "-", "/" and "*"',
    );
  }
  if (tag === '') fail('empty tag part after ":" (leave out ":" or use ":*" for every tag)');
  if (tag !== undefined && !TAG_CHARS.test(tag)) fail('the tag part may only contain A-Z, a-z, 0-9, ".", "_", "-" and "*"');
  const tagGlob = tag === undefined || /^\*+$/.test(tag) ? undefined : compileGlob(tag);
  return { source, exclude, repository: compileGlob(repository), tag: tagGlob } as unknown as ImagePattern;
}

/**
 * Parses a list of patterns. A bad entry throws an {@link ImagePatternError}
 * whose message starts with its index (`[2]: invalid image pattern ...`).
 */
export function parseImagePatterns(values: readonly unknown[]): ImagePattern[] {
  return values.map((value, index) => {
    try {
      return parseImagePattern(value);
    } catch (error) {
      throw error instanceof ImagePatternError ? new ImagePatternError(error.pattern, error.reason, index) : error;
    }
  });
}

/** Whether the pattern speaks about every tag of the repositories it names. */
export function coversEveryTag(pattern: ImagePattern): boolean {
  return pattern.tag === undefined;
}

/**
 * Prefetch selection: whether `repository:tag` is included. The last pattern
 * that matches decides; with no match, or no include at all, it is not.
 */
export function selectImage(patterns: readonly ImagePattern[], repository: string, tag: string): boolean {
  for (let i = patterns.length - 1; i >= 0; i--) {
    const pattern = patterns[i] as ImagePattern;
    if (!globMatches(pattern.repository, repository)) continue;
    if (pattern.tag !== undefined && !globMatches(pattern.tag, tag)) continue;
    return !pattern.exclude;
  }
  return false;
}

/**
 * Access rules: whether the whole repository is included. Access is granted
 * per repository (a blob by digest has no tag), so only patterns that cover
 * every tag take part; a pattern limited to some tags (`team-a/*:v1`, or an
 * exclusion `-*:*-rc*`) cannot decide about a whole repository and is
 * skipped. Configuration refuses such patterns where repositories are meant
 * (see auth/config.ts), so nothing is skipped silently there. The last
 * pattern that matches decides; with no match it is not included.
 */
export function matchRepository(patterns: readonly ImagePattern[], repository: string): boolean {
  for (let i = patterns.length - 1; i >= 0; i--) {
    const pattern = patterns[i] as ImagePattern;
    if (pattern.tag !== undefined) continue;
    if (globMatches(pattern.repository, repository)) return !pattern.exclude;
  }
  return false;
}

/** False when no pattern includes anything (a list of exclusions only selects nothing). */
export function canEverInclude(patterns: readonly ImagePattern[]): boolean {
  return patterns.some((pattern) => !pattern.exclude);
}
