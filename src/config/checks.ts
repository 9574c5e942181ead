/**
 * Cross-field checks on the parsed configuration: what no single setting's
 * format can see (pairs, orders, files that must be readable, names that
 * must be unique or known).
 */
import fs from 'node:fs';
import { unknownRuleUpstreams } from '../auth/config.ts';
import { HtpasswdError, parseHtpasswd } from '../auth/htpasswd.ts';
import { valueFormats } from './formats.ts';
import { REDACTED, redactValue } from './redact.ts';
import { readTlsPair } from './tls-pair.ts';
import type { Config } from './types.ts';

/**
 * One thing wrong with the configuration: the dotted key (`registries[0].url`;
 * undefined for file-level problems), what is wrong, what would be accepted,
 * where the value came from (`flag --port`, `env OUTPOST_PORT`, `config file
 * <path>`, `default`) and the value, secrets redacted (absent when not shown).
 */
export interface ConfigProblem {
  readonly key: string | undefined;
  readonly reason: string;
  readonly allowed: string | undefined;
  readonly source: string | undefined;
  readonly value?: unknown;
}

/** A setting's value as the user wrote it, and where it came from. */
export type Origin = (key: string) => { value: unknown; source: string };

const MIN_PEER_SECRET_LENGTH = 16;
const MAX_LEASE_TTL_MS = 600_000;
const HTPASSWD_LIMITS = { maxBytes: 1024 * 1024, maxUsers: 10_000 };

export function checkConsistency(config: Config, origin: Origin): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  /** A problem with the value `key` holds; `settingKey` is where it was set (for `registries[0].caFile`: `registries`). */
  const bad = (key: string, reason: string, allowed: string, value: unknown = origin(key).value, settingKey = key): void => {
    problems.push({ key, reason, allowed, source: origin(settingKey).source, value: redactValue(value, key.split('.').pop()) });
  };
  const { tlsCert, tlsKey } = config.server;
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    const [missing, present] = tlsCert === undefined ? ['server.tlsCert', 'server.tlsKey'] : ['server.tlsKey', 'server.tlsCert'];
    problems.push({ key: missing, reason: `must be set because ${present} is set (from ${origin(present).source})`, allowed: 'both server.tlsCert and server.tlsKey (HTTPS), or neither (HTTP)', source: undefined });
  }
  if (config.server.bodyTimeoutMs < config.server.headersTimeoutMs) {
    const reason = `must not be below server.headersTimeout (${String(origin('server.headersTimeout').value)})`;
    bad('server.bodyTimeout', reason, 'a duration at least server.headersTimeout: the body timeout covers the headers too');
  }
  if (config.cache.lowWatermark >= config.cache.highWatermark) {
    bad('cache.lowWatermark', `must be below cache.highWatermark (${config.cache.highWatermark})`, 'a fraction smaller than cache.highWatermark');
  }
  if (config.cache.maxBytes === 0) bad('cache.maxBytes', 'must be greater than 0', 'a byte size greater than 0, e.g. 10GiB');
  if (config.manifests.maxBytes === 0) bad('manifests.maxBytes', 'must be greater than 0', 'a byte size greater than 0, e.g. 10GiB');
  if (config.etcd.leaseTtlMs % 1000 !== 0 || config.etcd.leaseTtlMs > MAX_LEASE_TTL_MS) {
    bad('etcd.leaseTtl', 'must be a whole number of seconds, at most 10m', 'a duration in whole seconds from 1s to 10m, e.g. 5s');
  }
  const secret = config.cluster.peerSecret;
  if (config.etcd.endpoints.length > 0 && secret === undefined) {
    const reason = `must be set because etcd.endpoints is set (from ${origin('etcd.endpoints').source}): replicas sign their membership records with it`;
    const allowed = `the same secret of at least ${MIN_PEER_SECRET_LENGTH} characters on every replica (OUTPOST_PEER_SECRET), e.g. from openssl rand -hex 32`;
    problems.push({ key: 'cluster.peerSecret', reason, allowed, source: undefined });
  } else if (config.etcd.endpoints.length > 0 && secret !== undefined && secret.length < MIN_PEER_SECRET_LENGTH) {
    bad('cluster.peerSecret', `is too short (${secret.length} characters)`, `at least ${MIN_PEER_SECRET_LENGTH} characters, e.g. from openssl rand -hex 32`, REDACTED);
  }

  problems.push(...duplicateNames(config, origin));
  const primaries = [config.upstream, ...config.registries];
  const hosts = primaries.flatMap((primary) => [primary.host, ...primary.aliases]);
  for (const error of unknownRuleUpstreams(config.auth, hosts)) {
    problems.push({ key: `auth.${error.path}`, reason: error.reason, allowed: error.allowed, source: origin('auth').source, value: error.value });
  }
  config.prefetch.forEach((job, index) => {
    if (primaries.some((primary) => primary.host === job.upstream)) return;
    const allowed = `the host or an alias of a configured primary: ${hosts.join(', ')}; leave it out for the default primary`;
    bad(`prefetch[${index}].upstream`, `names no configured primary (job "${job.name}")`, allowed, job.upstream, 'prefetch');
  });
  const files: Array<[key: string, file: string | undefined, settingKey?: string]> = [
    ['auth.htpasswd', config.auth.htpasswd, 'auth'],
    ['server.tlsCert', tlsCert],
    ['server.tlsKey', tlsKey],
    ['upstream.caFile', config.upstream.caFile],
    ...config.registries.map((registry, index): [string, string | undefined, string] => [`registries[${index}].caFile`, registry.caFile, 'registries']),
  ];
  const unreadable = new Set<string>();
  for (const [key, file, settingKey] of files) {
    const reason = file === undefined ? undefined : unreadableReason(file);
    if (reason === undefined) continue;
    unreadable.add(key);
    bad(key, reason, 'a readable file', file, settingKey);
  }
  const htpasswd = config.auth.htpasswd;
  const htpasswdReason = htpasswd === undefined || unreadable.has('auth.htpasswd') ? undefined : htpasswdProblem(htpasswd);
  if (htpasswdReason !== undefined) bad('auth.htpasswd', htpasswdReason, 'an htpasswd file of bcrypt entries (htpasswd -B), one user:hash a line', htpasswd, 'auth');
  if (tlsCert !== undefined && tlsKey !== undefined && !unreadable.has('server.tlsCert') && !unreadable.has('server.tlsKey')) {
    const read = readTlsPair(tlsCert, tlsKey);
    if (!read.ok) bad(read.problem.key, read.problem.reason, 'a PEM certificate chain (tlsCert) and its unencrypted PEM private key (tlsKey)', read.problem.file);
  }
  return problems;
}

