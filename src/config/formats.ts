/**
 * Value formats of the configuration: each a pure `parse(value)` from what a
 * user wrote (a YAML/JSON value, or a string from an env var or flag) to the
 * typed value in its units (bytes, milliseconds), throwing a
 * {@link FormatError} that says what is allowed. The schema names them;
 * convict runs them as its validators without coercion (convict's own `int`
 * coercion is `parseInt`, which reads `10GB` as 10, and its `Boolean` reads
 * `no` as true).
 */
import type convict from 'convict';

/** A value that does not fit its format; `path` locates it inside a structured value (`[1].url`). */
export class FormatError extends Error {
  override readonly name = 'FormatError';
  readonly code = 'CONFIG_FORMAT_INVALID';

  /** `reason` never holds the value (callers redact it); `valueHidden`: an unknown key, whose value may be a misplaced secret. */
  constructor(readonly reason: string, readonly allowed: string, readonly value: unknown, readonly path = '', readonly valueHidden = false) {
    super(`${path ? `${path}: ` : ''}${reason}${valueHidden ? '' : `, got ${describeValue(value)}`}; allowed: ${allowed}`);
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
  if (typeof value !== 'string' && typeof value !== 'object') return String(value);
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value); // a recursive YAML alias
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

export function fail(reason: string, allowed: string, value: unknown): never {
  throw new FormatError(reason, allowed, value);
}

/** A format of the schema: what it accepts (for messages and docs) and its parser. */
export interface ValueFormat<T> {
  readonly allowed: string;
  parse(value: unknown): T;
}

/** A format whose parser reports problems through `fail(reason)`, with this `allowed`. */
export function format<T>(allowed: string, parse: (value: unknown, fail: (reason: string) => never) => T): ValueFormat<T> {
  return { allowed, parse: (value) => parse(value, (reason) => fail(reason, allowed, value)) };
}

/** `null`, `undefined` and `''` mean unset; anything else is read by `inner`, whose errors say what it allows. */
export function optional<T>(inner: ValueFormat<T>, unset = ', or unset'): ValueFormat<T | undefined> {
  return { allowed: `${inner.allowed}${unset}`, parse: (value) => (value === null || value === undefined || value === '' ? undefined : inner.parse(value)) };
}

export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A field's parser that reads `null` and `undefined` as `fallback`. */
export const or =
  <T>(fallback: T, parse: (value: unknown) => T) =>
  (value: unknown): T =>
    value === undefined || value === null ? fallback : parse(value);

/** Runs `parse`, locating a FormatError it throws under `path`. */
export function parseField<T>(path: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw error instanceof FormatError ? error.within(path) : error;
  }
}

/** A list of at most `max` items, each parsed by `item` (errors located at `[i]`). */
export function parseList<T>(value: unknown, allowed: string, max: number, item: (raw: unknown) => T): T[] {
  if (!Array.isArray(value)) fail('not a list', allowed, value);
  if (value.length > max) fail(`more than ${max} entries`, allowed, value.length);
  return value.map((raw: unknown, index) => parseField(`[${index}]`, () => item(raw)));
}

