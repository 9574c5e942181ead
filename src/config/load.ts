/**
 * Loading and validating the configuration. Sources, later wins: the schema's
 * defaults, the config file (`--config FILE` or `OUTPOST_CONFIG`; JSON, or
 * YAML by extension), environment variables, command-line flags. Nothing is
 * read implicitly: the caller passes the environment and argv. convict holds
 * the defaults, maps the env vars and validates strictly; every problem found
 * (unknown key or flag, bad value, inconsistent pair) is reported at once in a
 * {@link ConfigError} naming the key, the value (secrets redacted), where it
 * came from and what is allowed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import convict from 'convict';
import { parse as parseYaml } from 'yaml';
import { dockerHubAliases, isDockerHubHost } from '../registry/reference.ts';
import { checkConsistency, type ConfigProblem } from './checks.ts';
import { describeValue, FormatError, isMapping, toConvict } from './formats.ts';
import type { PrefetchJobEntry } from './prefetch.ts';
import { redactUrlCredentials, redactValue, REDACTED } from './redact.ts';
import { configSchema, currentMachine, type parseRegistries, isSetting, listSettings, type MachineFacts, MS_FORMATS, type SchemaSection, type Setting, settingFormats } from './schema.ts';
import type { Config, PrimaryNames, RegistryConfig } from './types.ts';

export type { ConfigProblem } from './checks.ts';

/** The configuration cannot be used: the message lists every problem; `key`, `value` (redacted if secret) and `allowed` describe the first. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'CONFIG_INVALID';
  readonly key: string | undefined;
  readonly value: unknown;
  readonly allowed: string | undefined;

  constructor(readonly problems: readonly ConfigProblem[]) {
    const lines = problems.map(({ key, reason, source, allowed, ...rest }) =>
      [key === undefined ? '' : `${key}: `, reason, Object.hasOwn(rest, 'value') ? `, got ${describeValue(rest.value)}` : '', source ? ` (from ${source})` : '', allowed ? `; allowed: ${allowed}` : ''].join(''),
    );
    super(lines.length === 1 ? `Invalid configuration: ${lines[0]}` : `Invalid configuration (${lines.length} problems):\n${lines.map((line) => `  - ${line}`).join('\n')}`);
    ({ key: this.key, value: this.value, allowed: this.allowed } = problems[0] ?? { key: undefined, allowed: undefined });
  }
}

export interface LoadConfigOptions {
  /** Command-line arguments (without `node` and the script); every option must be `--config` or a setting's flag. */
  argv?: readonly string[];
  /** Arguments that are not options (command words): left to the caller (default) or rejected. */
  positionals?: 'ignore' | 'reject';
  /** Environment variables; nothing is read from `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Config file path; takes precedence over `--config` and `OUTPOST_CONFIG`. */
  file?: string;
  /** Host name and CPU count the defaults derive from; the real machine's by default. */
  machine?: MachineFacts;
}

const DURATION_FORMATS: ReadonlySet<string> = new Set([...MS_FORMATS, 'seconds']);

