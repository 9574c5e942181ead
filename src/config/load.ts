/**
 * Loading and validating the configuration.
 *
 * Sources, later wins: built-in defaults, the config file (`--config FILE`
 * or `OUTPOST_CONFIG`; JSON, or YAML by extension), environment variables,
 * command-line flags. Nothing is read implicitly: the caller passes the
 * environment and argv (main.ts passes `process.env` and `process.argv`).
 *
 * Every problem found (unknown key, bad value, inconsistent pair) is collected
 * and reported at once in a {@link ConfigError} naming the key, the value
 * (secrets redacted), where it came from and what is allowed.
 */
import fs from 'node:fs';
import path from 'node:path';
import convict from 'convict';
import { parse as parseYaml } from 'yaml';
import { authConvictFormats, authValueFormats, parseAuthConfig, unknownRuleUpstreams, type AuthConfig } from '../auth/config.ts';
import { HtpasswdError, parseHtpasswd } from '../auth/htpasswd.ts';
import { dockerHubAliases, isDockerHubHost } from '../registry/reference.ts';
import { type FormatName, FormatError, type ValueFormat, convictFormats, describeValue, isFormatName, valueFormats } from './formats.ts';
import { type PrefetchJobEntry, prefetchValueFormats } from './prefetch.ts';
import { REDACTED, redactUrlCredentials, redactValue } from './redact.ts';
import {
  type MachineFacts,
  type SchemaSection,
  type Setting,
  type SettingFormat,
  configSchema,
  currentMachine,
  isSetting,
  listSettings,
} from './schema.ts';
import type { Config, DefaultUpstreamConfig, PrimaryNames, RegistryConfig, UpstreamConfig } from './types.ts';
import { readTlsPair } from './tls-pair.ts';

/** One thing wrong with the configuration. */
export interface ConfigProblem {
  /** Dotted key (`cache.maxBytes`, `registries[0].url`); undefined for file-level problems. */
  readonly key: string | undefined;
  /** What is wrong. */
  readonly reason: string;
  /** What would be accepted, when known. */
  readonly allowed: string | undefined;
  /** Where the value came from: `flag --port`, `env OUTPOST_PORT`, `config file <path>`, `default`. */
  readonly source: string | undefined;
  /** The offending value with secrets redacted; absent when not shown (e.g. for unknown keys). */
  readonly value?: unknown;
}

/**
 * The configuration cannot be used; the message lists every problem. `key`,
 * `value` and `allowed` describe the first one (`value` is redacted when the
 * key holds a secret).
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'CONFIG_INVALID';
  readonly problems: readonly ConfigProblem[];
  readonly key: string | undefined;
  readonly value: unknown;
  readonly allowed: string | undefined;

  constructor(problems: readonly ConfigProblem[]) {
    const lines = problems.map(describeProblem);
    super(
      lines.length === 1
        ? `Invalid configuration: ${lines[0]}`
        : `Invalid configuration (${lines.length} problems):\n${lines.map((line) => `  - ${line}`).join('\n')}`,
    );
    this.problems = problems;
    const first = problems[0];
    this.key = first?.key;
    this.value = first?.value;
    this.allowed = first?.allowed;
  }
}

function describeProblem(problem: ConfigProblem): string {
  const value = Object.hasOwn(problem, 'value') ? `, got ${describeValue(problem.value)}` : '';
  const source = problem.source === undefined ? '' : ` (from ${problem.source})`;
  const allowed = problem.allowed === undefined ? '' : `; allowed: ${problem.allowed}`;
  return `${problem.key === undefined ? '' : `${problem.key}: `}${problem.reason}${value}${source}${allowed}`;
}

export interface LoadConfigOptions {
  /**
   * Command-line arguments (without `node` and the script), e.g. `['serve', '--port', '5001']`.
   * Every option must be `--config` or a setting's flag; anything else is a ConfigError.
   */
  argv?: readonly string[];
  /** What to do with arguments that are not options: leave them to the caller (default) or reject them. */
  positionals?: 'ignore' | 'reject';
  /** Environment variables; nothing is read from `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Config file path; takes precedence over `--config` and `OUTPOST_CONFIG`. */
  file?: string;
  /** Host name and CPU count the defaults derive from; the real machine's by default. */
  machine?: MachineFacts;
}

