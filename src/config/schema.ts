/**
 * The convict schema, the single source of the configuration: every setting
 * with its doc, format (formats.ts), default as a user would write it
 * (`10GiB`, `60s`), and where one exists its environment variable and
 * command-line flag. The {@link Config} type is derived from it (types.ts):
 * a setting's key is its field, durations in milliseconds with an `Ms`
 * suffix (`tags.ttl: 60s` is `config.tags.ttlMs === 60000`).
 */
import os from 'node:os';
import { AUTH_ALLOWED, parseAuthConfig } from '../auth/config.ts';
import { FormatError, optional, parseList, parseObject, parseRegistryHost, type ValueFormat, valueFormats } from './formats.ts';
import { CRON_ALLOWED, parseCron, parsePrefetchJobs, parseRetentionRules, PREFETCH_ALLOWED, RETENTION_RULES_ALLOWED } from './prefetch.ts';

/** How Outpost talks to the default primary; a `registries` entry has the same keys (see {@link parseRegistries}). */
const UPSTREAM = {
  url: { doc: 'Base URL of the default primary registry.', format: 'url', default: 'https://registry-1.docker.io', env: 'OUTPOST_UPSTREAM_URL', arg: 'upstream-url' },
  host: { doc: "The registry host clients name the default primary by (containerd ?ns=<host>, a /v2/<host>/... prefix), and its cache key. Default: the url's host.", format: 'optional-registry-host', default: null, env: 'OUTPOST_UPSTREAM_HOST' },
  aliases: { doc: 'More registry hosts the default primary answers to, e.g. docker.io for a Harbor, DTR or Outpost that mirrors Docker Hub. A Docker Hub url implies docker.io, index.docker.io and registry-1.docker.io.', format: 'registry-host-list', default: [], env: 'OUTPOST_UPSTREAM_ALIASES' },
  dockerHub: { doc: "The default primary serves Docker Hub's namespace: nginx means library/nginx. Default: true when its url, host or an alias is a Docker Hub name (docker.io, index.docker.io, registry-1.docker.io).", format: 'optional-boolean', default: null, env: 'OUTPOST_UPSTREAM_DOCKER_HUB' },
  username: { doc: 'User name Outpost authenticates with upstream; unset means anonymous.', format: 'optional-string', default: null, env: 'OUTPOST_UPSTREAM_USERNAME' },
  password: { doc: 'Password or access token for upstream.username.', format: 'optional-string', default: null, env: 'OUTPOST_UPSTREAM_PASSWORD', sensitive: true },
  caFile: { doc: 'PEM bundle of CAs to trust for the primary (self-signed or private CA); replaces the system CAs.', format: 'optional-string', default: null, env: 'OUTPOST_UPSTREAM_CA_FILE' },
  insecure: { doc: 'Skip TLS certificate verification upstream (logged as a warning). For tests only.', format: 'strict-boolean', default: false, env: 'OUTPOST_UPSTREAM_INSECURE' },
  connectTimeout: { doc: 'Time allowed to open a connection to the primary.', format: 'positive-duration', default: '5s', env: 'OUTPOST_UPSTREAM_CONNECT_TIMEOUT' },
  headersTimeout: { doc: 'Time allowed for response headers on one upstream attempt.', format: 'positive-duration', default: '15s', env: 'OUTPOST_UPSTREAM_HEADERS_TIMEOUT' },
  bodyIdleTimeout: { doc: 'Longest gap between two body chunks from upstream before the transfer is aborted.', format: 'positive-duration', default: '30s', env: 'OUTPOST_UPSTREAM_BODY_TIMEOUT' },
  retries: { doc: 'Extra attempts for idempotent upstream requests that failed before any body byte.', format: 'non-negative-int', default: 2, env: 'OUTPOST_UPSTREAM_RETRIES' },
  connections: { doc: 'Keep-alive connections per upstream origin.', format: 'positive-int', default: 16, env: 'OUTPOST_UPSTREAM_CONNECTIONS' },
} as const;