/** An object with the keys of `fields`, each parsed by its field; an unknown key hides its value, a `required` one must be set. */
export function parseObject<F extends Record<string, (value: unknown) => unknown>>(raw: unknown, fields: F, allowed: string, required: ReadonlyArray<keyof F & string> = []) {
  const object = isMapping(raw) ? raw : fail('not an object', allowed, raw);
  const unknown = Object.keys(object).find((key) => !Object.hasOwn(fields, key));
  if (unknown !== undefined) throw new FormatError('unknown key', `one of ${Object.keys(fields).join(', ')}`, object[unknown], unknown, true);
  const missing = required.find((key) => object[key] === undefined || object[key] === null);
  if (missing !== undefined) throw new FormatError('required', allowed, undefined, missing);
  return Object.fromEntries(Object.entries(fields).map(([key, parse]) => [key, parseField(key, () => parse(object[key]))])) as { [K in keyof F]: ReturnType<F[K]> };
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const BYTE_UNITS = new Map<string, bigint>([['', 1n], ['b', 1n]]);
['k', 'm', 'g', 't'].forEach((prefix, i) => {
  BYTE_UNITS.set(`${prefix}b`, 1000n ** BigInt(i + 1));
  for (const unit of [prefix, `${prefix}i`, `${prefix}ib`]) BYTE_UNITS.set(unit, 1024n ** BigInt(i + 1));
});

/** A number or a trimmed string, as the text to read; negative values refused. */
function numberText(value: unknown, what: string, fail: (reason: string) => never): string {
  const text = typeof value === 'number' && Number.isFinite(value) ? String(value) : typeof value === 'string' ? value.trim() : fail(`not a ${what}`);
  return text.startsWith('-') ? fail(`a ${what} cannot be negative`) : text;
}

/** A byte size; a fraction needs a unit above a byte and is rounded down, computed exactly (`1.005kB` is 1005). */
const bytes = format(
  'a whole number of bytes (e.g. 1073741824) or a number with a unit: kB, MB, GB, TB (powers of 1000) ' +
    'or KiB, MiB, GiB, TiB, also written K, M, G, T (powers of 1024), e.g. 10GiB, 500MB, 1.5GiB',
  (value, fail) => {
    const [, whole = '', fraction = '', unit = ''] = /^(\d+)(?:\.(\d+))?\s*([a-z]*)$/i.exec(numberText(value, 'byte size', fail)) ?? fail('not a byte size');
    const multiplier = BYTE_UNITS.get(unit.toLowerCase()) ?? fail(`unknown size unit "${unit}"`);
    if (fraction !== '' && multiplier === 1n) fail(typeof value === 'number' ? 'not a whole number of bytes' : 'a byte size must be a whole number of bytes');
    const result = (BigInt(whole + fraction) * multiplier) / 10n ** BigInt(fraction.length);
    return result > MAX_SAFE ? fail('byte size too large') : Number(result);
  },
);

const DURATION_ALLOWED = 'a number of seconds (e.g. 30) or a duration with units ms, s, m, h, d, which may be combined (e.g. 250ms, 1.5s, 5m, 1h, 1m30s)';
const DURATION_MS: Record<string, bigint> = { ms: 1n, s: 1000n, m: 60_000n, h: 3_600_000n, d: 86_400_000n };

/** Milliseconds from `250ms`, `1.5s`, `1m30s`, `1h 30m`, or a plain number of seconds; whole milliseconds only. */
function duration(allowed: string, positive: boolean) {
  return format(allowed, (value, fail) => {
    const text = numberText(value, 'duration', fail);
    const units = /^\d+(\.\d+)?$/.test(text) ? `${text}s` : text;
    const parts = [...units.matchAll(/(\d+)(?:\.(\d+))?\s*(ms|s|m|h|d)\s*/gy)];
    if (parts.length === 0 || parts.map((part) => part[0]).join('') !== units) fail('not a duration');
    let total = 0n;
    for (const [, whole = '', fraction = '', unit = ''] of parts) {
      const scaled = BigInt(whole + fraction) * (DURATION_MS[unit] ?? 0n);
      if (scaled % 10n ** BigInt(fraction.length) !== 0n) fail('a duration must be a whole number of milliseconds');
      total += scaled / 10n ** BigInt(fraction.length);
    }
    if (positive && total === 0n) fail('must be greater than 0');
    return total > MAX_SAFE ? fail('duration too long') : Number(total);
  });
}
const anyDuration = duration(DURATION_ALLOWED, false);
const positiveDuration = duration(`a duration greater than 0: ${DURATION_ALLOWED}`, true);

/** Whole numbers from `min` to `max`, from a number or a digit string. */
function integer(min: number, allowed: string, what = 'a whole number', max = Number.MAX_SAFE_INTEGER) {
  return format(allowed, (value, fail) => {
    // A Kubernetes Service named "outpost" injects OUTPOST_PORT=tcp://10.0.0.1:5000 into every pod of its namespace.
    if (what === 'a port number' && typeof value === 'string' && /^[a-z]+:\/\//i.test(value.trim())) {
      fail('not a port number (a Kubernetes service link variable? set enableServiceLinks: false on the pod)');
    }
    const number = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(number)) fail(`not ${what}`);
    return number < min || number > max ? fail(`must be at ${number < min ? `least ${min}` : `most ${max}`}`) : number;
  });
}

const fraction = format('a number from 0 to 1, e.g. 0.85', (value, fail) => {
  const number = typeof value === 'number' ? value : typeof value === 'string' && /^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isFinite(number)) fail('not a fraction');
  return number >= 0 && number <= 1 ? number : fail('fraction out of range');
});

const BOOLEAN_WORDS = new Map(Object.entries({ true: true, yes: true, on: true, 1: true, false: false, no: false, off: false, 0: false }));
const boolean = format('true or false (also yes/no, on/off, 1/0)', (value, fail) => {
  const word = typeof value === 'boolean' || value === 1 || value === 0 ? String(Boolean(value)) : typeof value === 'string' ? value.trim().toLowerCase() : '';
  return BOOLEAN_WORDS.get(word) ?? fail('not a boolean');
});

