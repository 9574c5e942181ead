/**
 * Value formats of the configuration: pure parsers plus their convict
 * registrations.
 *
 * Every format has two halves:
 *
 * - `parse(value)` turns a value as a user wrote it (a YAML/JSON value from the
 *   config file, or a string from an env var or flag) into the typed value the
 *   {@link Config} carries, in its units (bytes, milliseconds). It throws a
 *   {@link FormatError} saying what is allowed.
 * - `coerce(text)` runs when convict receives a string (env var, flag, string
 *   default). It turns the string into a value `parse` reads with the same
 *   meaning, and returns the string untouched when it cannot, so that
 *   validation reports it with the key that holds it. It never throws: convict
 *   calls it while importing the environment, where an exception would lose the
 *   key.
 *
 * Custom formats matter: convict's built-in `int`/`nat` coercion is
 * `parseInt`, which silently reads `10GB` as `10`.
 */
import type convict from 'convict';

/** A value that does not fit its format; `path` locates it inside a structured value (`[1].url`). */
export class FormatError extends Error {
  override readonly name = 'FormatError';
  readonly code = 'CONFIG_FORMAT_INVALID';

  constructor(
    /** What is wrong, without the value (so callers can redact it). */
    readonly reason: string,
    /** What the format accepts. */
    readonly allowed: string,
    /** The offending value (inside a structured value: the offending part). */
    readonly value: unknown,
    readonly path = '',
    /** The value is not worth showing (an unknown key: a misspelt key may hold a secret). */
    readonly valueHidden = false,
  ) {
    const got = valueHidden ? '' : `, got ${describeValue(value)}`;
    super(`${path ? `${path}: ` : ''}${reason}${got}; allowed: ${allowed}`);
  }

  /** The same error, located one level deeper inside a structured value. */
  within(prefix: string): FormatError {
    const separator = this.path === '' || this.path.startsWith('[') ? '' : '.';
    return new FormatError(this.reason, this.allowed, this.value, `${prefix}${separator}${this.path}`, this.valueHidden);
  }
}

/** Short, single-line rendering of a value for error messages. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

// ---------------------------------------------------------------------------
// Byte sizes

export const BYTES_ALLOWED =
  'a whole number of bytes (e.g. 1073741824) or a number with a unit: kB, MB, GB, TB (powers of 1000) ' +
  'or KiB, MiB, GiB, TiB, also written K, M, G, T (powers of 1024), e.g. 10GiB, 500MB, 1.5GiB';

const BYTE_MULTIPLIERS: ReadonlyMap<string, bigint> = new Map([
  ['', 1n],
  ['b', 1n],
  ['kb', 1000n],
  ['mb', 1000n ** 2n],
  ['gb', 1000n ** 3n],
  ['tb', 1000n ** 4n],
  ['k', 1024n],
  ['ki', 1024n],
  ['kib', 1024n],
  ['m', 1024n ** 2n],
  ['mi', 1024n ** 2n],
  ['mib', 1024n ** 2n],
  ['g', 1024n ** 3n],
  ['gi', 1024n ** 3n],
  ['gib', 1024n ** 3n],
  ['t', 1024n ** 4n],
  ['ti', 1024n ** 4n],
  ['tib', 1024n ** 4n],
]);

const SIZE_PATTERN = /^(\d+)(?:\.(\d+))?\s*([a-z]*)$/i;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Parses a byte size into a number of bytes.
 *
 * Accepts a non-negative integer (number or digit string) or a number with a
 * unit, case-insensitive, optionally separated by a space: `kB MB GB TB` are
 * powers of 1000, `KiB MiB GiB TiB` (also `K M G T` and Kubernetes-style
 * `Ki Mi Gi Ti`) powers of 1024; `B` means bytes.
 *
 * A fraction is allowed only with a unit larger than a byte (`1.5GiB`); the
 * result is rounded down to a whole byte, computed exactly (no floating point).
 * A fraction of a byte (`1.5`, `1.5B`) is rejected.
 */
