/**
 * Parser for `WWW-Authenticate` (RFC 7235 §4.1):
 *
 *   challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
 *   auth-param = token BWS "=" BWS ( token / quoted-string )
 *
 * One header may carry several challenges (`Bearer realm="a",scope="b", Basic
 * realm="c"`), and several headers may be present. Quoted values may contain
 * commas, `=` and backslash escapes. Unquoted values are read leniently up to
 * the next comma or space, because registries send unquoted URLs.
 *
 * The header comes from the primary: callers refuse one longer than
 * MAX_WWW_AUTHENTICATE_BYTES before parsing, and the parser itself is one
 * linear pass.
 */

/** Longest WWW-Authenticate (all values joined) read; Docker Hub's is about 150 bytes. */
export const MAX_WWW_AUTHENTICATE_BYTES = 8 * 1024;

/** All values of the header as one string, as parsed. */
export function joinedChallenges(header: string | readonly string[] | undefined): string {
  if (header === undefined) return '';
  return typeof header === 'string' ? header : header.join(', ');
}

export interface AuthChallenge {
  /** Lower-cased scheme, e.g. `bearer`, `basic`. */
  scheme: string;
  /** Parameters by lower-cased name; values unquoted and unescaped. */
  params: Record<string, string>;
  /** The token68 form (`Negotiate abc==`), when the challenge used it. */
  token68?: string;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

export function parseWwwAuthenticate(header: string | readonly string[] | undefined): AuthChallenge[] {
  if (header === undefined) return [];
  const input = joinedChallenges(header);
  const challenges: AuthChallenge[] = [];
  let current: AuthChallenge | undefined;
  let i = 0;

  const skipSpace = (): void => {
    while (i < input.length && (input[i] === ' ' || input[i] === '\t')) i++;
  };
  const readWhile = (ok: (c: string) => boolean): string => {
    const start = i;
    while (i < input.length && ok(input[i] as string)) i++;
    return input.slice(start, i);
  };
  const readQuoted = (): string => {
    i++; // opening quote
    let out = '';
    while (i < input.length && input[i] !== '"') {
      if (input[i] === '\\' && i + 1 < input.length) i++;
      out += input[i];
      i++;
    }
    i++; // closing quote (or end of input)
    return out;
  };
  const notDelimiter = (c: string): boolean => c !== ',' && c !== ' ' && c !== '\t';
  // `=` padding then the end of this challenge, matched in place (no copy of the rest).
  const padding = /=*(?:,|$)/y;

  while (i < input.length) {
    while (i < input.length && (input[i] === ',' || input[i] === ' ' || input[i] === '\t')) i++;
    if (i >= input.length) break;

    const token = readWhile((c) => TCHAR.test(c));
    if (token === '') {
      i++; // stray character: skip it rather than loop forever
      continue;
    }
    skipSpace();

    if (input[i] === '=' && current !== undefined) {
      i++; // '='
      skipSpace();
      const value = input[i] === '"' ? readQuoted() : readWhile(notDelimiter);
      current.params[token.toLowerCase()] = value;
      continue;
    }

    // A token not followed by '=' starts a new challenge.
    current = { scheme: token.toLowerCase(), params: Object.create(null) as Record<string, string> };
    challenges.push(current);
    skipSpace();
    // A token68 directly after the scheme (`Negotiate abc==`).
    const save = i;
    const maybe = readWhile((c) => TCHAR.test(c) || c === '/' || c === '+');
    skipSpace();
    padding.lastIndex = i;
    if (maybe !== '' && (input[i] === undefined || input[i] === ',' || (input[i] === '=' && padding.test(input)))) {
      current.token68 = maybe + readWhile((c) => c === '=');
    } else {
      i = save;
    }
  }
  return challenges;
}

/** The first challenge with the given (case-insensitive) scheme. */
export function findChallenge(challenges: readonly AuthChallenge[], scheme: string): AuthChallenge | undefined {
  const wanted = scheme.toLowerCase();
  return challenges.find((c) => c.scheme === wanted);
}