const NAME_KEYS = ['host', 'aliases', 'dockerHub'];
const REGISTRY_KEYS = [...NAME_KEYS, ...Object.keys(UPSTREAM).filter((key) => !NAME_KEYS.includes(key))] as Array<keyof typeof UPSTREAM>;
const REGISTRIES_ALLOWED = `a list of objects with keys ${REGISTRY_KEYS.join(', ')} (host and url required)`;
type RegistryEntry = { host: string; url: string } & Partial<Settings<Omit<typeof UPSTREAM, 'host' | 'url'>>>;

/**
 * The `registries` list, strictly: each entry has the keys of `upstream`, read
 * by the same formats (host and url required, the others unset unless
 * written: the loader fills timeouts, retries and connections from
 * `upstream`); unknown keys and duplicate hosts are errors.
 */
export function parseRegistries(value: unknown): RegistryEntry[] {
  const fields = Object.fromEntries(
    REGISTRY_KEYS.map((key) => {
      if (key === 'host') return [key, parseRegistryHost];
      const { parse } = settingFormats[UPSTREAM[key].format];
      return [key, key === 'url' ? parse : (field: unknown) => (field === undefined || field === null ? undefined : parse(field))];
    }),
  );
  const seen = new Set<string>();
  return parseList(value ?? [], REGISTRIES_ALLOWED, 1000, (raw) => {
    const entry = parseObject(raw, fields, REGISTRIES_ALLOWED, ['host', 'url']);
    if (seen.has(entry.host as string)) throw new FormatError('duplicate registry host', 'each host at most once', (raw as { host: unknown }).host, 'host');
    seen.add(entry.host as string);
    return Object.fromEntries(Object.entries(entry).map(([key, field]) => [MS_FORMATS.has(UPSTREAM[key as keyof typeof UPSTREAM].format) ? `${key}Ms` : key, field])) as RegistryEntry;
  });
}

/** Every format a setting may have, by name. */
export const settingFormats = {
  ...valueFormats,
  auth: { allowed: AUTH_ALLOWED, parse: parseAuthConfig },
  'prefetch-jobs': { allowed: PREFETCH_ALLOWED, parse: parsePrefetchJobs },
  'retention-rules': { allowed: RETENTION_RULES_ALLOWED, parse: parseRetentionRules },
  'optional-cron': optional({ allowed: `${CRON_ALLOWED} (read in UTC)`, parse: (value) => parseCron(value) }),
  registries: { allowed: REGISTRIES_ALLOWED, parse: parseRegistries },
} as const satisfies Record<string, ValueFormat<unknown>>;

export type SettingFormat = keyof typeof settingFormats;

/** One setting; `sensitive` ones are never shown in messages. `arg` is the flag without `--`. */
export interface Setting {
  doc: string;
  format: SettingFormat;
  default: unknown;
  env?: string;
  arg?: string;
  sensitive?: boolean;
}

export type SchemaSection = { readonly [key: string]: Setting | SchemaSection };

/** What the defaults depend on, injectable so tests and docs are deterministic. */
export interface MachineFacts {
  hostname: string;
  cpus: number;
}

export function currentMachine(): MachineFacts {
  return { hostname: os.hostname(), cpus: os.availableParallelism() };
}