/** Loads, validates and returns the configuration, or throws {@link ConfigError}. */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env: Record<string, string | undefined> = { ...options.env };
  const machine = options.machine ?? currentMachine();
  const schema: SchemaSection = configSchema(machine);
  const settings = new Map(listSettings(schema).map(({ key, setting }) => [key, setting]));
  const flags = parseFlags(options.argv ?? [], settings, options.positionals ?? 'ignore');
  const file = options.file ?? flags.get('config')?.value ?? (env['OUTPOST_CONFIG'] || undefined);
  const fromFile = file === undefined ? undefined : readFileSettings(file, schema);
  const sourceOf = (key: string): string => {
    const envName = settings.get(key)?.env;
    if (flags.has(key)) return `flag --${flags.get(key)?.flag}`;
    if (envName !== undefined && env[envName] !== undefined) return `env ${envName}`;
    return fromFile?.present.has(key) ? `config file ${file}` : 'default';
  };

  // convict keeps its formats in a process-wide registry; registering is idempotent. No coercion: env strings are parsed by the formats.
  convict.addFormats(toConvict(settingFormats));
  const store = convict(convictSchema(schema), { env, args: [] });
  if (fromFile !== undefined) store.load(fromFile.values);
  for (const [key, { value }] of flags) if (key !== 'config') store.set(key, value);

  // The value as written; a duration of digits only is a number of seconds (`got 30`, as from the file, not `got "30"`).
  const written = (key: string): unknown => {
    const value = store.get(key);
    if (typeof value !== 'string' || !DURATION_FORMATS.has(settings.get(key)?.format ?? '')) return value;
    return /^\d+$/.test(value.trim()) ? Number(value) : value.trim();
  };
  const problems: ConfigProblem[] = [];
  const parsed = new Map<string, unknown>();
  for (const [key, setting] of settings) {
    try {
      parsed.set(key, settingFormats[setting.format].parse(written(key)));
    } catch (error) {
      if (!(error instanceof FormatError)) throw error;
      problems.push(formatProblem(key, setting, error, sourceOf(key)));
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  try {
    // Backstop: the file walk and the formats have checked everything convict checks, with better messages.
    store.validate({ allowed: 'strict', output: () => undefined });
  } catch (error) {
    throw new ConfigError([{ key: undefined, reason: redactUrlCredentials(String((error as Error).message)), allowed: undefined, source: undefined }]);
  }

  const config = buildConfig(nest(schema, parsed) as unknown as Config, parsed, machine.hostname);
  // Durations as written (with their units), other values as read (`got 0.99`, not `got "0.99"`).
  const inconsistencies = checkConsistency(config, (key) => ({
    value: DURATION_FORMATS.has(settings.get(key)?.format ?? '') ? written(key) : (parsed.get(key) ?? store.get(key)),
    source: sourceOf(key),
  }));
  if (inconsistencies.length > 0) throw new ConfigError(inconsistencies);
  return config;
}

/**
 * The schema as convict takes it: a setting whose value is a mapping (auth)
 * gets convict's `Object` format, which convict keeps whole; it walks into any
 * other mapping, and crashes on a nested one.
 */
function convictSchema(section: SchemaSection): convict.Schema<Record<string, unknown>> {
  const nodes = Object.entries(section).map(([name, node]) => [name, !isSetting(node) ? convictSchema(node) : isMapping(node.default) ? { ...node, format: 'Object' } : node]);
  return Object.fromEntries(nodes) as convict.Schema<Record<string, unknown>>;
}

function formatProblem(key: string, setting: Setting | undefined, error: FormatError, source: string): ConfigProblem {
  const fullKey = error.path === '' ? key : `${key}${error.path.startsWith('[') ? '' : '.'}${error.path}`;
  const problem = { key: fullKey, reason: error.reason, allowed: error.allowed, source };
  if (error.valueHidden) return problem;
  const hidden = setting?.sensitive === true && !['', null, undefined].includes(error.value as string);
  return { ...problem, value: hidden ? REDACTED : redactValue(error.value, fullKey.split(/[.[\]]+/).findLast((part) => part !== '')) };
}

// ---------------------------------------------------------------------------
// From parsed settings to the Config modules receive

/** The parsed settings nested as the schema, keys renamed as types.ts derives them (`ttl` → `ttlMs`). */
function nest(section: SchemaSection, parsed: ReadonlyMap<string, unknown>, prefix = ''): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(section).map(([name, node]) => {
      const key = prefix === '' ? name : `${prefix}.${name}`;
      if (!isSetting(node)) return [name, nest(node, parsed, key)];
      return [MS_FORMATS.has(node.format) ? `${name}Ms` : name, parsed.get(key)];
    }),
  );
}