/** A trimmed string matching `pattern`, lower-cased if asked; `what` is the reason when it does not match. */
function matching(pattern: RegExp, what: string, allowed: string, lowerCase = false) {
  return format(allowed, (value, fail) => {
    const text = typeof value === 'string' ? value.trim() : undefined;
    if (text !== undefined && pattern.test(text)) return lowerCase ? text.toLowerCase() : text;
    return fail(text === '' && what === 'not a string' ? 'must not be empty' : what);
  });
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** A URL of one of `schemes`, as written minus trailing slashes; credentials, query and fragment refused unless allowed. */
function url(schemes: readonly string[], allowed: string, { credentials = false, query = false } = {}) {
  return format(allowed, (value, fail) => {
    const text = typeof value === 'string' ? value.trim() : '';
    let parsed: URL;
    try {
      parsed = new URL(text);
    } catch {
      return fail('not a URL');
    }
    if (!schemes.includes(parsed.protocol)) fail(`unsupported URL scheme "${parsed.protocol}"`);
    if (parsed.hostname === '') fail('URL has no host');
    if (!credentials && (parsed.username !== '' || parsed.password !== '')) fail('URL must not contain credentials (use the username/password settings)');
    if (!query && /[?#]/.test(text)) fail('URL must not have a query or fragment');
    return query ? text : text.replace(/\/+$/, '');
  });
}
const HTTP = ['http:', 'https:'];
const httpUrl = url(HTTP, 'an http:// or https:// URL without credentials, query or fragment, e.g. https://registry.example.com');

/** A comma-separated string or a list of strings; items trimmed, empty items dropped, each parsed by `item`. */
function stringList<T = string>(allowed: string, item?: ValueFormat<T>, unique = false) {
  return format(allowed, (value): T[] => {
    const items = typeof value === 'string' ? value.split(',') : (value ?? []);
    const texts = parseList(items, allowed, Infinity, (raw) => (typeof raw === 'string' ? raw.trim() : fail('not a string', allowed, raw)));
    const parsed = texts.flatMap((text, index) => (text === '' ? [] : [parseField(`[${index}]`, () => (item === undefined ? (text as T) : item.parse(text)))]));
    return unique ? [...new Set(parsed)] : parsed;
  });
}

const HOST = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$/i;
const hostFormat = (allowed: string) => matching(HOST, 'not a registry host', allowed, true);
const registryHost = hostFormat('a registry host name with optional port, e.g. ghcr.io or registry.example.com:5000');
const REGISTRY_HOSTS_ALLOWED = 'a comma-separated string or a list of registry hosts, e.g. docker.io';

/** Every format of the schema's own settings, by name (schema.ts adds the auth and prefetch ones). */
export const valueFormats = {
  bytes,
  duration: anyDuration,
  'positive-duration': positiveDuration,
  /** A duration in seconds (drainSeconds). */
  seconds: format(DURATION_ALLOWED, (value) => anyDuration.parse(value) / 1000),
  'port-number': integer(0, 'an integer from 0 to 65535 (0 picks a free port)', 'a port number', 65535),
  fraction,
  'strict-boolean': boolean,
  'positive-int': integer(1, 'a whole number of at least 1'),
  'non-negative-int': integer(0, 'a whole number of at least 0'),
  url: httpUrl,
  'optional-url': optional(httpUrl, ', or empty for unset'),
  'redis-url': optional(url(['redis:', 'rediss:'], 'a redis:// or rediss:// URL (e.g. redis://:password@redis:6379/0), or empty for none', { credentials: true, query: true }), ''),
  'optional-string': optional(format('a string, or empty/null for unset (quote numbers in YAML)', (value, fail) => (typeof value === 'string' ? value : fail('not a string'))), ''),
  'non-empty-string': matching(/./, 'not a string', 'a non-empty string'),
  'node-id': matching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/, 'not a valid node id', 'letters, digits, ".", "_" and "-", starting with a letter or digit, at most 253 characters'),
  'cluster-name': matching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'not a valid cluster name', 'letters, digits, ".", "_" and "-", starting with a letter or digit, at most 63 characters (it prefixes etcd and Redis keys)'),
  'log-level': matching(new RegExp(`^(${LOG_LEVELS.join('|')})$`, 'i'), 'not a log level', `one of ${LOG_LEVELS.join(', ')}`, true),
  'string-list': stringList<string>('a comma-separated string (e.g. "a,b") or a list of strings'),
  'optional-registry-host': optional(registryHost, ", or empty for the url's host"),
  'registry-host-list': stringList(REGISTRY_HOSTS_ALLOWED, hostFormat(REGISTRY_HOSTS_ALLOWED), true),
  'optional-boolean': optional(boolean),
  'url-list': stringList('a comma-separated string or a list of http:// or https:// URLs, e.g. http://etcd-1:2379', url(HTTP, 'an http:// or https:// URL, e.g. http://etcd-1:2379', { credentials: true })),
} as const satisfies Record<string, ValueFormat<unknown>>;

export const parseDuration = anyDuration.parse;
export const parseRegistryHost = registryHost.parse;

/** Formats as convict validators (`convict.addFormats(toConvict(...))`), without coercion. */
export function toConvict(formats: Readonly<Record<string, ValueFormat<unknown>>>): Record<string, convict.Format> {
  return Object.fromEntries(Object.entries(formats).map(([name, { parse }]) => [name, { name, validate: (value: unknown) => void parse(value) }]));
}

export const convictFormats = toConvict(valueFormats);
