/**
 * Value formats of the configuration: each a pure `parse(value)` from what a
 * user wrote (a YAML/JSON value, or a string from an env var or flag) to the
 * typed value in its units (bytes, milliseconds), throwing a
 * {@link FormatError} that says what is allowed. The schema names them;
 * convict runs them as its validators (no coercion: env strings stay strings
 * until parsed here, because convict's own `int` coercion reads `10GB` as 10).
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
  if (!Array.isArray(value)) throw new FormatError('not a list', allowed, value);
  if (value.length > max) throw new FormatError(`more than ${max} entries`, allowed, value.length);
  return value.map((raw: unknown, index) => parseField(`[${index}]`, () => item(raw)));
}

type Fields = Record<string, (value: unknown) => unknown>;

/**
 * An object whose keys are those of `fields`, each parsed by its field
 * (located at `.key`); an unknown key is an error that hides its value (a
 * misspelt key may hold a secret), a `required` key missing too.
 */
export function parseObject<F extends Fields>(raw: unknown, fields: F, allowed: string, required: ReadonlyArray<keyof F> = []): { [K in keyof F]: ReturnType<F[K]> } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new FormatError('not an object', allowed, raw);
  const object = raw as Record<string, unknown>;
  const unknown = Object.keys(object).find((key) => !Object.hasOwn(fields, key));
  if (unknown !== undefined) throw new FormatError('unknown key', `one of ${Object.keys(fields).join(', ')}`, object[unknown], unknown, true);
  const missing = required.find((key) => object[key as string] === undefined || object[key as string] === null);
  if (missing !== undefined) throw new FormatError('required', allowed, undefined, missing as string);
  return Object.fromEntries(Object.entries(fields).map(([key, parse]) => [key, parseField(key, () => parse(object[key]))])) as { [K in keyof F]: ReturnType<F[K]> };
}

export const BYTES_ALLOWED =
  'a whole number of bytes (e.g. 1073741824) or a number with a unit: kB, MB, GB, TB (powers of 1000) ' +
  'or KiB, MiB, GiB, TiB, also written K, M, G, T (powers of 1024), e.g. 10GiB, 500MB, 1.5GiB';
const BYTE_UNITS = new Map<string, bigint>([['', 1n], ['b', 1n]]);
['k', 'm', 'g', 't'].forEach((prefix, i) => {
  BYTE_UNITS.set(`${prefix}b`, 1000n ** BigInt(i + 1));
  for (const unit of [prefix, `${prefix}i`, `${prefix}ib`]) BYTE_UNITS.set(unit, 1024n ** BigInt(i + 1));
});
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * A byte size: a whole number, or a number with a unit (case-insensitive, an
 * optional space): kB..TB powers of 1000, K/Ki/KiB..T/Ti/TiB powers of 1024.
 * A fraction needs a unit above a byte and is rounded down, exactly.
 */
export function parseBytes(value: unknown): number {
  const fail = (reason: string): never => {
    throw new FormatError(reason, BYTES_ALLOWED, value);
  };
  const text = typeof value === 'number' ? (Number.isFinite(value) ? String(value) : 'x') : typeof value === 'string' ? value.trim() : fail('not a byte size');
  if (text.startsWith('-')) fail('a byte size cannot be negative');
  const [, whole = '', fraction = '', unit = ''] = /^(\d+)(?:\.(\d+))?\s*([a-z]*)$/i.exec(text) ?? fail('not a byte size');
  const multiplier = BYTE_UNITS.get(unit.toLowerCase()) ?? fail(`unknown size unit "${unit}"`);
  if (fraction !== '' && multiplier === 1n) fail(typeof value === 'number' ? 'not a whole number of bytes' : 'a byte size must be a whole number of bytes');
  const bytes = (BigInt(whole + fraction) * multiplier) / 10n ** BigInt(fraction.length);
  return bytes > MAX_SAFE ? fail('byte size too large') : Number(bytes);
}

export const DURATION_ALLOWED =
  'a number of seconds (e.g. 30) or a duration with units ms, s, m, h, d, which may be combined (e.g. 250ms, 1.5s, 5m, 1h, 1m30s)';
const DURATION_MS: Record<string, bigint> = { ms: 1n, s: 1000n, m: 60_000n, h: 3_600_000n, d: 86_400_000n };