export function parseBytes(value: unknown): number {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value >= 0) return value;
    if (value < 0) throw new FormatError('a byte size cannot be negative', BYTES_ALLOWED, value);
    throw new FormatError('not a whole number of bytes', BYTES_ALLOWED, value);
  }
  if (typeof value !== 'string') throw new FormatError('not a byte size', BYTES_ALLOWED, value);
  const text = value.trim();
  if (text.startsWith('-')) throw new FormatError('a byte size cannot be negative', BYTES_ALLOWED, value);
  const match = SIZE_PATTERN.exec(text);
  if (!match) throw new FormatError('not a byte size', BYTES_ALLOWED, value);
  const [, whole = '', fraction = '', unit = ''] = match;
  const multiplier = BYTE_MULTIPLIERS.get(unit.toLowerCase());
  if (multiplier === undefined) throw new FormatError(`unknown size unit "${unit}"`, BYTES_ALLOWED, value);
  if (fraction !== '' && multiplier === 1n) {
    throw new FormatError('a byte size must be a whole number of bytes', BYTES_ALLOWED, value);
  }
  // Exact decimal arithmetic: 1.005kB is 1005 bytes, not 1004.9999999999999.
  const bytes = (BigInt(whole + fraction) * multiplier) / 10n ** BigInt(fraction.length);
  if (bytes > MAX_SAFE) throw new FormatError('byte size too large', BYTES_ALLOWED, value);
  return Number(bytes);
}

// ---------------------------------------------------------------------------
// Durations

export const DURATION_ALLOWED =
  'a number of seconds (e.g. 30) or a duration with units ms, s, m, h, d, which may be combined ' +
  '(e.g. 250ms, 1.5s, 5m, 1h, 1m30s)';

const DURATION_MS: ReadonlyMap<string, bigint> = new Map([
  ['ms', 1n],
  ['s', 1000n],
  ['m', 60_000n],
  ['h', 3_600_000n],
  ['d', 86_400_000n],
]);

const PLAIN_SECONDS = /^(\d+)(?:\.(\d+))?$/;
const DURATION_PART = /(\d+)(?:\.(\d+))?\s*(ms|s|m|h|d)\s*/.source;

/**
 * Parses a duration into milliseconds.
 *
 * Accepts `250ms`, `60s`, `1.5s`, `5m`, `1h`, `1d`, combinations such as
 * `1m30s` or `1h 30m`, and plain numbers, which mean SECONDS (`30` and the
 * YAML number `30` are both 30 000 ms). Units are lower-case. The result must
 * be a whole number of milliseconds (`1.0005s` is rejected, not rounded).
 */
export function parseDuration(value: unknown): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new FormatError('not a duration', DURATION_ALLOWED, value);
    if (value < 0) throw new FormatError('a duration cannot be negative', DURATION_ALLOWED, value);
    return parseDurationText(String(value), value);
  }
  if (typeof value !== 'string') throw new FormatError('not a duration', DURATION_ALLOWED, value);
  return parseDurationText(value.trim(), value);
}

function parseDurationText(text: string, original: unknown): number {
  if (text.startsWith('-')) throw new FormatError('a duration cannot be negative', DURATION_ALLOWED, original);
  const plain = PLAIN_SECONDS.exec(text);
  if (plain) return toMilliseconds([[plain[1] ?? '', plain[2] ?? '', 1000n]], original);
  const parts: Array<[string, string, bigint]> = [];
  const part = new RegExp(DURATION_PART, 'y'); // sticky: each part starts where the previous ended
  while (part.lastIndex < text.length) {
    const match = part.exec(text);
    if (!match) break;
    parts.push([match[1] ?? '', match[2] ?? '', DURATION_MS.get(match[3] ?? '') ?? 0n]);
  }
  if (parts.length === 0 || part.lastIndex !== text.length) {
    throw new FormatError('not a duration', DURATION_ALLOWED, original);
  }
  return toMilliseconds(parts, original);
}

function toMilliseconds(parts: ReadonlyArray<readonly [string, string, bigint]>, original: unknown): number {
  let total = 0n;
  for (const [whole, fraction, unitMs] of parts) {
    const scale = 10n ** BigInt(fraction.length);
    const scaled = BigInt(whole + fraction) * unitMs;
    if (scaled % scale !== 0n) {
      throw new FormatError('a duration must be a whole number of milliseconds', DURATION_ALLOWED, original);
    }
    total += scaled / scale;
  }
  if (total > MAX_SAFE) throw new FormatError('duration too long', DURATION_ALLOWED, original);
  return Number(total);
}

// ---------------------------------------------------------------------------
// Scalars

function parseInteger(value: unknown, min: number, max: number, what: string, allowed: string): number {
  const number =
    typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(number)) throw new FormatError(`not ${what}`, allowed, value);
  if (number < min) throw new FormatError(`must be at least ${min}`, allowed, value);
  if (number > max) throw new FormatError(`must be at most ${max}`, allowed, value);
  return number;
}

