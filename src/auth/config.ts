/**
 * The `auth:` block of the configuration file, parsed strictly:
 *
 *   auth:
 *     mode: basic                     # none (default) | basic | upstream
 *     htpasswd: /etc/outpost/htpasswd # required with basic; bcrypt entries
 *     groups: {developers: [alice, bob]}
 *     anonymous: ["library/*"]        # repositories anyone may pull without credentials
 *     rules:
 *       - repositories: ["team-a/*"]  # image patterns, repository part only
 *         users: [alice]
 *         groups: [developers]        # each must be defined under groups
 *         upstreams: [ghcr.io]        # optional; default: every upstream
 *     cacheDecisions: 60s             # upstream mode: how long an allow/deny is reused; basic: how long a verified password is trusted
 *
 * convict cannot hold this block as one setting with a custom format: its
 * `load()` walks into any object value whose format is not `object` and
 * crashes on nested objects (`groups: {developers: [...]}`). So the block
 * is a convict section, {@link authSchemaSection}: one setting per key,
 * `groups` with convict's built-in `Object` format, the others with formats from
 * {@link authValueFormats} (registered through {@link authConvictFormats})
 * or the existing `optional-string` and `duration`. The loader then runs
 * {@link parseAuthConfig} on the assembled section (`store.get('auth')`)
 * for the groups and for what spans keys (mode-dependent keys, rule groups
 * that must be defined). Every parser
 * throws a {@link FormatError} whose `path` is relative to the value it was
 * given (`[2].repositories[0]` for `auth.rules`), which the loader prefixes
 * with the key, so users read
 * `auth.rules[2].repositories[0]: <reason>, got "..."; allowed: ...`.
 *
 * Settings that would be silently ignored in the chosen mode are errors, not
 * warnings: `htpasswd` or `rules` with `mode: none` means someone believes
 * pulls are checked when they are not. Access is granted per repository (a
 * blob by digest has no tag), so patterns here may not name tags.
 */
import type convict from 'convict';
import { FormatError, parseDuration, parseRegistryHost } from '../config/formats.ts';
import {
  canEverInclude,
  coversEveryTag,
  IMAGE_PATTERN_ALLOWED,
  ImagePatternError,
  parseImagePattern,
  type ImagePattern,
} from '../registry/image-pattern.ts';
import type { AccessRuleConfig, AccessRulesConfig } from './access-rules.ts';

export const AUTH_MODES = ['none', 'basic', 'upstream'] as const;
export type AuthMode = (typeof AUTH_MODES)[number];

export interface AuthRuleConfig extends AccessRuleConfig {
  repositories: string[];
  users: string[];
  groups: string[];
  /** Lower-case hosts; undefined means every upstream. */
  upstreams: string[] | undefined;
}

/** The validated `auth:` block. */
export interface AuthConfig extends AccessRulesConfig {
  mode: AuthMode;
  /** Path of the htpasswd file; set exactly when mode is basic. */
  htpasswd: string | undefined;
  groups: Record<string, string[]>;
  anonymous: string[];
  rules: AuthRuleConfig[];
  /** upstream mode: how long an allow/deny answer of the primary is reused; 0 asks every time. */
  cacheDecisionsMs: number;
}

export const AUTH_KEYS = ['mode', 'htpasswd', 'groups', 'anonymous', 'rules', 'cacheDecisions'] as const;
export const AUTH_RULE_KEYS = ['repositories', 'users', 'groups', 'upstreams'] as const;

/** Bounds that keep every decision cheap (rules × patterns per request). */
export const AUTH_LIMITS = { rules: 1000, patterns: 1000, groups: 1000, members: 10_000 } as const;

export const DEFAULT_CACHE_DECISIONS_MS = 60_000;

export function defaultAuthConfig(): AuthConfig {
  return { mode: 'none', htpasswd: undefined, groups: {}, anonymous: [], rules: [], cacheDecisionsMs: DEFAULT_CACHE_DECISIONS_MS };
}

export const AUTH_ALLOWED =
  `an object with keys ${AUTH_KEYS.join(', ')}: mode none, basic or upstream; htpasswd (required with basic); ` +
  'groups {name: [users]}; anonymous [repository patterns]; rules [{repositories, users, groups, upstreams}]; ' +
  'cacheDecisions (a duration)';