/** A duration in milliseconds: `250ms`, `1.5s`, `1m30s`, `1h 30m`; a plain number means seconds. Whole milliseconds only. */
export function parseDuration(value: unknown, allowed = DURATION_ALLOWED): number {
  const fail = (reason: string): never => {
    throw new FormatError(reason, allowed, value);
  };
  const text = typeof value === 'number' ? (Number.isFinite(value) ? String(value) : fail('not a duration')) : typeof value === 'string' ? value.trim() : fail('not a duration');
  if (text.startsWith('-')) fail('a duration cannot be negative');
  const plain = /^\d+(\.\d+)?$/.test(text);
  const parts = [...(plain ? `${text}s` : text).matchAll(/(\d+)(?:\.(\d+))?\s*(ms|s|m|h|d)\s*/gy)];
  if (parts.length === 0 || parts.map((part) => part[0]).join('') !== (plain ? `${text}s` : text)) fail('not a duration');
  let total = 0n;
  for (const [, whole = '', fraction = '', unit = ''] of parts) {
    const scale = 10n ** BigInt(fraction.length);
    const scaled = BigInt(whole + fraction) * (DURATION_MS[unit] ?? 0n);
    if (scaled % scale !== 0n) fail('a duration must be a whole number of milliseconds');
    total += scaled / scale;
  }
  return total > MAX_SAFE ? fail('duration too long') : Number(total);
}

const POSITIVE_DURATION_ALLOWED = `a duration greater than 0: ${DURATION_ALLOWED}`;

export function parsePositiveDuration(value: unknown): number {
  const ms = parseDuration(value, POSITIVE_DURATION_ALLOWED);
  return ms > 0 ? ms : fail('must be greater than 0', POSITIVE_DURATION_ALLOWED, value);
}

export function fail(reason: string, allowed: string, value: unknown): never {
  throw new FormatError(reason, allowed, value);
}

/** Whole numbers from `min` to `max`, from a number or a digit string. */
function integer(min: number, allowed: string, what = 'a whole number', max = Number.MAX_SAFE_INTEGER) {
  return (value: unknown): number => {
    const number = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(number)) fail(`not ${what}`, allowed, value);
    if (number < min || number > max) fail(`must be at ${number < min ? `least ${min}` : `most ${max}`}`, allowed, value);
    return number;
  };
}

export const PORT_ALLOWED = 'an integer from 0 to 65535 (0 picks a free port)';
const portNumber = integer(0, PORT_ALLOWED, 'a port number', 65535);

export function parsePort(value: unknown): number {
  // A Kubernetes Service named "outpost" injects OUTPOST_PORT=tcp://10.0.0.1:5000 into every pod of its namespace.
  if (typeof value === 'string' && /^[a-z]+:\/\//i.test(value.trim())) {
    fail('not a port number (a Kubernetes service link variable? set enableServiceLinks: false on the pod)', PORT_ALLOWED, value);
  }
  return portNumber(value);
}

const FRACTION_ALLOWED = 'a number from 0 to 1, e.g. 0.85';

export function parseFraction(value: unknown): number {
  const number = typeof value === 'number' ? value : typeof value === 'string' && /^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isFinite(number)) fail('not a fraction', FRACTION_ALLOWED, value);
  return number >= 0 && number <= 1 ? number : fail('fraction out of range', FRACTION_ALLOWED, value);
}

const BOOLEAN_ALLOWED = 'true or false (also yes/no, on/off, 1/0)';
const BOOLEAN_WORDS = new Map([...['true', 'yes', 'on', '1'].map((w) => [w, true] as const), ...['false', 'no', 'off', '0'].map((w) => [w, false] as const)]);

/** Unlike convict's `Boolean` coercion, `no` or `disabled` is not `true`. */
export function parseBoolean(value: unknown, allowed = BOOLEAN_ALLOWED): boolean {
  const word = typeof value === 'boolean' || value === 1 || value === 0 ? String(Boolean(value)) : typeof value === 'string' ? value.trim().toLowerCase() : '';
  return BOOLEAN_WORDS.get(word) ?? fail('not a boolean', allowed, value);
}

const isUnset = (value: unknown): boolean => value === null || value === undefined || value === '';

/** `null`, `undefined` and `''` mean unset; anything else goes to `parse`. */
function optional<T>(parse: (value: unknown) => T): (value: unknown) => T | undefined {
  return (value) => (isUnset(value) ? undefined : parse(value));
}

const OPTIONAL_STRING_ALLOWED = 'a string, or empty/null for unset (quote numbers in YAML)';

export const parseOptionalString = optional((value): string => (typeof value === 'string' ? value : fail('not a string', OPTIONAL_STRING_ALLOWED, value)));

/** A trimmed string matching `pattern`; `what` names it in the message. */
function matching(pattern: RegExp, what: string, allowed: string) {
  return (value: unknown): string => {
    const text = typeof value === 'string' ? value.trim() : undefined;
    if (text !== undefined && pattern.test(text)) return text;
    return fail(text === '' && what === 'not a string' ? 'must not be empty' : what, allowed, value);
  };
}