export const PORT_ALLOWED = 'an integer from 0 to 65535 (0 picks a free port)';

export function parsePort(value: unknown): number {
  if (typeof value === 'string' && /^[a-z]+:\/\//i.test(value.trim())) {
    // A Kubernetes Service named "outpost" injects OUTPOST_PORT=tcp://10.0.0.1:5000
    // into every pod of its namespace.
    throw new FormatError(
      'not a port number (a Kubernetes service link variable? set enableServiceLinks: false on the pod)',
      PORT_ALLOWED,
      value,
    );
  }
  return parseInteger(value, 0, 65535, 'a port number', PORT_ALLOWED);
}

const FRACTION_ALLOWED = 'a number from 0 to 1, e.g. 0.85';

export function parseFraction(value: unknown): number {
  const number =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && /^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(value)
        ? Number(value)
        : NaN;
  if (!Number.isFinite(number)) throw new FormatError('not a fraction', FRACTION_ALLOWED, value);
  if (number < 0 || number > 1) throw new FormatError('fraction out of range', FRACTION_ALLOWED, value);
  return number;
}

const BOOLEAN_ALLOWED = 'true or false (also yes/no, on/off, 1/0)';
const TRUE_WORDS = new Set(['true', 'yes', 'on', '1']);
const FALSE_WORDS = new Set(['false', 'no', 'off', '0']);

/** Unlike convict's `Boolean` coercion, `no` or `disabled` is not `true`. */
export function parseBoolean(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (value === 1 || value === 0) return value === 1;
  if (typeof value === 'string') {
    const word = value.trim().toLowerCase();
    if (TRUE_WORDS.has(word)) return true;
    if (FALSE_WORDS.has(word)) return false;
  }
  throw new FormatError('not a boolean', BOOLEAN_ALLOWED, value);
}

const OPTIONAL_STRING_ALLOWED = 'a string, or empty/null for unset (quote numbers in YAML)';

/** A string or unset: `null`, `undefined` and `''` all mean unset. */
export function parseOptionalString(value: unknown): string | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  if (typeof value === 'string') return value;
  throw new FormatError('not a string', OPTIONAL_STRING_ALLOWED, value);
}

const NON_EMPTY_STRING_ALLOWED = 'a non-empty string';

export function parseNonEmptyString(value: unknown): string {
  if (typeof value === 'string' && value.trim() !== '') return value.trim();
  throw new FormatError(typeof value === 'string' ? 'must not be empty' : 'not a string', NON_EMPTY_STRING_ALLOWED, value);
}

const NODE_ID_ALLOWED = 'letters, digits, ".", "_" and "-", starting with a letter or digit, at most 253 characters';

export function parseNodeId(value: unknown): string {
  if (typeof value === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/.test(value.trim())) return value.trim();
  throw new FormatError('not a valid node id', NODE_ID_ALLOWED, value);
}

const CLUSTER_NAME_ALLOWED = 'letters, digits, ".", "_" and "-", starting with a letter or digit, at most 63 characters (it prefixes etcd and Redis keys)';

export function parseClusterName(value: unknown): string {
  if (typeof value === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(value.trim())) return value.trim();
  throw new FormatError('not a valid cluster name', CLUSTER_NAME_ALLOWED, value);
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
const LOG_LEVEL_ALLOWED = `one of ${LOG_LEVELS.join(', ')}`;

export function parseLogLevel(value: unknown): LogLevel {
  const level = typeof value === 'string' ? value.trim().toLowerCase() : undefined;
  const known = LOG_LEVELS.find((candidate) => candidate === level);
  if (known === undefined) throw new FormatError('not a log level', LOG_LEVEL_ALLOWED, value);
  return known;
}

// ---------------------------------------------------------------------------
// URLs and lists

const HTTP_URL_ALLOWED = 'an http:// or https:// URL without credentials, query or fragment, e.g. https://registry.example.com';
const HTTP_URL_WITH_CREDENTIALS_ALLOWED = 'an http:// or https:// URL, e.g. http://etcd-1:2379';

/**
 * An http(s) base URL, returned as written minus trailing slashes.
 * Credentials are refused unless `allowCredentials` (they belong in the
 * username/password settings, where they are known to be secret).
 */
export function parseHttpUrl(value: unknown, { allowCredentials = false } = {}): string {
  const allowed = allowCredentials ? HTTP_URL_WITH_CREDENTIALS_ALLOWED : HTTP_URL_ALLOWED;
  if (typeof value !== 'string') throw new FormatError('not a URL', allowed, value);
  const text = value.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new FormatError('not a URL', allowed, value);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FormatError(`unsupported URL scheme "${url.protocol}"`, allowed, value);
  }
  if (url.hostname === '') throw new FormatError('URL has no host', allowed, value);
  if (!allowCredentials && (url.username !== '' || url.password !== '')) {
    throw new FormatError('URL must not contain credentials (use the username/password settings)', allowed, value);
  }
  if (url.search !== '' || url.hash !== '' || /[?#]/.test(text)) {
    throw new FormatError('URL must not have a query or fragment', allowed, value);
  }
  return text.replace(/\/+$/, '');
}

export function parseOptionalHttpUrl(value: unknown): string | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  return parseHttpUrl(value);
}