export const AUTH_MODE_ALLOWED = `one of ${AUTH_MODES.join(', ')}`;
const PATH_ALLOWED = 'the path of an htpasswd file with bcrypt entries (htpasswd -B)';
const USER_ALLOWED = 'a user name: 1 to 256 characters, no ":" and no control characters';
const GROUP_NAME_ALLOWED = 'a group name: letters, digits, ".", "_" and "-", starting with a letter or digit, at most 128 characters';
const GROUPS_ALLOWED = `an object of group name to a list of user names, e.g. {developers: [alice, bob]}; ${GROUP_NAME_ALLOWED}`;
const REPOSITORY_PATTERN_ALLOWED = `${IMAGE_PATTERN_ALLOWED}; here without a tag part (access is per repository)`;
export const REPOSITORY_PATTERNS_ALLOWED = `a list of repository patterns, each ${REPOSITORY_PATTERN_ALLOWED}`;
export const AUTH_RULES_ALLOWED =
  `a list of objects with keys ${AUTH_RULE_KEYS.join(', ')}: repositories (patterns) and at least one of users or groups; ` +
  'upstreams optional (default: every upstream)';
const HOSTS_ALLOWED = 'a non-empty list of configured registry hosts, e.g. [docker.io, ghcr.io]';

const USER_NAME = /^[^:\u0000-\u001f\u007f]{1,256}$/;
const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isUnset(value: unknown): value is null | undefined {
  return value === undefined || value === null;
}

/** Runs `parse`, locating any FormatError under `path`. */
function at<T>(path: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw error instanceof FormatError ? error.within(path) : error;
  }
}

function rejectUnknownKeys(object: Json, known: readonly string[]): void {
  for (const key of Object.keys(object)) {
    if (!known.includes(key)) throw new FormatError('unknown key', `one of ${known.join(', ')}`, object[key], key, true);
  }
}

function list(value: unknown, allowed: string, max: number): unknown[] {
  if (!Array.isArray(value)) throw new FormatError('not a list', allowed, value);
  if (value.length > max) throw new FormatError(`more than ${max} entries`, allowed, value.length);
  return value;
}

function parseUserName(value: unknown): string {
  if (typeof value === 'string' && USER_NAME.test(value)) return value;
  throw new FormatError(typeof value === 'string' ? 'not a valid user name' : 'not a string', USER_ALLOWED, value);
}

function parseUsers(value: unknown): string[] {
  const allowed = `a list of user names (${USER_ALLOWED})`;
  return list(value, allowed, AUTH_LIMITS.members).map((item, i) => at(`[${i}]`, () => parseUserName(item)));
}

/** `auth.mode`; unset means none. */
export function parseAuthMode(value: unknown): AuthMode {
  if (isUnset(value)) return 'none';
  const mode = AUTH_MODES.find((candidate) => candidate === value);
  if (mode === undefined) throw new FormatError('not an auth mode', AUTH_MODE_ALLOWED, value);
  return mode;
}

/** `auth.htpasswd`: a path, or undefined when unset. */
export function parseHtpasswdPath(value: unknown): string | undefined {
  if (isUnset(value)) return undefined;
  if (typeof value === 'string' && value.trim() !== '') return value.trim();
  throw new FormatError(typeof value === 'string' ? 'must not be empty' : 'not a string', PATH_ALLOWED, value);
}

/** `auth.groups`: members by group name; unset means none. */
export function parseAuthGroups(value: unknown): Record<string, string[]> {
  if (isUnset(value)) return {};
  if (!isObject(value)) throw new FormatError('not an object', GROUPS_ALLOWED, value);
  const names = Object.keys(value);
  if (names.length > AUTH_LIMITS.groups) throw new FormatError(`more than ${AUTH_LIMITS.groups} groups`, GROUPS_ALLOWED, names.length);
  const groups: Record<string, string[]> = {};
  for (const name of names) {
    if (!GROUP_NAME.test(name)) throw new FormatError('not a valid group name', GROUP_NAME_ALLOWED, name, name);
    groups[name] = at(name, () => parseUsers(value[name]));
  }
  return groups;
}

/**
 * Repository patterns (`auth.anonymous`, a rule's `repositories`): each
 * valid and naming no tag; with `needsInclude`, at least one include.
 * Unset means none.
 */
export function parseRepositoryPatterns(value: unknown, { needsInclude = false } = {}): string[] {
  if (isUnset(value) && !needsInclude) return [];
  const items = list(value, REPOSITORY_PATTERNS_ALLOWED, AUTH_LIMITS.patterns);
  const patterns = items.map((item, i) =>
    at(`[${i}]`, (): ImagePattern => {
      let pattern: ImagePattern;
      try {
        pattern = parseImagePattern(item);
      } catch (error) {
        if (error instanceof ImagePatternError) throw new FormatError(error.reason, REPOSITORY_PATTERN_ALLOWED, item);
        throw error;
      }
      if (!coversEveryTag(pattern)) {
        throw new FormatError('names a tag, but access is granted per repository (a blob by digest has no tag)', REPOSITORY_PATTERN_ALLOWED, item);
      }
      return pattern;
    }),
  );
  if (needsInclude && !canEverInclude(patterns)) {
    const reason = patterns.length === 0 ? 'must not be empty' : 'only exclusions: grants nothing';
    throw new FormatError(reason, `at least one pattern without a leading "-"; ${REPOSITORY_PATTERN_ALLOWED}`, value);
  }
  return patterns.map((pattern) => pattern.source);
}