const parseNonEmptyString = matching(/./, 'not a string', 'a non-empty string');
const parseNodeId = matching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/, 'not a valid node id', 'letters, digits, ".", "_" and "-", starting with a letter or digit, at most 253 characters');
const parseClusterName = matching(
  /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/,
  'not a valid cluster name',
  'letters, digits, ".", "_" and "-", starting with a letter or digit, at most 63 characters (it prefixes etcd and Redis keys)',
);

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function parseLogLevel(value: unknown): string {
  const level = typeof value === 'string' ? value.trim().toLowerCase() : '';
  return (LOG_LEVELS as readonly string[]).includes(level) ? level : fail('not a log level', `one of ${LOG_LEVELS.join(', ')}`, value);
}

const HTTP_URL_ALLOWED = 'an http:// or https:// URL without credentials, query or fragment, e.g. https://registry.example.com';
const URL_WITH_CREDENTIALS_ALLOWED = 'an http:// or https:// URL, e.g. http://etcd-1:2379';
const REDIS_URL_ALLOWED = 'a redis:// or rediss:// URL (e.g. redis://:password@redis:6379/0), or empty for none';

/** A URL of one of `schemes`, returned as written minus trailing slashes; credentials, query and fragment refused unless allowed. */
function url(schemes: readonly string[], allowed: string, { credentials = false, query = false } = {}) {
  return (value: unknown): string => {
    const text = typeof value === 'string' ? value.trim() : '';
    let parsed: URL;
    try {
      parsed = new URL(text);
    } catch {
      return fail('not a URL', allowed, value);
    }
    if (!schemes.includes(parsed.protocol)) fail(`unsupported URL scheme "${parsed.protocol}"`, allowed, value);
    if (parsed.hostname === '') fail('URL has no host', allowed, value);
    if (!credentials && (parsed.username !== '' || parsed.password !== '')) fail('URL must not contain credentials (use the username/password settings)', allowed, value);
    if (!query && /[?#]/.test(text)) fail('URL must not have a query or fragment', allowed, value);
    return query ? text : text.replace(/\/+$/, '');
  };
}

const http = ['http:', 'https:'];
export const parseHttpUrl = url(http, HTTP_URL_ALLOWED);
export const parseRedisUrl = optional(url(['redis:', 'rediss:'], REDIS_URL_ALLOWED, { credentials: true, query: true }));

const STRING_LIST_ALLOWED = 'a comma-separated string (e.g. "a,b") or a list of strings';

/** A comma-separated string or a list of strings; items trimmed, empty items dropped, each parsed by `item`. */
function stringList<T = string>(allowed = STRING_LIST_ALLOWED, item = (text: string): T => text as T) {
  return (value: unknown): T[] => {
    if (value === null || value === undefined) return [];
    const items = typeof value === 'string' ? value.split(',') : value;
    return parseList(items, allowed, Infinity, (raw) => (typeof raw === 'string' ? raw.trim() : fail('not a string', STRING_LIST_ALLOWED, raw)))
      .map((text, index) => [text, index] as const)
      .filter(([text]) => text !== '')
      .map(([text, index]) => parseField(`[${index}]`, () => item(text)));
  };
}

export const parseStringList = stringList();
export const parseUrlList = stringList(`a comma-separated string or a list of ${URL_WITH_CREDENTIALS_ALLOWED}s`, url(http, URL_WITH_CREDENTIALS_ALLOWED, { credentials: true }));

const REGISTRY_HOST_ALLOWED = 'a registry host name with optional port, e.g. ghcr.io or registry.example.com:5000';
const HOST = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$/i;

export function parseRegistryHost(value: unknown, allowed = REGISTRY_HOST_ALLOWED): string {
  return typeof value === 'string' && HOST.test(value.trim()) ? value.trim().toLowerCase() : fail('not a registry host', allowed, value);
}

export const parseOptionalRegistryHost = optional(parseRegistryHost);
const REGISTRY_HOSTS_ALLOWED = 'a comma-separated string or a list of registry hosts, e.g. docker.io';
const registryHosts = stringList(REGISTRY_HOSTS_ALLOWED, (text) => parseRegistryHost(text, REGISTRY_HOSTS_ALLOWED));
export const parseRegistryHosts = (value: unknown): string[] => [...new Set(registryHosts(value))];

export const parsePositiveInt = integer(1, 'a whole number of at least 1');
export const parseNonNegativeInt = integer(0, 'a whole number of at least 0');
const parseOptionalBoolean = optional((value) => parseBoolean(value, `${BOOLEAN_ALLOWED}, or unset`));

/** How an entry of `registries` is read; unset optional fields are filled from `upstream` by the loader. */
const REGISTRY_FIELDS = {
  host: parseRegistryHost,
  aliases: parseRegistryHosts,
  dockerHub: parseOptionalBoolean,
  url: parseHttpUrl,
  username: parseOptionalString,
  password: parseOptionalString,
  caFile: parseOptionalString,
  insecure: parseOptionalBoolean,
  connectTimeout: optional(parsePositiveDuration),
  headersTimeout: optional(parsePositiveDuration),
  bodyIdleTimeout: optional(parsePositiveDuration),
  retries: optional(parseNonNegativeInt),
  connections: optional(parsePositiveInt),
};
const REGISTRIES_ALLOWED = `a list of objects with keys ${Object.keys(REGISTRY_FIELDS).join(', ')} (host and url required)`;

/** The `registries` list, strictly: unknown keys, missing host/url and duplicate hosts are errors. */
export function parseRegistries(value: unknown) {
  const seen = new Set<string>();
  return parseList(value ?? [], REGISTRIES_ALLOWED, 1000, (raw) => {
    const entry = parseObject(raw, REGISTRY_FIELDS, REGISTRIES_ALLOWED, ['host', 'url']);
    if (seen.has(entry.host)) throw new FormatError('duplicate registry host', 'each host at most once', entry.host, 'host');
    seen.add(entry.host);
    const { connectTimeout, headersTimeout, bodyIdleTimeout, ...rest } = entry;
    return { ...rest, connectTimeoutMs: connectTimeout, headersTimeoutMs: headersTimeout, bodyIdleTimeoutMs: bodyIdleTimeout };
  });
}

export type RegistryEntry = ReturnType<typeof parseRegistries>[number];

/** A format of the schema: what it accepts (for messages) and its parser. */
export interface ValueFormat<T> {
  readonly allowed: string;
  parse(value: unknown): T;
}

const format = <T>(allowed: string, parse: (value: unknown) => T): ValueFormat<T> => ({ allowed, parse });

/** Every format the schema uses, by name. Durations in ms; `seconds` is a duration in seconds (drainSeconds). */
export const valueFormats = {
  bytes: format(BYTES_ALLOWED, parseBytes),
  duration: format(DURATION_ALLOWED, (value) => parseDuration(value)),
  'positive-duration': format(POSITIVE_DURATION_ALLOWED, parsePositiveDuration),
  seconds: format(DURATION_ALLOWED, (value) => parseDuration(value) / 1000),
  'port-number': format(PORT_ALLOWED, parsePort),
  fraction: format(FRACTION_ALLOWED, parseFraction),
  'strict-boolean': format(BOOLEAN_ALLOWED, (value) => parseBoolean(value)),
  'positive-int': format('a whole number of at least 1', parsePositiveInt),
  'non-negative-int': format('a whole number of at least 0', parseNonNegativeInt),
  url: format(HTTP_URL_ALLOWED, parseHttpUrl),
  'optional-url': format(`${HTTP_URL_ALLOWED}, or empty for unset`, optional(parseHttpUrl)),
  'redis-url': format(REDIS_URL_ALLOWED, parseRedisUrl),
  'optional-string': format(OPTIONAL_STRING_ALLOWED, parseOptionalString),
  'non-empty-string': format('a non-empty string', parseNonEmptyString),
  'node-id': format('a node id', parseNodeId),
  'cluster-name': format('a cluster name', parseClusterName),
  'log-level': format(`one of ${LOG_LEVELS.join(', ')}`, parseLogLevel),
  'string-list': format(STRING_LIST_ALLOWED, parseStringList),
  'optional-registry-host': format(`${REGISTRY_HOST_ALLOWED}, or empty for the url's host`, parseOptionalRegistryHost),
  'registry-host-list': format(REGISTRY_HOSTS_ALLOWED, parseRegistryHosts),
  'optional-boolean': format(`${BOOLEAN_ALLOWED}, or unset`, parseOptionalBoolean),
  'url-list': format(`a comma-separated string or a list of ${URL_WITH_CREDENTIALS_ALLOWED}s`, parseUrlList),
  registries: format(REGISTRIES_ALLOWED, parseRegistries),
} as const satisfies Record<string, ValueFormat<unknown>>;

/** Formats as convict validators (`convict.addFormats(toConvict(valueFormats))`), without coercion. */
export function toConvict(formats: Readonly<Record<string, ValueFormat<unknown>>>): Record<string, convict.Format> {
  return Object.fromEntries(Object.entries(formats).map(([name, { parse }]) => [name, { name, validate: (value: unknown) => void parse(value) }]));
}

export const convictFormats = toConvict(valueFormats);
