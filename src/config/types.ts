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
}
