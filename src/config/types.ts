/**
 * The validated configuration, as modules receive it (in typed slices),
 * derived from the schema (schema.ts, where every setting is documented):
 * durations are milliseconds (`…Ms`), sizes are bytes.
 */
import type { AuthConfig } from '../auth/config.ts';
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
export interface Config extends Omit<FromSchema, 'upstream' | 'registries' | 'auth' | 'prefetch'> {
  upstream: DefaultUpstreamConfig;
  registries: RegistryConfig[];
  /** Access control (config file only): see auth/config.ts. */
  auth: AuthConfig;
  /** Prefetch jobs (config file only), in the order written. */
  prefetch: PrefetchJobConfig[];
}

/**
 * One prefetch job (`prefetch:` list in the config file): which images to
 * warm, from which primary, when. See ../shared/PRODUCT.md "Cache behaviour".
 */
export interface PrefetchJobConfig {
  /** Unique among the jobs; [a-z0-9][a-z0-9._-]* (it appears in URLs, metrics and etcd keys). */
  name: string;
  /** 5-field cron expression (minute hour day-of-month month day-of-week). */
  schedule: string;
  /** IANA time zone the schedule is read in; default `UTC`. */
  timezone: string;
  /** The host of a configured primary (its `host` or an alias, as written); default: the default primary's host. Stored normalised to the primary's `host`. */
  upstream: string;
  /** `repository[:tag]` patterns as written (registry/image-pattern.ts); at least one includes. */
  images: string[];
  /** Only tags whose image config `created` is within this many days; undefined = any age. */
  updatedWithinDays: number | undefined;
  /** Only these platforms of an index (`os/arch[/variant]`); empty = every platform. */
  platforms: string[];
  /** `all`: every replica ends with the images warm (peer fill); `one`: one copy per cluster. Default `all`. */
  replicas: 'all' | 'one';
  /** Run once as soon as the node (standalone) or cluster leader starts. Default false. */
  runOnStart: boolean;
  /** Images warmed at once by one run, over the whole cluster. Default 2. */
  concurrency: number;
  /** Cap on upstream requests per second the run makes (listing, manifests, blobs started). Default 10. */
  requestsPerSecond: number;
}
