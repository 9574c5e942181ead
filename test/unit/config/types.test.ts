/**
 * The Config type is derived from the schema: these are the shapes types.ts
 * exported before (copied from it), which the derived types must equal
 * exactly. Checked by the type checker (npx tsc --noEmit); the test body
 * only makes vitest run the file.
 */
import { describe, expectTypeOf, it } from 'vitest';
import type { AuthConfig } from '../../../src/auth/config.ts';
import type {
  ClientLimits,
  Config,
  DefaultUpstreamConfig,
  PrefetchJobConfig,
  PrimaryNames,
  RegistryConfig,
  ServerConfig,
  UpstreamConfig,
  UpstreamProtectionConfig,
} from '../../../src/config/types.ts';


interface WasUpstreamConfig {
  url: string;
  username: string | undefined;
  password: string | undefined;
  caFile: string | undefined;
  insecure: boolean;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyIdleTimeoutMs: number;
  retries: number;
  connections: number;
}

interface WasPrimaryNames {
  host: string;
  aliases: string[];
  dockerHub: boolean;
}

interface WasDefaultUpstreamConfig extends WasUpstreamConfig, WasPrimaryNames {}

interface WasRegistryConfig extends WasUpstreamConfig, WasPrimaryNames {}

interface WasClientLimits {
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  sendTimeoutMs: number;
  maxConnectionsPerWorker: number;
}

interface WasServerConfig extends WasClientLimits {
  host: string;
  port: number;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
}

interface WasUpstreamProtectionConfig {
  failureThreshold: number;
  cooldownMs: number;
  maxConcurrent: number;
  maxQueued: number;
  queueTimeoutMs: number;
  notFoundTtlMs: number;
}

interface WasConfig {
  server: WasServerConfig;
  upstream: WasDefaultUpstreamConfig;
  registries: WasRegistryConfig[];
  upstreamProtection: WasUpstreamProtectionConfig;
  cache: {
    dir: string;
    maxBytes: number;
    highWatermark: number;
    lowWatermark: number;
    retentionMs: number;
    scrubRate: number;
    pins: string[];
    retentionSchedule: string | undefined;
    retentionRules: Array<{ repositories: string[]; unusedForMs: number }>;
  };
  manifests: {
    maxBytes: number;
  };
  tags: {
    ttlMs: number;
    revalidateTimeoutMs: number;
  };
  workers: number;
  node: {
    id: string;
    advertiseUrl: string | undefined;
  };
  cluster: {
    name: string;
    peerSecret: string | undefined;
  };
  etcd: {
    endpoints: string[];
    leaseTtlMs: number;
  };
  redis: { url: string | undefined };
  admin: { token: string | undefined };
  drainSeconds: number;
  shutdownTimeoutMs: number;
  log: { level: string };
  auth: AuthConfig;
  prefetch: WasPrefetchJobConfig[];
}

interface WasPrefetchJobConfig {
  name: string;
  schedule: string;
  timezone: string;
  upstream: string;
  images: string[];
  updatedWithinDays: number | undefined;
  platforms: string[];
  replicas: 'all' | 'one';
  runOnStart: boolean;
  concurrency: number;
  requestsPerSecond: number;
}

describe('the Config types derived from the schema', () => {
  it('are exactly the shapes callers were written against', () => {
    expectTypeOf<Config>().toEqualTypeOf<WasConfig>();
    expectTypeOf<Config['server']>().toEqualTypeOf<WasConfig['server']>();
    expectTypeOf<Config['upstream']>().toEqualTypeOf<WasConfig['upstream']>();
    expectTypeOf<Config['registries']>().toEqualTypeOf<WasConfig['registries']>();
    expectTypeOf<Config['upstreamProtection']>().toEqualTypeOf<WasConfig['upstreamProtection']>();
    expectTypeOf<Config['cache']>().toEqualTypeOf<WasConfig['cache']>();
    expectTypeOf<Config['manifests']>().toEqualTypeOf<WasConfig['manifests']>();
    expectTypeOf<Config['tags']>().toEqualTypeOf<WasConfig['tags']>();
    expectTypeOf<Config['workers']>().toEqualTypeOf<WasConfig['workers']>();
    expectTypeOf<Config['node']>().toEqualTypeOf<WasConfig['node']>();
    expectTypeOf<Config['cluster']>().toEqualTypeOf<WasConfig['cluster']>();
    expectTypeOf<Config['etcd']>().toEqualTypeOf<WasConfig['etcd']>();
    expectTypeOf<Config['redis']>().toEqualTypeOf<WasConfig['redis']>();
    expectTypeOf<Config['admin']>().toEqualTypeOf<WasConfig['admin']>();
    expectTypeOf<Config['drainSeconds']>().toEqualTypeOf<WasConfig['drainSeconds']>();
    expectTypeOf<Config['shutdownTimeoutMs']>().toEqualTypeOf<WasConfig['shutdownTimeoutMs']>();
    expectTypeOf<Config['log']>().toEqualTypeOf<WasConfig['log']>();
    expectTypeOf<Config['auth']>().toEqualTypeOf<WasConfig['auth']>();
    expectTypeOf<Config['prefetch']>().toEqualTypeOf<WasConfig['prefetch']>();
    expectTypeOf<keyof Config>().toEqualTypeOf<keyof WasConfig>();
    expectTypeOf<Config['server']>().toEqualTypeOf<WasServerConfig>();
    expectTypeOf<Config['cache']>().toEqualTypeOf<WasConfig['cache']>();
    expectTypeOf<Config['upstream']>().toEqualTypeOf<WasDefaultUpstreamConfig>();
    expectTypeOf<UpstreamConfig>().toEqualTypeOf<WasUpstreamConfig>();
    expectTypeOf<PrimaryNames>().toEqualTypeOf<WasPrimaryNames>();
    expectTypeOf<DefaultUpstreamConfig>().toEqualTypeOf<WasDefaultUpstreamConfig>();
    expectTypeOf<RegistryConfig>().toEqualTypeOf<WasRegistryConfig>();
    expectTypeOf<ClientLimits>().toEqualTypeOf<WasClientLimits>();
    expectTypeOf<ServerConfig>().toEqualTypeOf<WasServerConfig>();
    expectTypeOf<UpstreamProtectionConfig>().toEqualTypeOf<WasUpstreamProtectionConfig>();
    expectTypeOf<PrefetchJobConfig>().toEqualTypeOf<WasPrefetchJobConfig>();
  });
});
