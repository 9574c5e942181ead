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
 * It is one setting of the schema, read whole by {@link parseAuthConfig}
 * because its keys depend on each other. Problems are {@link FormatError}s
 * located inside the block (`rules[2].repositories[0]`), which the loader
 * prefixes with `auth.`.
 *
 * Settings that would be silently ignored in the chosen mode are errors, not
 * warnings: `htpasswd` or `rules` with `mode: none` means someone believes
 * pulls are checked when they are not. Access is granted per repository (a
 * blob by digest has no tag), so patterns here may not name tags.
 */
import { fail, FormatError, isMapping, or, parseDuration, parseField, parseList, parseObject, parseRegistryHost } from '../config/formats.ts';
import { canEverInclude, coversEveryTag, IMAGE_PATTERN_ALLOWED, ImagePatternError, parseImagePattern } from '../registry/image-pattern.ts';
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

/** Bounds that keep every decision cheap (rules × patterns per request). */
const LIMITS = { rules: 1000, patterns: 1000, groups: 1000, members: 10_000 } as const;
const DEFAULT_CACHE_DECISIONS_MS = 60_000;

export function defaultAuthConfig(): AuthConfig {
  return { mode: 'none', htpasswd: undefined, groups: {}, anonymous: [], rules: [], cacheDecisionsMs: DEFAULT_CACHE_DECISIONS_MS };
}

export const AUTH_ALLOWED =
  'an object with keys mode, htpasswd, groups, anonymous, rules, cacheDecisions: mode none, basic or upstream; htpasswd (required with basic); ' +
  'groups {name: [users]}; anonymous [repository patterns]; rules [{repositories, users, groups, upstreams}]; cacheDecisions (a duration)';
const PATH_ALLOWED = 'the path of an htpasswd file with bcrypt entries (htpasswd -B)';
const USER_ALLOWED = 'a user name: 1 to 256 characters, no ":" and no control characters';
const GROUP_NAME_ALLOWED = 'a group name: letters, digits, ".", "_" and "-", starting with a letter or digit, at most 128 characters';
const GROUPS_ALLOWED = `an object of group name to a list of user names, e.g. {developers: [alice, bob]}; ${GROUP_NAME_ALLOWED}`;
const PATTERN_ALLOWED = `${IMAGE_PATTERN_ALLOWED}; here without a tag part (access is per repository)`;
const PATTERNS_ALLOWED = `a list of repository patterns, each ${PATTERN_ALLOWED}`;
const RULES_ALLOWED = 'a list of objects with keys repositories, users, groups, upstreams: repositories (patterns) and at least one of users or groups; upstreams optional (default: every upstream)';
const HOSTS_ALLOWED = 'a non-empty list of configured registry hosts, e.g. [docker.io, ghcr.io]';

const USER_NAME = /^[^:\u0000-\u001f\u007f]{1,256}$/;
const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

const userName = (value: unknown): string =>
  typeof value === 'string' && USER_NAME.test(value) ? value : fail(typeof value === 'string' ? 'not a valid user name' : 'not a string', USER_ALLOWED, value);
const users = (value: unknown): string[] => parseList(value, `a list of user names (${USER_ALLOWED})`, LIMITS.members, userName);

/** `groups`: members by group name. */
function parseGroups(value: unknown): Record<string, string[]> {
  if (value === undefined || value === null) return {};
  const groups = isMapping(value) ? value : fail('not an object', GROUPS_ALLOWED, value);
  const names = Object.keys(groups);
  if (names.length > LIMITS.groups) fail(`more than ${LIMITS.groups} groups`, GROUPS_ALLOWED, names.length);
  return Object.fromEntries(
    names.map((name) => {
      if (!GROUP_NAME.test(name)) throw new FormatError('not a valid group name', GROUP_NAME_ALLOWED, name, name);
      return [name, parseField(name, () => users(groups[name]))];
    }),
  );
}

/**
 * Repository patterns (`anonymous`, a rule's `repositories`, a retention
 * rule's): each valid and naming no tag; with `needsInclude`, at least one
 * include. Unset means none.
 */
export function parseRepositoryPatterns(value: unknown, { needsInclude = false } = {}): string[] {
  if ((value === undefined || value === null) && !needsInclude) return [];
  const patterns = parseList(value, PATTERNS_ALLOWED, LIMITS.patterns, (item) => {
    try {
      const pattern = parseImagePattern(item);
      return coversEveryTag(pattern) ? pattern : fail('names a tag, but access is granted per repository (a blob by digest has no tag)', PATTERN_ALLOWED, item);
    } catch (error) {
      throw error instanceof ImagePatternError ? new FormatError(error.reason, PATTERN_ALLOWED, item) : error;
    }
  });
  if (needsInclude && !canEverInclude(patterns)) {
    fail(patterns.length === 0 ? 'must not be empty' : 'only exclusions: grants nothing', `at least one pattern without a leading "-"; ${PATTERN_ALLOWED}`, value);
  }
  return patterns.map((pattern) => pattern.source);
}