/** Loads, validates and returns the configuration, or throws {@link ConfigError}. */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env: Record<string, string | undefined> = { ...options.env };
  const machine = options.machine ?? currentMachine();
  const schema = configSchema(machine);
  const settings = listSettings(schema);
  const settingsByKey = new Map(settings.map(({ key, setting }) => [key, setting]));

  const flags = parseFlags(options.argv ?? [], settings, options.positionals ?? 'ignore');
  const file = options.file ?? flags.configFile ?? (env['OUTPOST_CONFIG'] || undefined);
  const fromFile = file === undefined ? undefined : readFileSettings(file, schema);

  const sourceOf = (key: string): string => {
    const flag = flags.values.get(key);
    if (flag !== undefined) return `flag --${flag.flag}`;
    const envName = settingsByKey.get(key)?.env;
    if (envName !== undefined && env[envName] !== undefined) return `env ${envName}`;
    if (fromFile?.present.has(key)) return `config file ${file}`;
    return 'default';
  };

  // convict keeps its formats in a process-wide registry; registering is idempotent.
  convict.addFormats(convictFormats);
  convict.addFormats(authConvictFormats);
  convict.addFormats(
    Object.fromEntries(
      Object.entries(prefetchValueFormats).map(([name, format]: [string, ValueFormat<unknown>]) => [
        name,
        { name, validate: (value: unknown) => void format.parse(value), coerce: (value: unknown) => (typeof value === 'string' ? format.coerce(value) : value) },
      ]),
    ),
  );
  const store = convict(schema as convict.Schema<Record<string, unknown>>, { env, args: [] });
  if (fromFile !== undefined) store.load(fromFile.values);
  for (const [key, { value }] of flags.values) store.set(key, value);

  const problems: ConfigProblem[] = [];
  for (const { key, setting } of settings) {
    try {
      formatOf(setting.format).parse(store.get(key));
    } catch (error) {
      if (!(error instanceof FormatError)) throw error;
      problems.push(formatProblem(key, setting, error, sourceOf(key)));
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  // The auth block across its keys (mode-dependent keys, groups, rule groups defined): see auth/config.ts.
  let auth: AuthConfig;
  try {
    auth = parseAuthConfig(store.get('auth'));
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
    const first = /^[A-Za-z]+/.exec(error.path)?.[0];
    throw new ConfigError([formatProblem('auth', undefined, error, sourceOf(first === undefined ? 'auth' : `auth.${first}`))]);
  }

  try {
    // Backstop: everything convict checks has been checked above, with better messages.
    store.validate({ allowed: 'strict', output: () => undefined });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new ConfigError([
      { key: undefined, reason: redactUrlCredentials(message), allowed: undefined, source: undefined },
    ]);
  }

  const read: Reader = (key, format) => {
    if (settingsByKey.get(key)?.format !== format) throw new Error(`internal: ${key} is not a ${format} setting`);
    return (valueFormats[format].parse as (value: unknown) => Parsed<typeof format>)(store.get(key));
  };
  const config = buildConfig(read, (key) => store.get(key), machine, auth);

  const inconsistencies = checkConsistency(config, (key) => ({ value: store.get(key), source: sourceOf(key) }));
  if (inconsistencies.length > 0) throw new ConfigError(inconsistencies);
  return config;
}

// ---------------------------------------------------------------------------
// From validated settings to the Config modules receive

type Parsed<F extends FormatName> = ReturnType<(typeof valueFormats)[F]['parse']>;
/** The parsed value of a validated setting; `format` must be the setting's own. */
type Reader = <F extends FormatName>(key: string, format: F) => Parsed<F>;

function buildConfig(read: Reader, raw: (key: string) => unknown, machine: MachineFacts, auth: AuthConfig): Config {
  const upstream: UpstreamConfig = {
    url: read('upstream.url', 'url'),
    username: read('upstream.username', 'optional-string'),
    password: read('upstream.password', 'optional-string'),
    caFile: read('upstream.caFile', 'optional-string'),
    insecure: read('upstream.insecure', 'strict-boolean'),
    connectTimeoutMs: read('upstream.connectTimeout', 'positive-duration'),
    headersTimeoutMs: read('upstream.headersTimeout', 'positive-duration'),
    bodyIdleTimeoutMs: read('upstream.bodyIdleTimeout', 'positive-duration'),
    retries: read('upstream.retries', 'non-negative-int'),
    connections: read('upstream.connections', 'positive-int'),
  };
  const defaultUpstream: DefaultUpstreamConfig = {
    ...upstream,
    ...primaryNames(
      upstream.url,
      read('upstream.host', 'optional-registry-host'),
      read('upstream.aliases', 'registry-host-list'),
      read('upstream.dockerHub', 'optional-boolean'),
    ),
  };
  const registries: RegistryConfig[] = read('registries', 'registries').map((entry) => ({
    ...primaryNames(entry.url, entry.host, entry.aliases, entry.dockerHub),
    url: entry.url,
    // Credentials, CA and TLS verification belong to one primary: never inherited.
    username: entry.username,
    password: entry.password,
    caFile: entry.caFile,
    insecure: entry.insecure ?? false,
    connectTimeoutMs: entry.connectTimeoutMs ?? upstream.connectTimeoutMs,
    headersTimeoutMs: entry.headersTimeoutMs ?? upstream.headersTimeoutMs,
    bodyIdleTimeoutMs: entry.bodyIdleTimeoutMs ?? upstream.bodyIdleTimeoutMs,
    retries: entry.retries ?? upstream.retries,
    connections: entry.connections ?? upstream.connections,
  }));
  const server: Config['server'] = {
    host: read('server.host', 'non-empty-string'),
    port: read('server.port', 'port-number'),
    tlsCert: read('server.tlsCert', 'optional-string'),
    tlsKey: read('server.tlsKey', 'optional-string'),
    headersTimeoutMs: read('server.headersTimeout', 'positive-duration'),
    bodyTimeoutMs: read('server.bodyTimeout', 'positive-duration'),
    sendTimeoutMs: read('server.sendTimeout', 'positive-duration'),
    maxConnectionsPerWorker: read('server.maxConnectionsPerWorker', 'positive-int'),
  };

  return {
    server,
    upstream: defaultUpstream,
    registries,
    upstreamProtection: {
      failureThreshold: read('upstreamProtection.failureThreshold', 'positive-int'),
      cooldownMs: read('upstreamProtection.cooldown', 'positive-duration'),
      maxConcurrent: read('upstreamProtection.maxConcurrent', 'non-negative-int'),
      maxQueued: read('upstreamProtection.maxQueued', 'non-negative-int'),
      queueTimeoutMs: read('upstreamProtection.queueTimeout', 'positive-duration'),
      notFoundTtlMs: read('upstreamProtection.notFoundTtl', 'duration'),
    },
    cache: {
      dir: read('cache.dir', 'non-empty-string'),
      maxBytes: read('cache.maxBytes', 'bytes'),
      highWatermark: read('cache.highWatermark', 'fraction'),
      lowWatermark: read('cache.lowWatermark', 'fraction'),
      retentionMs: read('cache.retention', 'duration'),
      scrubRate: read('cache.scrubRate', 'bytes'),
      pins: read('cache.pins', 'string-list'),
      retentionSchedule: prefetchValueFormats['optional-cron'].parse(raw('cache.retentionSchedule')),
      retentionRules: prefetchValueFormats['retention-rules'].parse(raw('cache.retentionRules')),
    },
    manifests: { maxBytes: read('manifests.maxBytes', 'bytes') },
    tags: {
      ttlMs: read('tags.ttl', 'duration'),
      revalidateTimeoutMs: read('tags.revalidateTimeout', 'positive-duration'),
    },
    workers: read('workers', 'positive-int'),
    node: {
      id: read('node.id', 'node-id'),
      advertiseUrl: read('node.advertiseUrl', 'optional-url') ?? defaultAdvertiseUrl(server, machine.hostname),
    },
    cluster: {
      name: read('cluster.name', 'cluster-name'),
      peerSecret: read('cluster.peerSecret', 'optional-string'),
    },
    etcd: { endpoints: read('etcd.endpoints', 'url-list'), leaseTtlMs: read('etcd.leaseTtl', 'positive-duration') },
    redis: { url: read('redis.url', 'redis-url') },
    admin: { token: read('admin.token', 'optional-string') },
    drainSeconds: read('drainSeconds', 'duration') / 1000,
    shutdownTimeoutMs: read('shutdownTimeout', 'positive-duration'),
    log: { level: read('log.level', 'log-level') },
    auth,
    prefetch: resolvePrefetchUpstreams(prefetchValueFormats['prefetch-jobs'].parse(raw('prefetch')), defaultUpstream, registries),
  };
}

/** Jobs with their upstream normalised to the host of the primary it names (an unknown one is kept, and reported). */
function resolvePrefetchUpstreams(jobs: PrefetchJobEntry[], defaultPrimary: PrimaryNames, registries: readonly PrimaryNames[]) {
  return jobs.map((job) => {
    const primary = job.upstream === undefined ? defaultPrimary : [defaultPrimary, ...registries].find((p) => p.host === job.upstream || p.aliases.includes(job.upstream!));
    return { ...job, upstream: primary?.host ?? job.upstream! };
  });
}

/**
 * The names a primary answers to. Its host is the one declared, else its
 * url's; a primary whose url or host is Docker Hub also answers to Docker
 * Hub's other names. `dockerHub` (the `library/` convention) is true, unless
 * declared, when any of its names is a Docker Hub name.
 */
function primaryNames(url: string, host: string | undefined, aliases: readonly string[], dockerHub: boolean | undefined): PrimaryNames {
  const urlHost = new URL(url).host.toLowerCase();
  const own = host ?? urlHost;
  const implied = [...dockerHubAliases(urlHost), ...dockerHubAliases(own), ...(host !== undefined && host !== urlHost && isDockerHubHost(urlHost) ? [urlHost] : [])];
  const names = [...new Set([...aliases, ...implied])].filter((name) => name !== own);
  return { host: own, aliases: names, dockerHub: dockerHub ?? [own, urlHost, ...names].some(isDockerHubHost) };
}

// ---------------------------------------------------------------------------
// Problems

function lastSegment(key: string): string {
  return key.split(/[.[\]]+/).filter((part) => part !== '').pop() ?? key;
}

/** The value as it may be shown for `key`: secrets replaced, URL credentials stripped. */
function shownValue(key: string, setting: Setting | undefined, value: unknown): unknown {
  if (setting?.sensitive === true) return value === undefined || value === null || value === '' ? value : REDACTED;
  return redactValue(value, lastSegment(key));
}

/** The format a setting's values are checked with; `Object` (auth.groups) only has to be a mapping here. */
function formatOf(name: SettingFormat): ValueFormat<unknown> {
  if (name === 'Object') return objectFormat;
  if (Object.hasOwn(prefetchValueFormats, name)) return prefetchValueFormats[name as keyof typeof prefetchValueFormats];
  return isFormatName(name) ? valueFormats[name] : authValueFormats[name as keyof typeof authValueFormats];
}

const objectFormat: ValueFormat<Record<string, unknown>> = {
  allowed: 'a mapping',
  parse(value) {
    if (!isPlainObject(value)) throw new FormatError('not a mapping', 'a mapping', value);
    return value;
  },
  coerce: (text) => text,
};

function formatProblem(key: string, setting: Setting | undefined, error: FormatError, source: string): ConfigProblem {
  const fullKey = error.path === '' ? key : error.path.startsWith('[') ? `${key}${error.path}` : `${key}.${error.path}`;
  const problem = { key: fullKey, reason: error.reason, allowed: error.allowed, source };
  return error.valueHidden ? problem : { ...problem, value: shownValue(fullKey, setting, error.value) };
}

// ---------------------------------------------------------------------------
// Cross-field checks, on the parsed configuration

/** Where a setting's value came from, as the user wrote it. */
type Origin = (key: string) => { value: unknown; source: string };

function checkConsistency(config: Config, origin: Origin): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  /** A problem with the value `key` holds; `settingKey` is where it was set (for `registries[0].caFile`: `registries`). */
  const badValue = (key: string, reason: string, allowed: string, value: unknown, settingKey = key): void => {
    const { source } = origin(settingKey);
    problems.push({ key, reason, allowed, source, value: redactValue(value, lastSegment(key)) });
  };

  const { tlsCert, tlsKey } = config.server;
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    const [missing, present] =
      tlsCert === undefined ? ['server.tlsCert', 'server.tlsKey'] : ['server.tlsKey', 'server.tlsCert'];
    problems.push({
      key: missing,
      reason: `must be set because ${present} is set (from ${origin(present).source})`,
      allowed: 'both server.tlsCert and server.tlsKey (HTTPS), or neither (HTTP)',
      source: undefined,
    });
  }
  if (config.server.bodyTimeoutMs < config.server.headersTimeoutMs) {
    badValue(
      'server.bodyTimeout',
      `must not be below server.headersTimeout (${String(origin('server.headersTimeout').value)})`,
      'a duration at least server.headersTimeout: the body timeout covers the headers too',
      origin('server.bodyTimeout').value,
    );
  }
  if (config.cache.lowWatermark >= config.cache.highWatermark) {
    badValue(
      'cache.lowWatermark',
      `must be below cache.highWatermark (${config.cache.highWatermark})`,
      'a fraction smaller than cache.highWatermark',
      origin('cache.lowWatermark').value,
    );
  }
  for (const [key, bytes] of [
    ['cache.maxBytes', config.cache.maxBytes],
    ['manifests.maxBytes', config.manifests.maxBytes],
  ] as const) {
    if (bytes === 0) badValue(key, 'must be greater than 0', 'a byte size greater than 0, e.g. 10GiB', origin(key).value);
  }

  const { leaseTtlMs } = config.etcd;
  if (leaseTtlMs % 1000 !== 0 || leaseTtlMs > maxLeaseTtlMs) {
    badValue('etcd.leaseTtl', 'must be a whole number of seconds, at most 10m', 'a duration in whole seconds from 1s to 10m, e.g. 5s', origin('etcd.leaseTtl').value);
  }
  if (config.etcd.endpoints.length > 0) {
    const secret = config.cluster.peerSecret;
    if (secret === undefined) {
      problems.push({
        key: 'cluster.peerSecret',
        reason: `must be set because etcd.endpoints is set (from ${origin('etcd.endpoints').source}): replicas sign their membership records with it`,
        allowed: `the same secret of at least ${minPeerSecretLength} characters on every replica (OUTPOST_PEER_SECRET), e.g. from openssl rand -hex 32`,
        source: undefined,
      });
    } else if (secret.length < minPeerSecretLength) {
      problems.push({
        key: 'cluster.peerSecret',
        reason: `is too short (${secret.length} characters)`,
        allowed: `at least ${minPeerSecretLength} characters, e.g. from openssl rand -hex 32`,
        source: origin('cluster.peerSecret').source,
        value: REDACTED,
      });
    }
  }

  problems.push(...duplicateNames(config, origin));
  const primaries = [config.upstream, ...config.registries];
  config.prefetch.forEach((job, index) => {
    if (primaries.some((primary) => primary.host === job.upstream)) return;
    problems.push({
      key: `prefetch[${index}].upstream`,
      reason: `names no configured primary (job "${job.name}")`,
      allowed: `the host or an alias of a configured primary: ${primaries.flatMap((p) => [p.host, ...p.aliases]).join(', ')}; leave it out for the default primary`,
      source: origin('prefetch').source,
      value: job.upstream,
    });
  });
  const knownHosts = [config.upstream, ...config.registries].flatMap((primary) => [primary.host, ...primary.aliases]);
  for (const error of unknownRuleUpstreams(config.auth, knownHosts)) {
    problems.push({ key: `auth.${error.path}`, reason: error.reason, allowed: error.allowed, source: origin('auth.rules').source, value: error.value });
  }
  // parseAuthConfig sees the default too; only the loader knows whether the file set it.
  if (config.auth.mode === 'none' && origin('auth.cacheDecisions').source !== 'default') {
    badValue(
      'auth.cacheDecisions',
      'set, but auth.mode is none: no decision is made, so none is cached',
      'auth.mode: upstream (how long the primary\'s answer is reused) or basic (how long a verified password is trusted without bcrypt), or leave cacheDecisions out',
      origin('auth.cacheDecisions').value,
    );
  }
  const htpasswd = config.auth.htpasswd;
  if (htpasswd !== undefined && unreadableReason(htpasswd) === undefined) {
    const reason = htpasswdProblem(htpasswd);
    if (reason !== undefined) badValue('auth.htpasswd', reason, 'an htpasswd file of bcrypt entries (htpasswd -B), one user:hash a line', htpasswd);
  }

  const files: Array<[key: string, file: string | undefined, settingKey: string]> = [
    ['auth.htpasswd', htpasswd, 'auth.htpasswd'],
    ['server.tlsCert', tlsCert, 'server.tlsCert'],
    ['server.tlsKey', tlsKey, 'server.tlsKey'],
    ['upstream.caFile', config.upstream.caFile, 'upstream.caFile'],
    ...config.registries.map(
      (registry, index): [string, string | undefined, string] => [`registries[${index}].caFile`, registry.caFile, 'registries'],
    ),
  ];
  for (const [key, file, settingKey] of files) {
    if (file === undefined) continue;
    const unreadable = unreadableReason(file);
    if (unreadable !== undefined) badValue(key, unreadable, 'a readable file', file, settingKey);
  }
  if (tlsCert !== undefined && tlsKey !== undefined && unreadableReason(tlsCert) === undefined && unreadableReason(tlsKey) === undefined) {
    const read = readTlsPair(tlsCert, tlsKey);
    if (!read.ok) {
      badValue(read.problem.key, read.problem.reason, 'a PEM certificate chain (tlsCert) and its unencrypted PEM private key (tlsKey)', read.problem.file);
    }
  }
  return problems;
}