const REDIS_URL_ALLOWED = 'a redis:// or rediss:// URL (e.g. redis://:password@redis:6379/0), or empty for none';

export function parseRedisUrl(value: unknown): string | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  if (typeof value !== 'string') throw new FormatError('not a URL', REDIS_URL_ALLOWED, value);
  const text = value.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new FormatError('not a URL', REDIS_URL_ALLOWED, value);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new FormatError(`unsupported URL scheme "${url.protocol}"`, REDIS_URL_ALLOWED, value);
  }
  if (url.hostname === '') throw new FormatError('URL has no host', REDIS_URL_ALLOWED, value);
  return text;
}

const STRING_LIST_ALLOWED = 'a comma-separated string (e.g. "a,b") or a list of strings';

/** A comma-separated string or an array of strings; items trimmed, empty items dropped. */
export function parseStringList(value: unknown): string[] {
  if (value === null || value === undefined) return [];
  const items = typeof value === 'string' ? value.split(',') : value;
  if (!Array.isArray(items)) throw new FormatError('not a list', STRING_LIST_ALLOWED, value);
  return items.flatMap((item: unknown, index) => {
    if (typeof item !== 'string') throw new FormatError('not a string', STRING_LIST_ALLOWED, item, `[${index}]`);
    const trimmed = item.trim();
    return trimmed === '' ? [] : [trimmed];
  });
}

/** A {@link parseStringList} of http(s) URLs (credentials allowed; they are redacted when shown). */
export function parseUrlList(value: unknown): string[] {
  return parseStringList(value).map((item, index) => {
    try {
      return parseHttpUrl(item, { allowCredentials: true });
    } catch (error) {
      throw error instanceof FormatError ? error.within(`[${index}]`) : error;
    }
  });
}

// ---------------------------------------------------------------------------
// Extra registries

/**
 * One entry of `registries` as the user wrote it, parsed. Unset optional
 * fields are filled from the main `upstream` settings at load time.
 */
export interface RegistryEntry {
  host: string;
  url: string;
  username: string | undefined;
  password: string | undefined;
  caFile: string | undefined;
  insecure: boolean | undefined;
  connectTimeoutMs: number | undefined;
  headersTimeoutMs: number | undefined;
  bodyIdleTimeoutMs: number | undefined;
  retries: number | undefined;
  connections: number | undefined;
  /** More names clients call this registry by (`?ns=`, path prefix). */
  aliases: string[];
  /** Serves Docker Hub's namespace (`nginx` is `library/nginx`); undefined: decided from its names. */
  dockerHub: boolean | undefined;
}

export const REGISTRY_KEYS = [
  'host',
  'aliases',
  'dockerHub',
  'url',
  'username',
  'password',
  'caFile',
  'insecure',
  'connectTimeout',
  'headersTimeout',
  'bodyIdleTimeout',
  'retries',
  'connections',
] as const;

const REGISTRIES_ALLOWED = `a list of objects with keys ${REGISTRY_KEYS.join(', ')} (host and url required)`;
const REGISTRY_HOST_ALLOWED = 'a registry host name with optional port, e.g. ghcr.io or registry.example.com:5000';
const HOST_PATTERN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$/i;

export function parseRegistryHost(value: unknown): string {
  if (typeof value === 'string' && HOST_PATTERN.test(value.trim())) return value.trim().toLowerCase();
  throw new FormatError('not a registry host', REGISTRY_HOST_ALLOWED, value);
}