function parseHosts(value: unknown): string[] {
  const hosts = list(value, HOSTS_ALLOWED, AUTH_LIMITS.patterns);
  if (hosts.length === 0) throw new FormatError('must not be empty (leave upstreams out for every upstream)', HOSTS_ALLOWED, value);
  return hosts.map((host, i) => at(`[${i}]`, () => parseRegistryHost(host)));
}

function parseGroupReferences(value: unknown, groups: Record<string, string[]> | undefined): string[] {
  const defined = groups === undefined ? undefined : Object.keys(groups);
  const allowed =
    defined === undefined
      ? 'a list of group names'
      : defined.length === 0
        ? 'names of groups defined under auth.groups (none are)'
        : `names of groups defined under auth.groups: ${defined.join(', ')}`;
  return list(value, allowed, AUTH_LIMITS.groups).map((name, i) => {
    if (typeof name !== 'string') throw new FormatError('not a string', allowed, name, `[${i}]`);
    if (groups !== undefined && !Object.hasOwn(groups, name)) throw new FormatError('no such group', allowed, name, `[${i}]`);
    return name;
  });
}

function parseRule(value: unknown, groups: Record<string, string[]> | undefined): AuthRuleConfig {
  if (!isObject(value)) throw new FormatError('not an object', AUTH_RULES_ALLOWED, value);
  rejectUnknownKeys(value, AUTH_RULE_KEYS);
  if (isUnset(value.repositories)) throw new FormatError('required', REPOSITORY_PATTERNS_ALLOWED, undefined, 'repositories');
  const repositories = at('repositories', () => parseRepositoryPatterns(value.repositories, { needsInclude: true }));
  const users = isUnset(value.users) ? [] : at('users', () => parseUsers(value.users));
  const groupNames = isUnset(value.groups) ? [] : at('groups', () => parseGroupReferences(value.groups, groups));
  if (users.length === 0 && groupNames.length === 0) {
    throw new FormatError('grants nobody: names no users and no groups', `${AUTH_RULES_ALLOWED} (anyone: use auth.anonymous)`, value);
  }
  const upstreams = isUnset(value.upstreams) ? undefined : at('upstreams', () => parseHosts(value.upstreams));
  return { repositories, users, groups: groupNames, upstreams };
}

/**
 * `auth.rules`; unset means none. With `groups`, every group a rule names
 * must be defined there; without, only their shape is checked (the
 * convict format, which sees one key at a time).
 */
export function parseAuthRules(value: unknown, groups?: Record<string, string[]>): AuthRuleConfig[] {
  if (isUnset(value)) return [];
  return list(value, AUTH_RULES_ALLOWED, AUTH_LIMITS.rules).map((rule, i) => at(`[${i}]`, () => parseRule(rule, groups)));
}

function isSet(value: unknown): boolean {
  if (isUnset(value)) return false;
  if (Array.isArray(value)) return value.length > 0;
  if (isObject(value)) return Object.keys(value).length > 0;
  return true;
}

/**
 * Parses the whole `auth:` block (unset means mode none), as written or as
 * convict assembled it from {@link authSchemaSection} (defaults filled in).
 * Throws a {@link FormatError} at the first problem, its `path` relative to
 * `auth` (`rules[2].repositories[0]`).
 */
export function parseAuthConfig(value: unknown): AuthConfig {
  if (isUnset(value)) return defaultAuthConfig();
  if (!isObject(value)) throw new FormatError('not an object', AUTH_ALLOWED, value);
  rejectUnknownKeys(value, AUTH_KEYS);
  const mode = at('mode', () => parseAuthMode(value.mode));
  const cacheDecisionsMs = isUnset(value.cacheDecisions)
    ? DEFAULT_CACHE_DECISIONS_MS
    : at('cacheDecisions', () => parseDuration(value.cacheDecisions));

  if (mode !== 'basic') {
    for (const key of ['htpasswd', 'groups', 'rules', 'anonymous'] as const) {
      if (isSet(value[key])) {
        throw new FormatError(
          `set, but auth.mode is ${mode}: nothing would apply it`,
          `auth.mode: basic to check pulls against it, or leave ${key} out`,
          value[key],
          key,
        );
      }
    }
    return { ...defaultAuthConfig(), mode, cacheDecisionsMs };
  }

  const htpasswd = at('htpasswd', () => parseHtpasswdPath(value.htpasswd));
  if (htpasswd === undefined) throw new FormatError('required when auth.mode is basic', PATH_ALLOWED, value.htpasswd, 'htpasswd');
  const groups = at('groups', () => parseAuthGroups(value.groups));
  const anonymous = at('anonymous', () => parseRepositoryPatterns(value.anonymous));
  const rules = at('rules', () => parseAuthRules(value.rules, groups));
  return { mode, htpasswd, groups, anonymous, rules, cacheDecisionsMs };
}