/**
 * Each registry host names one primary: a `registries` entry that repeats the
 * default primary's host or an alias (or another entry's) would be a second
 * cache of the same registry, chosen by whichever name a client used.
 */
function duplicateNames(config: Config, origin: Origin): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  /** Each name → which setting gave it to which primary. */
  const owners = new Map<string, string>();
  const explicitAliases = new Set(valueFormats['registry-host-list'].parse(origin('upstream.aliases').value));
  const hostSet = origin('upstream.host').source !== 'default';
  for (const name of [config.upstream.host, ...config.upstream.aliases]) {
    const why =
      name === config.upstream.host
        ? hostSet ? 'upstream.host' : 'upstream.url'
        : explicitAliases.has(name) ? 'upstream.aliases' : 'implied by a Docker Hub upstream.url';
    owners.set(name, `the default primary (${why})`);
  }
  config.registries.forEach((registry, index) => {
    const names = [registry.host, ...registry.aliases];
    const taken = names.find((name) => owners.has(name));
    if (taken === undefined) {
      for (const name of names) owners.set(name, `registries[${index}]`);
      return;
    }
    problems.push({
      key: taken === registry.host ? `registries[${index}].host` : `registries[${index}].aliases`,
      reason: `${taken} is already a name of ${owners.get(taken)}; a second primary for it would be a second cache of the same images`,
      allowed: 'a host no other primary answers to; to mirror it from this url, make it the default primary (upstream.url with upstream.aliases) or change the other entry',
      source: origin('registries').source,
      value: taken,
    });
  });
  return problems;
}