function buildConfig(settings: Config, parsed: ReadonlyMap<string, unknown>, hostname: string): Config {
  const { host, aliases, dockerHub, ...upstream } = settings.upstream as Omit<Config['upstream'], 'host' | 'dockerHub'> & Partial<PrimaryNames>;
  const defaultPrimary = { ...upstream, ...primaryNames(upstream.url, host, aliases ?? [], dockerHub) };
  // Timeouts, retries and connections are inherited; credentials, CA and TLS verification belong to one primary.
  const registries = (parsed.get('registries') as ReturnType<typeof parseRegistries>).map(({ host, aliases, dockerHub, ...entry }) => ({
    ...primaryNames(entry.url, host, aliases ?? [], dockerHub),
    ...upstream, username: undefined, password: undefined, caFile: undefined, insecure: false,
    ...Object.fromEntries(Object.entries(entry).filter(([, value]) => value !== undefined)),
  })) as RegistryConfig[];
  const primaries = [defaultPrimary, ...registries];
  // A job's upstream normalised to the host of the primary it names; an unknown one is kept, and reported by the checks.
  const prefetch = (parsed.get('prefetch') as PrefetchJobEntry[]).map((job) => {
    const primary = job.upstream === undefined ? defaultPrimary : primaries.find((p) => p.host === job.upstream || p.aliases.includes(job.upstream ?? ''));
    return { ...job, upstream: primary?.host ?? job.upstream ?? '' };
  });
  const { server } = settings;
  // With the machine's host name when listening on every address.
  const listen = ['0.0.0.0', '::', '[::]', '*'].includes(server.host) ? hostname : server.host;
  const advertised = `${server.tlsCert !== undefined ? 'https' : 'http'}://${listen.includes(':') && !listen.startsWith('[') ? `[${listen}]` : listen}:${server.port}`;
  const node = { ...settings.node, advertiseUrl: settings.node.advertiseUrl ?? advertised };
  return { ...settings, upstream: defaultPrimary, registries, node, prefetch };
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
// Command-line flags

const normalized = (name: string): string => name.toLowerCase().replace(/[^a-z0-9]/g, '');

/**
 * `--config` and the flags the schema declares (`--port 5001`, `--port=5001`),
 * by setting key (`config` for the file). Any other option stops the command
 * with a message naming the flag it resembles or the env var of the setting
 * it names: a misspelt flag must never be ignored. `--` ends options.
 */
function parseFlags(argv: readonly string[], settings: ReadonlyMap<string, Setting>, positionals: 'ignore' | 'reject'): Map<string, { flag: string; value: string }> {
  const keyByFlag = new Map([['config', 'config'], ...[...settings].flatMap(([key, { arg }]) => (arg === undefined ? [] : [[arg, key] as const]))]);
  const options = Object.fromEntries([...keyByFlag.keys()].map((flag) => [flag, { type: 'string' as const }]));
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  const flags = new Map<string, { flag: string; value: string }>();
  const problems: ConfigProblem[] = [];
  let skip = -1; // the value of an unknown option, not a stray argument
  let reported = -1; // `-p5001` is one unknown option, not a group of five
  for (const token of tokens) {
    if (token.kind === 'option-terminator') break;
    if (token.kind === 'positional') {
      if (positionals === 'reject' && token.index !== skip) {
        problems.push({ key: undefined, reason: `unexpected argument "${token.value}"`, allowed: 'options only, e.g. --config FILE', source: undefined });
      }
    } else if (token.kind === 'option' && !keyByFlag.has(token.name)) {
      if (reported !== token.index) problems.push(unknownFlag(argv[token.index]!.split('=')[0]!, keyByFlag, settings));
      reported = token.index;
      if (token.value === undefined) skip = token.index + 1;
    } else if (token.kind === 'option') {
      const key = keyByFlag.get(token.name) ?? token.name;
      if (token.value === undefined || (!token.inlineValue && token.value.startsWith('--'))) {
        problems.push({ key: key === 'config' ? undefined : key, reason: `flag ${token.rawName} needs a value`, allowed: `${token.rawName} VALUE or ${token.rawName}=VALUE`, source: `flag ${token.rawName}` });
      } else flags.set(key, { flag: token.name, value: token.value });
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return flags;
}

function unknownFlag(raw: string, keyByFlag: ReadonlyMap<string, string>, settings: ReadonlyMap<string, Setting>): ConfigProblem {
  const wanted = normalized(raw);
  const similar = [...keyByFlag.keys()].find((flag) => normalized(flag) === wanted);
  const [key, setting] = [...settings].find(([key, { env }]) => normalized(key) === wanted || (env !== undefined && normalized(env.replace(/^OUTPOST_/, '')) === wanted)) ?? [];
  const how = setting?.env === undefined ? `set ${key} in the config file` : `set ${setting.env} or ${key} in the config file`;
  const secret = setting?.sensitive === true ? '; it is a secret, keep it off the command line' : '';
  const hint = similar !== undefined ? ` (did you mean --${similar}?)` : setting !== undefined ? ` (${key} has no command-line flag: ${how}${secret})` : '';
  const flags = [...keyByFlag.keys()].map((flag) => `--${flag}`).join(', ');
  return { key: undefined, reason: `unknown option ${raw}${hint}`, allowed: `${flags} (every setting can be set with its environment variable or in the config file)`, source: undefined };
}

// ---------------------------------------------------------------------------
// The config file

/** The file's settings (empty sections dropped) and the keys it sets. */
function readFileSettings(file: string, schema: SchemaSection): { values: Record<string, unknown>; present: Set<string> } {
  const fail = (reason: string): never => {
    throw new ConfigError([{ key: undefined, reason: `config file ${file}: ${reason}`, allowed: 'a .json, .yaml or .yml file holding a mapping of settings', source: undefined }]);
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
  if (!isMapping(raw ?? {})) fail('must hold a mapping of settings at the top level');
  const problems: ConfigProblem[] = [];
  const present = new Set<string>();
  const values = collect((raw ?? {}) as Record<string, unknown>, schema, '', `config file ${file}`, present, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return { values, present };
}

/**
 * Copies the file's settings, reporting unknown keys (their values hidden: a
 * misspelt key may hold a secret) and sections and settings written as each
 * other before convict sees them: it crashes on a mapping under a setting, and
 * its strict message does not list the keys allowed.
 */
function collect(raw: Record<string, unknown>, section: SchemaSection, prefix: string, source: string, present: Set<string>, problems: ConfigProblem[]): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(raw)) {
    const key = prefix === '' ? name : `${prefix}.${name}`;
    const node = Object.hasOwn(section, name) ? section[name] : undefined;
    if (node === undefined) {
      problems.push({ key, reason: 'unknown key', allowed: `${prefix === '' ? 'top-level keys' : `keys under ${prefix}`}: ${Object.keys(section).join(', ')}`, source });
    } else if (isSetting(node) && isMapping(value) && !isMapping(node.default)) {
      problems.push({ key, reason: 'must be a single value, not a mapping', allowed: settingFormats[node.format].allowed, source });
    } else if (isSetting(node) && isMapping(node.default) && !isMapping(value) && value !== null) {
      // convict would JSON.parse a string here (and crash on anything else).
      problems.push({ key, reason: 'not a mapping', allowed: settingFormats[node.format].allowed, source, value: redactValue(value, name) });
    } else if (isSetting(node)) {
      values[name] = value;
      present.add(key);
    } else if (isMapping(value)) {
      values[name] = collect(value, node, key, source, present, problems);
    } else if (value !== null) {
      // (null: an empty section, `server:` with every key commented out, sets nothing.)
      problems.push({ key, reason: 'must be a section (a mapping)', allowed: `a mapping with keys ${Object.keys(node).join(', ')}`, source, value: redactValue(value, name) });
    }
  }
  return values;
}

function jsonErrorLocation(error: unknown, text: string): string {
  const position = /at position (\d+)/.exec(error instanceof Error ? error.message : '')?.[1];
  if (position === undefined) return 'invalid JSON';
  const before = text.slice(0, Number(position));
  return `invalid JSON at line ${before.split('\n').length}, column ${Number(position) - before.lastIndexOf('\n')}`;
}

function yamlErrorLocation(error: unknown): string {
  const linePos = (error as { linePos?: Array<{ line: number; col: number }> }).linePos?.[0];
  // The first line of a YAML error is the diagnosis; the source excerpt follows it.
  const diagnosis = ((error instanceof Error ? error.message : '').split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '') || 'parse error';
  return `invalid YAML${linePos === undefined ? '' : ` at line ${linePos.line}, column ${linePos.col}`}: ${diagnosis}`;
}