/**
 * Rule upstreams that name no configured primary, as errors located at
 * `rules[i].upstreams[j]` (a typo would make a rule silently grant nothing).
 * `knownHosts` are the hosts the default upstream answers to (its host and
 * aliases) and every `registries` host.
 */
export function unknownRuleUpstreams(config: AuthConfig, knownHosts: Iterable<string>): FormatError[] {
  const known = new Set([...knownHosts].map((host) => host.toLowerCase()));
  const allowed = `a configured registry host: ${[...known].join(', ')}`;
  return config.rules.flatMap((rule, i) =>
    (rule.upstreams ?? []).flatMap((host, j) =>
      known.has(host) ? [] : [new FormatError('names no configured upstream', allowed, host, `rules[${i}].upstreams[${j}]`)],
    ),
  );
}

/** The message a user reads for a problem inside `auth` when no loader prefixes it: `auth.rules[0].users[1]: ...`. */
export function authProblemMessage(error: FormatError, key = 'auth'): string {
  return error.within(key).message;
}

// ---------------------------------------------------------------------------
// convict

/** A format in the shape of config/formats.ts `valueFormats` entries. */
interface AuthValueFormat<T> {
  readonly allowed: string;
  parse(value: unknown): T;
  coerce(text: string): unknown;
}

/** The block is config-file only; a string (never expected) is read as JSON, so the parser reports what it holds. */
function coerceJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Formats of the auth settings, keyed by convict format name. */
export const authValueFormats = {
  'auth-mode': { allowed: AUTH_MODE_ALLOWED, parse: parseAuthMode, coerce: (text: string) => text.trim() },
  'auth-repository-patterns': { allowed: REPOSITORY_PATTERNS_ALLOWED, parse: (value: unknown) => parseRepositoryPatterns(value), coerce: coerceJson },
  'auth-rules': { allowed: AUTH_RULES_ALLOWED, parse: (value: unknown) => parseAuthRules(value), coerce: coerceJson },
} as const satisfies Record<string, AuthValueFormat<unknown>>;

/** {@link authValueFormats} as convict registrations (`convict.addFormats(authConvictFormats)`). */
export const authConvictFormats: Readonly<Record<string, convict.Format>> = Object.fromEntries(
  Object.entries(authValueFormats).map(([name, format]: [string, AuthValueFormat<unknown>]) => [
    name,
    {
      name,
      validate(value: unknown): void {
        format.parse(value);
      },
      coerce(value: unknown): unknown {
        return typeof value === 'string' ? format.coerce(value) : value;
      },
    },
  ]),
);

/**
 * The `auth` section of the convict schema. `groups` uses convict's
 * built-in `Object` format so convict keeps it whole; {@link parseAuthConfig}
 * checks it. `htpasswd` and `cacheDecisions` use the `optional-string`
 * and `duration` formats of config/formats.ts. No env vars or flags: the
 * block lives in the config file.
 */
export function authSchemaSection() {
  return {
    mode: {
      doc: 'Access control: none (anonymous pulls), basic (htpasswd users and rules) or upstream (the primary checks each client\'s credentials).',
      format: 'auth-mode',
      default: 'none',
    },
    htpasswd: {
      doc: 'basic mode: htpasswd file of bcrypt entries (htpasswd -B), reloaded when it changes.',
      format: 'optional-string',
      default: null,
    },
    groups: {
      doc: 'basic mode: members by group name, e.g. {developers: [alice, bob]}.',
      format: 'Object',
      default: {},
    },
    anonymous: {
      doc: 'basic mode: repository patterns anyone may pull without credentials, e.g. ["library/*"].',
      format: 'auth-repository-patterns',
      default: [],
    },
    rules: {
      doc: 'basic mode: each rule grants pull on repository patterns to users and groups, optionally only on some upstreams; any matching rule grants.',
      format: 'auth-rules',
      default: [],
    },
    cacheDecisions: {
      doc: 'upstream mode: how long the primary\'s allow/deny for a credential and repository is reused; basic mode: how long a verified password is trusted without a new bcrypt check.',
      format: 'duration',
      default: '60s',
    },
  } as const;
}