export function configSchema(machine: MachineFacts = currentMachine()) {
  return {
    server: {
      host: { doc: 'Address the registry API and operations endpoints listen on.', format: 'non-empty-string', default: '0.0.0.0', env: 'OUTPOST_HOST', arg: 'host' },
      port: { doc: 'TCP port to listen on.', format: 'port-number', default: 5000, env: 'OUTPOST_PORT', arg: 'port' },
      tlsCert: { doc: 'PEM certificate chain; with tlsKey, serve HTTPS instead of HTTP.', format: 'optional-string', default: null, env: 'OUTPOST_TLS_CERT' },
      tlsKey: { doc: 'PEM private key of tlsCert.', format: 'optional-string', default: null, env: 'OUTPOST_TLS_KEY' },
      headersTimeout: { doc: 'Time a client has, from the first byte of a request, to send all its headers; then it gets 408 and its connection is closed. Also bounds a connection that sends nothing.', format: 'positive-duration', default: '30s', env: 'OUTPOST_HEADERS_TIMEOUT' },
      bodyTimeout: { doc: 'Time a client has, from the first byte of a request, to send the whole request, body included; then it gets 408 and its connection is closed. Never limits how long a response (a big blob) takes to download. At least headersTimeout.', format: 'positive-duration', default: '60s', env: 'OUTPOST_BODY_TIMEOUT' },
      sendTimeout: { doc: 'A response with bytes waiting for a client that has taken none for this long is cut (its connection closed). Slow clients that keep reading are never cut.', format: 'positive-duration', default: '60s', env: 'OUTPOST_SEND_TIMEOUT' },
      maxConnectionsPerWorker: { doc: 'Client connections one worker process holds at once; further connections are closed as they arrive until some end. Per worker, like file descriptor limits (ulimit -n).', format: 'positive-int', default: 4096, env: 'OUTPOST_MAX_CONNECTIONS_PER_WORKER' },
    },
    upstream: UPSTREAM,
    registries: { doc: 'Extra primaries, picked by containerd ?ns=<host> or a /v2/<host>/... path prefix. Each entry: host, url (required), aliases, dockerHub, username, password, caFile, insecure, connectTimeout, headersTimeout, bodyIdleTimeout, retries, connections. Timeouts, retries and connections default to the upstream settings; credentials, caFile and insecure are never inherited. Config file only.', format: 'registries', default: [] },
    upstreamProtection: {
      failureThreshold: { doc: 'Consecutive outages (refused, timeout, 5xx; never a 404/401/403) one worker sees before a primary\'s circuit breaker opens and requests to it fail at once, on every worker of the node.', format: 'positive-int', default: 5, env: 'OUTPOST_UPSTREAM_FAILURE_THRESHOLD' },
      cooldown: { doc: 'Time an open circuit breaker (or a 429 without Retry-After) keeps requests away from a primary before one probe is let through; doubles after each failed probe, up to 16 times this.', format: 'positive-duration', default: '10s', env: 'OUTPOST_UPSTREAM_COOLDOWN' },
      maxConcurrent: { doc: 'Requests one worker has in flight to one primary at once (a blob until its body ends); 0 = no cap.', format: 'non-negative-int', default: 0, env: 'OUTPOST_UPSTREAM_MAX_CONCURRENT' },
      maxQueued: { doc: 'With maxConcurrent: requests that may wait for a slot; more get 503 at once.', format: 'non-negative-int', default: 1000, env: 'OUTPOST_UPSTREAM_MAX_QUEUED' },
      queueTimeout: { doc: 'With maxConcurrent: longest a request waits for a slot before it gets 504.', format: 'positive-duration', default: '30s', env: 'OUTPOST_UPSTREAM_QUEUE_TIMEOUT' },
      notFoundTtl: { doc: 'How long a 404 from a primary for a tag or a repository (tag list) is remembered, per worker, before it is asked again; 0 = never remembered. 404s by digest are never remembered.', format: 'duration', default: '30s', env: 'OUTPOST_UPSTREAM_NOT_FOUND_TTL' },
    },
    cache: {
      dir: { doc: 'Directory where blobs, manifests and the eviction index live.', format: 'non-empty-string', default: './data', env: 'OUTPOST_CACHE_DIR', arg: 'cache-dir' },
      maxBytes: { doc: 'Disk budget of the cache, e.g. 50GiB, 500MB, 1073741824.', format: 'bytes', default: '10GiB', env: 'OUTPOST_CACHE_MAX_BYTES', arg: 'cache-max-bytes' },
      highWatermark: { doc: 'Fraction of maxBytes at which eviction starts.', format: 'fraction', default: 0.95, env: 'OUTPOST_CACHE_HIGH_WATERMARK' },
      lowWatermark: { doc: 'Fraction of maxBytes eviction brings usage under; must be below highWatermark.', format: 'fraction', default: 0.85, env: 'OUTPOST_CACHE_LOW_WATERMARK' },
      retention: { doc: 'Evict what has not been pulled for this long (e.g. 30d is written 720h); 0 keeps everything the budget allows.', format: 'duration', default: 0, env: 'OUTPOST_CACHE_RETENTION' },
      scrubRate: { doc: 'Bytes per second the scrub reads while it hashes cached blobs against their digests: in the background after an unclean shutdown, and for `outpost cache verify`. 0 turns the background scrub off (unverified blobs are then verified when first served) and lets `outpost cache verify` run unthrottled.', format: 'bytes', default: '64MiB', env: 'OUTPOST_CACHE_SCRUB_RATE' },
      pins: { doc: 'Image references never evicted (library/nginx:1.27, repo@sha256:...): the manifest, every platform of an index and all their blobs, refreshed when a pinned tag moves.', format: 'string-list', default: [], env: 'OUTPOST_CACHE_PINS' },
      retentionSchedule: { doc: '5-field cron (UTC) on which the leader (or a standalone node) runs the retention sweep on every replica, e.g. "30 4 * * *"; unset: each node sweeps on its own, every retention/10 (1s to 1h).', format: 'optional-cron', default: null, env: 'OUTPOST_CACHE_RETENTION_SCHEDULE' },
      retentionRules: { doc: 'Per-repository retention on top of retention: [{repositories: [patterns], unusedFor: 168h}]. A blob unused for longer than unusedFor is swept when every repository referencing it matches some rule (the longest period applies); pins win. Config file only.', format: 'retention-rules', default: [] },
    },
    manifests: {
      maxBytes: { doc: 'Largest manifest accepted from upstream; larger ones are refused (MANIFEST_INVALID).', format: 'bytes', default: '4MiB', env: 'OUTPOST_MANIFEST_MAX_BYTES' },
    },
    tags: {
      ttl: { doc: 'How long a tag→digest answer is trusted before it is revalidated upstream; 0 revalidates every time.', format: 'duration', default: '60s', env: 'OUTPOST_TAG_TTL' },
      revalidateTimeout: { doc: 'Longest a client waits on the primary while revalidating a tag before the last known answer is served.', format: 'positive-duration', default: '5s', env: 'OUTPOST_TAG_REVALIDATE_TIMEOUT' },
    },
    workers: { doc: 'node:cluster worker processes serving requests. Default: the number of CPUs.', format: 'positive-int', default: machine.cpus, env: 'OUTPOST_WORKERS', arg: 'workers' },
    node: {
      id: { doc: "This replica's id in the cluster. Default: the host name.", format: 'node-id', default: machine.hostname, env: 'OUTPOST_NODE_ID', arg: 'node-id' },
      advertiseUrl: { doc: 'URL peers use to reach this node. Default: http(s)://<host>:<port>, with the host name when listening on all addresses.', format: 'optional-url', default: null, env: 'OUTPOST_ADVERTISE_URL', arg: 'advertise-url' },
    },
    cluster: {
      name: { doc: 'Name of the replica set: the prefix of its etcd keys (<name>/members/...) and Redis keys (<name>:...). Replica sets sharing an etcd or Redis need distinct names.', format: 'cluster-name', default: 'outpost', env: 'OUTPOST_CLUSTER_NAME' },
      peerSecret: { doc: 'Shared secret of the replica set (at least 16 characters, the same on every replica; e.g. openssl rand -hex 32). Required when etcd.endpoints is set. Signs the membership records replicas publish in etcd and authenticates peer fill (the peer endpoint); peer fill is off without it.', format: 'optional-string', default: null, env: 'OUTPOST_PEER_SECRET', sensitive: true },
    },
    etcd: {
      endpoints: { doc: 'etcd endpoint URLs (comma-separated in the env var); empty runs standalone.', format: 'url-list', default: [], env: 'OUTPOST_ETCD_ENDPOINTS' },
      leaseTtl: { doc: 'TTL of the etcd lease that carries this replica\'s membership and leadership, in whole seconds: a replica that dies disappears, and a dead leader is replaced, within it. Shorter reacts faster but needs a steadier link to etcd.', format: 'positive-duration', default: '5s', env: 'OUTPOST_ETCD_LEASE_TTL' },
    },
    redis: {
      url: { doc: 'Redis URL for shared state (redis:// or rediss://): blob locations for peer fill, fill locks, shared tag answers, pull statistics; empty means none.', format: 'redis-url', default: null, env: 'OUTPOST_REDIS_URL' },
    },
    admin: {
      token: { doc: 'Bearer token for the admin API and cluster status; unset turns the admin API off.', format: 'optional-string', default: null, env: 'OUTPOST_ADMIN_TOKEN', sensitive: true },
    },
    drainSeconds: { doc: 'After SIGTERM: how long /health fails while the node still serves, before it closes. A number of seconds or a duration.', format: 'seconds', default: 5, env: 'OUTPOST_DRAIN_SECONDS' },
    shutdownTimeout: { doc: 'After the drain period: how long in-flight transfers may take to finish before their connections are cut.', format: 'positive-duration', default: '30s', env: 'OUTPOST_SHUTDOWN_TIMEOUT' },
    auth: { doc: "Access control: {mode: none | basic | upstream, htpasswd (basic: a bcrypt htpasswd file, reloaded when it changes), groups {name: [users]}, anonymous [repository patterns anyone may pull], rules [{repositories, users, groups, upstreams}] (basic: each grants pull), cacheDecisions (60s; upstream: how long the primary's allow/deny is reused, basic: how long a verified password is trusted)}. Config file only.", format: 'auth', default: {} },
    prefetch: { doc: 'Prefetch jobs: [{name, schedule (5-field cron), timezone (UTC), upstream (default primary), images (patterns), updatedWithinDays, platforms, replicas (all|one), runOnStart (false), concurrency (2), requestsPerSecond (10)}]. Config file only.', format: 'prefetch-jobs', default: [] },
    log: {
      level: { doc: 'Log level: fatal, error, warn, info, debug, trace or silent.', format: 'log-level', default: 'info', env: 'OUTPOST_LOG_LEVEL', arg: 'log-level' },
    },
  } as const;
}

export type ConfigSchema = ReturnType<typeof configSchema>;

export function isSetting(node: Setting | SchemaSection): node is Setting {
  return Object.hasOwn(node, 'default') && Object.hasOwn(settingFormats, (node as Setting).format);
}

/** Every setting with its dotted key, in schema order. */
export function listSettings(schema: SchemaSection, prefix = ''): Array<{ key: string; setting: Setting }> {
  return Object.entries(schema).flatMap(([name, node]) => {
    const key = prefix === '' ? name : `${prefix}.${name}`;
    return isSetting(node) ? [{ key, setting: node }] : listSettings(node, key);
  });
}

/** Formats whose values are milliseconds: their field gets an `Ms` suffix. */
export const MS_FORMATS: ReadonlySet<SettingFormat> = new Set(['duration', 'positive-duration']);

/** The parsed values of a schema section, keyed as in {@link Config}. */
export type Settings<S> = {
  -readonly [K in keyof S as S[K] extends { format: 'duration' | 'positive-duration' } ? `${K & string}Ms` : K]: S[K] extends { format: infer F extends SettingFormat }
    ? ReturnType<(typeof settingFormats)[F]['parse']>
    : Settings<S[K]>;
};