function parseRule(raw: unknown, groups: Record<string, string[]>): AuthRuleConfig {
  const defined = Object.keys(groups);
  const groupsAllowed = `names of groups defined under auth.groups${defined.length === 0 ? ' (none are)' : `: ${defined.join(', ')}`}`;
  const groupName = (name: unknown): string =>
    typeof name !== 'string' ? fail('not a string', groupsAllowed, name) : Object.hasOwn(groups, name) ? name : fail('no such group', groupsAllowed, name);
  const rule = parseObject(
    raw,
    {
      repositories: (value: unknown) => parseRepositoryPatterns(value, { needsInclude: true }),
      users: or([], users),
      groups: or([], (value) => parseList(value, groupsAllowed, LIMITS.groups, groupName)),
      upstreams: or(undefined, (value) => {
        const hosts = parseList(value, HOSTS_ALLOWED, LIMITS.patterns, parseRegistryHost);
        return hosts.length > 0 ? hosts : fail('must not be empty (leave upstreams out for every upstream)', HOSTS_ALLOWED, value);
      }),
    },
    RULES_ALLOWED,
    ['repositories'],
  );
  if (rule.users.length === 0 && rule.groups.length === 0) fail('grants nobody: names no users and no groups', `${RULES_ALLOWED} (anyone: use auth.anonymous)`, raw);
  return rule;
}

const isSet = (value: unknown): boolean => value !== undefined && value !== null && (typeof value !== 'object' || Object.keys(value).length > 0);

/**
 * Parses the whole `auth:` block as written (unset means mode none).
 * Throws a {@link FormatError} at the first problem, its `path` relative to
 * `auth` (`rules[2].repositories[0]`).
 */
export function parseAuthConfig(value: unknown): AuthConfig {
  if (value === undefined || value === null) return defaultAuthConfig();
  const keep = (field: unknown): unknown => field;
  const block = parseObject(
    value,
    {
      mode: or('none', (mode) => AUTH_MODES.find((candidate) => candidate === mode) ?? fail('not an auth mode', `one of ${AUTH_MODES.join(', ')}`, mode)),
      htpasswd: or(undefined, (path) => (typeof path === 'string' && path.trim() !== '' ? path.trim() : fail(typeof path === 'string' ? 'must not be empty' : 'not a string', PATH_ALLOWED, path))),
      groups: keep,
      anonymous: keep,
      rules: keep,
      cacheDecisions: or(undefined, parseDuration),
    },
    AUTH_ALLOWED,
  );
  const { mode, htpasswd, cacheDecisions } = block;
  const cacheDecisionsMs = cacheDecisions ?? DEFAULT_CACHE_DECISIONS_MS;
  if (mode !== 'basic') {
    const ignored = (['htpasswd', 'groups', 'rules', 'anonymous'] as const).find((key) => isSet(block[key]));
    if (ignored !== undefined) {
      throw new FormatError(`set, but auth.mode is ${mode}: nothing would apply it`, `auth.mode: basic to check pulls against it, or leave ${ignored} out`, block[ignored], ignored);
    }
    if (mode === 'none' && cacheDecisions !== undefined) {
      const allowed = "auth.mode: upstream (how long the primary's answer is reused) or basic (how long a verified password is trusted without bcrypt), or leave cacheDecisions out";
      throw new FormatError('set, but auth.mode is none: no decision is made, so none is cached', allowed, (value as Record<string, unknown>)['cacheDecisions'], 'cacheDecisions');
    }
    return { ...defaultAuthConfig(), mode, cacheDecisionsMs };
  }
  if (htpasswd === undefined) throw new FormatError('required when auth.mode is basic', PATH_ALLOWED, undefined, 'htpasswd');
  const groups = parseField('groups', () => parseGroups(block.groups));
  return {
    mode,
    htpasswd,
    groups,
    anonymous: parseField('anonymous', () => parseRepositoryPatterns(block.anonymous)),
    rules: parseField('rules', () => parseList(block.rules ?? [], RULES_ALLOWED, LIMITS.rules, (rule) => parseRule(rule, groups))),
    cacheDecisionsMs,
  };
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
    (rule.upstreams ?? []).flatMap((host, j) => (known.has(host) ? [] : [new FormatError('names no configured upstream', allowed, host, `rules[${i}].upstreams[${j}]`)])),
  );
}