/** What is wrong with an htpasswd file's content (line numbers, never a hash or a user), or undefined. */
function htpasswdProblem(file: string): string | undefined {
  try {
    const text = fs.readFileSync(file, 'utf8');
    if (Buffer.byteLength(text) > HTPASSWD_MAX_BYTES) return `larger than ${HTPASSWD_MAX_BYTES} bytes`;
    parseHtpasswd(text, { maxBytes: HTPASSWD_MAX_BYTES, maxUsers: HTPASSWD_MAX_USERS });
    return undefined;
  } catch (error) {
    if (error instanceof HtpasswdError) return error.message;
    return `cannot read the file (${(error as NodeJS.ErrnoException).code ?? 'error'})`;
  }
}

const HTPASSWD_MAX_BYTES = 1024 * 1024;
const HTPASSWD_MAX_USERS = 10_000;

function unreadableReason(file: string): string | undefined {
  try {
    if (!fs.statSync(file).isFile()) return 'is not a file';
    fs.accessSync(file, fs.constants.R_OK);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'file does not exist' : `cannot read the file (${code ?? 'error'})`;
  }
}

const minPeerSecretLength = 16;
const maxLeaseTtlMs = 600_000;

const WILDCARD_HOSTS: ReadonlySet<string> = new Set(['0.0.0.0', '::', '[::]', '*']);