/**
 * Each registry host names one primary: a `registries` entry that repeats the
 * default primary's host or an alias (or another entry's) would be a second
 * cache of the same registry, chosen by whichever name a client used.
 */
function duplicateNames(config: Config, origin: Origin): ConfigProblem[] {
  /** Each name → which setting gave it to which primary. */
  const owners = new Map<string, string>();
  const explicitAliases = new Set(valueFormats['registry-host-list'].parse(origin('upstream.aliases').value));
  const hostSetting = origin('upstream.host').source !== 'default' ? 'upstream.host' : 'upstream.url';
  for (const name of [config.upstream.host, ...config.upstream.aliases]) {
    const why = name === config.upstream.host ? hostSetting : explicitAliases.has(name) ? 'upstream.aliases' : 'implied by a Docker Hub upstream.url';
    owners.set(name, `the default primary (${why})`);
  }
  return config.registries.flatMap((registry, index) => {
    const names = [registry.host, ...registry.aliases];
    const taken = names.find((name) => owners.has(name));
    if (taken === undefined) {
      for (const name of names) owners.set(name, `registries[${index}]`);
      return [];
    }
    const key = `registries[${index}].${taken === registry.host ? 'host' : 'aliases'}`;
    const reason = `${taken} is already a name of ${owners.get(taken)}; a second primary for it would be a second cache of the same images`;
    const allowed = 'a host no other primary answers to; to mirror it from this url, make it the default primary (upstream.url with upstream.aliases) or change the other entry';
    return [{ key, reason, allowed, source: origin('registries').source, value: taken }];
  });
}

/** What is wrong with an htpasswd file's content (line numbers, never a hash or a user), or undefined. */
function htpasswdProblem(file: string): string | undefined {
  try {
    const text = fs.readFileSync(file, 'utf8');
    if (Buffer.byteLength(text) > HTPASSWD_LIMITS.maxBytes) return `larger than ${HTPASSWD_LIMITS.maxBytes} bytes`;
    parseHtpasswd(text, HTPASSWD_LIMITS);
    return undefined;
  } catch (error) {
    return error instanceof HtpasswdError ? error.message : `cannot read the file (${(error as NodeJS.ErrnoException).code ?? 'error'})`;
  }
}

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
