/**
 * The validated configuration, as modules receive it (in typed slices),
 * derived from the schema (schema.ts, where every setting is documented):
 * durations are milliseconds (`…Ms`), sizes are bytes.
 */
import type { PrefetchJobEntry } from './prefetch.ts';
import type { ConfigSchema, Settings } from './schema.ts';

type FromSchema = Settings<ConfigSchema>;

/** How Outpost talks to one primary: `upstream.*`, or a `registries` entry (which inherits timeouts, retries and connections). */
export type UpstreamConfig = Omit<FromSchema['upstream'], keyof PrimaryNames>;

/** The names clients call a primary by, and the namespace conventions it follows. */
export interface PrimaryNames {
  /** The registry host clients name, e.g. `ghcr.io`; also the primary's cache key. */
  host: string;
  /** Other hosts that mean the same primary (`docker.io` for `registry-1.docker.io`, or for a Docker Hub mirror). */
  aliases: string[];
  /** Docker Hub's namespace: `nginx` means `library/nginx`. */
  dockerHub: boolean;
}

/** The default primary: everything no `?ns=` or path prefix sends elsewhere. */
export interface DefaultUpstreamConfig extends UpstreamConfig, PrimaryNames {}

/** An extra primary, picked by containerd's `?ns=<host>` or a `/v2/<host>/...` path prefix. */
export interface RegistryConfig extends UpstreamConfig, PrimaryNames {}

export type ServerConfig = FromSchema['server'];

/** What the HTTP server holds a client to: each bound frees a descriptor a misbehaving client would keep. */
export type ClientLimits = Pick<ServerConfig, 'headersTimeoutMs' | 'bodyTimeoutMs' | 'sendTimeoutMs' | 'maxConnectionsPerWorker'>;

/** What protects each primary from this node (applied to every primary, state per worker). */
export type UpstreamProtectionConfig = FromSchema['upstreamProtection'];

/** Every setting, in typed sections. */
export interface Config extends Omit<FromSchema, 'upstream' | 'registries' | 'prefetch'> {
  upstream: DefaultUpstreamConfig;
  registries: RegistryConfig[];
  /** Prefetch jobs (config file only), in the order written. */
  prefetch: PrefetchJobConfig[];
}

/** One prefetch job, its `upstream` resolved to the host of a configured primary (see prefetch.ts). */
export type PrefetchJobConfig = { [K in keyof PrefetchJobEntry]: K extends 'upstream' ? string : PrefetchJobEntry[K] };