/** `http(s)://<host>:<port>`, with the machine's host name when listening on every address. */
function defaultAdvertiseUrl(server: Config['server'], hostname: string): string {
  const host = WILDCARD_HOSTS.has(server.host) ? hostname : server.host;
  const shownHost = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const scheme = server.tlsCert !== undefined ? 'https' : 'http';
  return `${scheme}://${shownHost}:${server.port}`;
}

// ---------------------------------------------------------------------------
// Command-line flags

interface ParsedFlags {
  configFile: string | undefined;
  /** Setting key → the flag that set it and its value (last occurrence wins). */
  values: Map<string, { flag: string; value: string }>;
}

const normalized = (name: string): string => name.toLowerCase().replace(/[^a-z0-9]/g, '');

/**
 * Why a flag is unknown and what to use instead: the flag it resembles
 * (`--upstream_url` → `--upstream-url`), or the environment variable and
 * config key of a setting that has no flag (`--tag-ttl` → OUTPOST_TAG_TTL).
 */
function unknownFlag(token: string, flag: string, keyByFlag: ReadonlyMap<string, string>, settings: ReadonlyArray<{ key: string; setting: Setting }>): ConfigProblem {
  const flags = ['config', ...keyByFlag.keys()].map((f) => `--${f}`).join(', ');
  const wanted = normalized(flag);
  const similar = ['config', ...keyByFlag.keys()].find((f) => normalized(f) === wanted);
  const setting = settings.find(
    ({ key, setting }) => normalized(key) === wanted || (setting.env !== undefined && normalized(setting.env.replace(/^OUTPOST_/, '')) === wanted),
  );
  let hint = '';
  if (similar !== undefined) hint = ` (did you mean --${similar}?)`;
  else if (setting !== undefined) {
    const how = setting.setting.env === undefined ? `set ${setting.key} in the config file` : `set ${setting.setting.env} or ${setting.key} in the config file`;
    hint = ` (${setting.key} has no command-line flag: ${how}${setting.setting.sensitive === true ? '; it is a secret, keep it off the command line' : ''})`;
  }
  return { key: undefined, reason: `unknown option ${token.split('=')[0]}${hint}`, allowed: `${flags} (every setting can be set with its environment variable or in the config file)`, source: undefined };
}