export function parseOptionalRegistryHost(value: unknown): string | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  return parseRegistryHost(value);
}

const REGISTRY_HOSTS_ALLOWED = `a comma-separated string or a list of registry hosts, e.g. docker.io`;

/** A {@link parseStringList} of registry hosts, lower-cased, each once. */
export function parseRegistryHosts(value: unknown): string[] {
  const hosts = parseStringList(value).map((item, index) => {
    try {
      return parseRegistryHost(item);
    } catch (error) {
      throw error instanceof FormatError ? new FormatError(error.reason, REGISTRY_HOSTS_ALLOWED, item, `[${index}]`) : error;
    }
  });
  return [...new Set(hosts)];
}

const OPTIONAL_BOOLEAN_ALLOWED = `${BOOLEAN_ALLOWED}, or unset`;

export function parseOptionalBoolean(value: unknown): boolean | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  try {
    return parseBoolean(value);
  } catch (error) {
    throw error instanceof FormatError ? new FormatError(error.reason, OPTIONAL_BOOLEAN_ALLOWED, value) : error;
  }
}

function optional<T>(parse: (value: unknown) => T): (value: unknown) => T | undefined {
  return (value) => (value === null || value === undefined ? undefined : parse(value));
}

/** Parses the `registries` list strictly: unknown keys, missing host/url and duplicate hosts are errors. */
export function parseRegistries(value: unknown): RegistryEntry[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) throw new FormatError('not a list', REGISTRIES_ALLOWED, value);
  const seen = new Set<string>();
  return value.map((raw: unknown, index): RegistryEntry => {
    const at = `[${index}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new FormatError('not an object', REGISTRIES_ALLOWED, raw, at);
    }
    const entry = raw as Record<string, unknown>;
    for (const key of Object.keys(entry)) {
      if (!(REGISTRY_KEYS as readonly string[]).includes(key)) {
        throw new FormatError('unknown key', `one of ${REGISTRY_KEYS.join(', ')}`, entry[key], `${at}.${key}`, true);
      }
    }
    const field = <T>(key: (typeof REGISTRY_KEYS)[number], parse: (value: unknown) => T): T => {
      try {
        return parse(entry[key]);
      } catch (error) {
        throw error instanceof FormatError ? error.within(`${at}.${key}`) : error;
      }
    };
    const host = field('host', parseRegistryHost);
    if (seen.has(host)) throw new FormatError('duplicate registry host', 'each host at most once', entry.host, `${at}.host`);
    seen.add(host);
    return {
      host,
      aliases: field('aliases', parseRegistryHosts),
      dockerHub: field('dockerHub', optional(parseBoolean)),
      url: field('url', (v) => parseHttpUrl(v)),
      username: field('username', parseOptionalString),
      password: field('password', parseOptionalString),
      caFile: field('caFile', parseOptionalString),
      insecure: field('insecure', optional(parseBoolean)),
      connectTimeoutMs: field('connectTimeout', optional(parsePositiveDuration)),
      headersTimeoutMs: field('headersTimeout', optional(parsePositiveDuration)),
      bodyIdleTimeoutMs: field('bodyIdleTimeout', optional(parsePositiveDuration)),
      retries: field('retries', optional(parseNonNegativeInt)),
      connections: field('connections', optional(parsePositiveInt)),
    };
  });
}

// ---------------------------------------------------------------------------
// Positive variants

const POSITIVE_DURATION_ALLOWED = `a duration greater than 0: ${DURATION_ALLOWED}`;

export function parsePositiveDuration(value: unknown): number {
  let ms: number;
  try {
    ms = parseDuration(value);
  } catch (error) {
    if (error instanceof FormatError) throw new FormatError(error.reason, POSITIVE_DURATION_ALLOWED, value);
    throw error;
  }
  if (ms === 0) throw new FormatError('must be greater than 0', POSITIVE_DURATION_ALLOWED, value);
  return ms;
}

const POSITIVE_INT_ALLOWED = 'a whole number of at least 1';
const NON_NEGATIVE_INT_ALLOWED = 'a whole number of at least 0';

export function parsePositiveInt(value: unknown): number {
  return parseInteger(value, 1, Number.MAX_SAFE_INTEGER, 'a whole number', POSITIVE_INT_ALLOWED);
}

export function parseNonNegativeInt(value: unknown): number {
  return parseInteger(value, 0, Number.MAX_SAFE_INTEGER, 'a whole number', NON_NEGATIVE_INT_ALLOWED);
}

// ---------------------------------------------------------------------------
// The registry of formats

/** A named configuration format: see the module comment. */
export interface ValueFormat<T> {
  /** What the format accepts, for error messages and docs. */
  readonly allowed: string;
  parse(value: unknown): T;
  /** Turns an env/flag string into a value `parse` reads with the same meaning; returns the string when it cannot. */
  coerce(text: string): unknown;
}

/** Coerce by parsing, for formats whose parsed value parses to itself. */
function coerceBy(parse: (value: unknown) => unknown): (text: string) => unknown {
  return (text) => {
    try {
      return parse(text) ?? null;
    } catch {
      return text;
    }
  };
}

function format<T>(allowed: string, parse: (value: unknown) => T, coerce = coerceBy(parse)): ValueFormat<T> {
  return { allowed, parse, coerce };
}

/**
 * Durations stay in the user's form inside convict (a number of seconds or a
 * string with units); they become milliseconds only when the Config is built,
 * so `30` from a file and `"30"` from an env var mean the same.
 */
function coerceDuration(text: string): unknown {
  const trimmed = text.trim();
  return /^\d+$/.test(trimmed) ? Number(trimmed) : trimmed;
}

/** Every format the schema uses, by convict format name. */
export const valueFormats = {
  bytes: format(BYTES_ALLOWED, parseBytes),
  duration: format(DURATION_ALLOWED, parseDuration, coerceDuration),
  'positive-duration': format(POSITIVE_DURATION_ALLOWED, parsePositiveDuration, coerceDuration),
  'port-number': format(PORT_ALLOWED, parsePort),
  fraction: format(FRACTION_ALLOWED, parseFraction),
  'strict-boolean': format(BOOLEAN_ALLOWED, parseBoolean),
  'positive-int': format(POSITIVE_INT_ALLOWED, parsePositiveInt),
  'non-negative-int': format(NON_NEGATIVE_INT_ALLOWED, parseNonNegativeInt),
  url: format(HTTP_URL_ALLOWED, (value) => parseHttpUrl(value)),
  'optional-url': format(`${HTTP_URL_ALLOWED}, or empty for unset`, parseOptionalHttpUrl),
  'redis-url': format(REDIS_URL_ALLOWED, parseRedisUrl),
  'optional-string': format(OPTIONAL_STRING_ALLOWED, parseOptionalString),
  'non-empty-string': format(NON_EMPTY_STRING_ALLOWED, parseNonEmptyString),
  'node-id': format(NODE_ID_ALLOWED, parseNodeId),
  'cluster-name': format(CLUSTER_NAME_ALLOWED, parseClusterName),
  'log-level': format(LOG_LEVEL_ALLOWED, parseLogLevel),
  'string-list': format(STRING_LIST_ALLOWED, parseStringList),
  'optional-registry-host': format(`${REGISTRY_HOST_ALLOWED}, or empty for the url's host`, parseOptionalRegistryHost),
  'registry-host-list': format(REGISTRY_HOSTS_ALLOWED, parseRegistryHosts),
  'optional-boolean': format(OPTIONAL_BOOLEAN_ALLOWED, parseOptionalBoolean),
  'url-list': format(`a comma-separated string or a list of ${HTTP_URL_WITH_CREDENTIALS_ALLOWED}s`, parseUrlList),
  // Config-file only; a string (never expected) is read as JSON.
  registries: format(REGISTRIES_ALLOWED, parseRegistries, (text) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }),
} as const satisfies Record<string, ValueFormat<unknown>>;

export type FormatName = keyof typeof valueFormats;

export function isFormatName(name: unknown): name is FormatName {
  return typeof name === 'string' && Object.hasOwn(valueFormats, name);
}

/**
 * The formats as convict registrations (`convict.addFormats(convictFormats)`).
 * convict calls `coerce` only for strings; `validate` runs the same parser.
 */
export const convictFormats: Readonly<Record<string, convict.Format>> = Object.fromEntries(
  Object.entries(valueFormats).map(([name, valueFormat]: [string, ValueFormat<unknown>]) => [
    name,
    {
      name,
      validate(value: unknown): void {
        valueFormat.parse(value);
      },
      coerce(value: unknown): unknown {
        return typeof value === 'string' ? valueFormat.coerce(value) : value;
      },
    },
  ]),
);
