import type { AuthConfig } from '../auth/config.ts';

/**
 * The validated configuration, as modules receive it (in typed slices).
 * Durations are milliseconds, sizes are bytes.
 */
export interface UpstreamConfig {
  /** Base URL of the primary, e.g. `https://registry-1.docker.io`. */
  url: string;
  username: string | undefined;
  password: string | undefined;
  /** PEM bundle of CAs trusted for this upstream, in addition to none (replaces system CAs). */
  caFile: string | undefined;
  insecure: boolean;
  connectTimeoutMs: number;
  /** Time allowed for response headers on one attempt. */
  headersTimeoutMs: number;
  /** Longest gap between two body chunks. */
  bodyIdleTimeoutMs: number;
  /** Extra attempts for idempotent requests that failed before any body byte. */
  retries: number;
  /** Keep-alive connections per origin. */
  connections: number;
}

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

/** What the HTTP server holds a client to: each bound frees a descriptor a misbehaving client would keep. */
export interface ClientLimits {
  /** Time from the start of a request to the end of its headers. */
  headersTimeoutMs: number;
  /** Time from the start of a request to the end of its body (never applies to sending the response). */
  bodyTimeoutMs: number;
  /** How long a response may wait, with bytes pending, for a client that takes none. */
  sendTimeoutMs: number;
  /** Client connections one worker holds at once; more are closed as they arrive. */
  maxConnectionsPerWorker: number;
}

export interface ServerConfig extends ClientLimits {
  host: string;
  port: number;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
}

/** What protects each primary from this node (applied to every primary, state per worker). */
export interface UpstreamProtectionConfig {
  /** Consecutive outages that open the circuit breaker. */
  failureThreshold: number;
  /** Open time before the first half-open probe (and the wait after a 429 without Retry-After). */
  cooldownMs: number;
  /** Requests in flight per primary per worker; 0 = no cap. */
  maxConcurrent: number;
  /** Requests waiting for a slot; more are refused (503). */
  maxQueued: number;
  /** Longest wait for a slot (then 504). */
  queueTimeoutMs: number;
  /** How long a 404 for a tag or tag list is remembered; 0 = not at all. */
  notFoundTtlMs: number;
}

export interface Config {
  server: ServerConfig;
  upstream: DefaultUpstreamConfig;
  registries: RegistryConfig[];
  upstreamProtection: UpstreamProtectionConfig;
  cache: {
    dir: string;
    maxBytes: number;
    /** Fraction of maxBytes at which eviction starts. */
    highWatermark: number;
    /** Fraction of maxBytes eviction brings usage under. */
    lowWatermark: number;
    /** Evict entries not hit for this long; 0 = never. */
    retentionMs: number;
    /** Bytes per second the verifying scrub reads; 0 = no background scrub, and an unthrottled `cache verify`. */
    scrubRate: number;
    /** Image references whose manifests and blobs are never evicted. */
    pins: string[];
    /**
     * 5-field cron (UTC) on which the leader (or a standalone node) runs the
     * retention sweep on every replica; undefined = each node sweeps on its
     * own, every retention/10 (bounded to 1 s..1 h), as before.
     */
    retentionSchedule: string | undefined;
    /**
     * Per-repository retention, on top of `retention`: a blob unused for
     * longer than the rule's `unusedForMs` is swept when every repository
     * that references it is matched by some rule (the longest matching
     * period applies); blobs no rule covers follow `retention`. Pins win.
     */
    retentionRules: Array<{ repositories: string[]; unusedForMs: number }>;
  };
  manifests: {
    /** Manifests larger than this are refused (MANIFEST_INVALID). */
    maxBytes: number;
  };
  tags: {
    /** How long a tag→digest answer is trusted before a revalidating HEAD. */
    ttlMs: number;
    /** Longest a client waits on the primary before the last known answer is served. */
    revalidateTimeoutMs: number;
  };
  workers: number;
  node: {
    id: string;
    advertiseUrl: string | undefined;
  };
  cluster: {
    /** Prefix of the replica set's etcd and Redis keys. */
    name: string;
    /** Shared secret of the replica set; set whenever etcd is. */
    peerSecret: string | undefined;
  };
  etcd: {
    endpoints: string[];
    /** Whole seconds (etcd lease TTLs are), in milliseconds. */
    leaseTtlMs: number;
  };
  redis: { url: string | undefined };
  admin: { token: string | undefined };
  drainSeconds: number;
  /** After the drain period: bound on in-flight transfers finishing. */
  shutdownTimeoutMs: number;
  log: { level: string };
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