/**
 * Picks `--config` and the flags the schema declares (`--port 5001` or
 * `--port=5001`) out of argv. Any other option (`--tag-ttl`, `-p`) stops
 * the command with a message naming it and what to use instead: a
 * misspelt flag must never be ignored. Positional arguments (command words)
 * are left to the caller, or rejected with `positionals: 'reject'`; `--`
 * ends option parsing.
 */
function parseFlags(
  argv: readonly string[],
  settings: ReadonlyArray<{ key: string; setting: Setting }>,
  positionals: 'ignore' | 'reject',
): ParsedFlags {
  const keyByFlag = new Map<string, string>();
  for (const { key, setting } of settings) if (setting.arg !== undefined) keyByFlag.set(setting.arg, key);
  const result: ParsedFlags = { configFile: undefined, values: new Map() };
  const problems: ConfigProblem[] = [];

  for (let index = 0; index < argv.length; index++) {
    const token = argv[index] ?? '';
    if (token === '--') break;
    if (!token.startsWith('-') || token === '-') {
      if (positionals === 'reject') {
        problems.push({ key: undefined, reason: `unexpected argument "${token}"`, allowed: 'options only, e.g. --config FILE', source: undefined });
      }
      continue;
    }
    const equals = token.indexOf('=');
    const flag = token.startsWith('--') ? token.slice(2, equals === -1 ? undefined : equals) : '';
    const key = keyByFlag.get(flag);
    if (flag !== 'config' && key === undefined) {
      problems.push(unknownFlag(token, flag === '' ? token.replace(/^-+/, '').split('=')[0]! : flag, keyByFlag, settings));
      // Skip its value too, so it is not reported as a stray argument.
      if (equals === -1 && argv[index + 1] !== undefined && !argv[index + 1]!.startsWith('-')) index++;
      continue;
    }
    let value: string | undefined;
    if (equals !== -1) {
      value = token.slice(equals + 1);
    } else {
      const next = argv[index + 1];
      if (next !== undefined && !next.startsWith('--')) {
        value = next;
        index++;
      }
    }
    if (value === undefined) {
      problems.push({
        key,
        reason: `flag --${flag} needs a value`,
        allowed: `--${flag} VALUE or --${flag}=VALUE`,
        source: `flag --${flag}`,
      });
    } else if (key === undefined) {
      result.configFile = value;
    } else {
      result.values.set(key, { flag, value });
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return result;
}

// ---------------------------------------------------------------------------
// The config file

interface FileSettings {
  /** The file's settings, with empty sections dropped. */
  values: Record<string, unknown>;
  /** Keys of the settings the file sets. */
  present: Set<string>;
}

const FILE_ALLOWED = 'a .json, .yaml or .yml file holding a mapping of settings';

function readFileSettings(file: string, schema: SchemaSection): FileSettings {
  const fail = (reason: string): never => {
    throw new ConfigError([
      { key: undefined, reason: `config file ${file}: ${reason}`, allowed: FILE_ALLOWED, source: undefined },
    ]);
  };
  const extension = path.extname(file).toLowerCase();
  if (!['.json', '.yaml', '.yml'].includes(extension)) fail(`unsupported extension "${extension}"`);
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    fail(code === 'ENOENT' ? 'file does not exist' : `cannot read the file (${code ?? 'error'})`);
  }
  let raw: unknown;
  try {
    raw = extension === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    // Never echo the offending source line: it may hold a secret.
    fail(extension === '.json' ? jsonErrorLocation(error, text) : yamlErrorLocation(error));
  }
  if (raw === null || raw === undefined) raw = {};
  if (!isPlainObject(raw)) return fail('must hold a mapping of settings at the top level');

  const problems: ConfigProblem[] = [];
  const present = new Set<string>();
  const values = collectFileSettings(raw, schema, '', `config file ${file}`, present, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return { values, present };
}

/** Copies the file's settings, reporting unknown keys and sections that are not mappings. */
function collectFileSettings(
  raw: Record<string, unknown>,
  section: SchemaSection,
  prefix: string,
  source: string,
  present: Set<string>,
  problems: ConfigProblem[],
): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  const known = Object.keys(section);
  for (const [name, value] of Object.entries(raw)) {
    const key = prefix === '' ? name : `${prefix}.${name}`;
    const node = Object.hasOwn(section, name) ? section[name] : undefined;
    if (node === undefined) {
      // The value is not shown: a misspelt key may well hold a secret.
      problems.push({
        key,
        reason: 'unknown key',
        allowed: `${prefix === '' ? 'top-level keys' : `keys under ${prefix}`}: ${known.join(', ')}`,
        source,
      });
    } else if (isSetting(node)) {
      if (isPlainObject(value) && node.format !== 'Object') {
        const allowed = formatOf(node.format).allowed;
        problems.push({ key, reason: 'must be a single value, not a mapping', allowed, source });
      } else {
        values[name] = value;
        present.add(key);
      }
    } else if (value === null) {
      // An empty section (`server:` with every key commented out) sets nothing.
    } else if (!isPlainObject(value)) {
      problems.push({
        key,
        reason: 'must be a section (a mapping)',
        allowed: `a mapping with keys ${Object.keys(node).join(', ')}`,
        source,
        value: redactValue(value, name),
      });
    } else {
      values[name] = collectFileSettings(value, node, key, source, present, problems);
    }
  }
  return values;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function jsonErrorLocation(error: unknown, text: string): string {
  const position = /at position (\d+)/.exec(error instanceof Error ? error.message : '')?.[1];
  if (position === undefined) return 'invalid JSON';
  const before = text.slice(0, Number(position));
  const line = before.split('\n').length;
  const column = Number(position) - before.lastIndexOf('\n');
  return `invalid JSON at line ${line}, column ${column}`;
}

function yamlErrorLocation(error: unknown): string {
  const linePos = (error as { linePos?: Array<{ line: number; col: number }> }).linePos?.[0];
  // The first line of a YAML error is the diagnosis; the source excerpt follows it.
  const firstLine = (error instanceof Error ? error.message : '').split('\n')[0] ?? '';
  const diagnosis = firstLine.replace(/ at line \d+, column \d+:?$/, '') || 'parse error';
  const where = linePos === undefined ? '' : ` at line ${linePos.line}, column ${linePos.col}`;
  return `invalid YAML${where}: ${diagnosis}`;
}
