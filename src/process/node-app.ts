/**
 * The composition root of a serving process: the one place that `new`s
 * adapters and services and wires them together. Workers call it with the
 * IPC fill coordinator; tests call it in-process with the memory one.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { BlobService } from '../cache/blob-service.ts';
import { CatalogService } from '../cache/catalog-service.ts';
import { ManifestService } from '../cache/manifest-service.ts';
import { PassThroughCache } from '../cache/pass-through-cache.ts';
import {
  noopIndexReporter,
  systemClock,
  type CacheIndexReporter,
  type Clock,
  type FillCoordinator,
  type PeerDirectory,
  type PurgeScope,
  type ReferrersResponse,
  type SharedTags,
  type Upstream,
} from '../cache/ports.ts';
import { PeerFillOrigin } from '../cache/peer-fill-origin.ts';
import { PeerManifests } from '../cache/peer-manifests.ts';
import { PeerClient } from '../coordination/peer-client.ts';
import { PeerRoutes } from '../http/peer-routes.ts';
import { RepositoryResolver, type UpstreamEntry } from '../cache/repository-resolver.ts';
import type { Config, PrimaryNames, UpstreamConfig, UpstreamProtectionConfig } from '../config/types.ts';
import { upstreamProtection, type UpstreamProtection } from './upstream-protection.ts';
import type { BreakerChannel } from '../upstream/circuit-breaker.ts';
import { MemoryFillCoordinator } from '../coordination/memory-fill-coordinator.ts';
import { PinResolver } from '../cache/pin-resolver.ts';
import { CacheImageWarmer } from '../cache/image-warmer.ts';
import type { ImageWarmer } from '../prefetch/ports.ts';
import { newWarmSecret } from './warm-secret.ts';
import { RelayedAnswers } from '../cache/relayed-answers.ts';
import { RepositoryLinks } from '../cache/repository-links.ts';
import { ReferrersService } from '../cache/referrers-service.ts';
import type { AdminRequest } from '../cache/admin-request.ts';
import { AdminRoutes } from '../http/admin-routes.ts';
import { PrefetchRoutes } from '../http/prefetch-routes.ts';
import { RegistryError } from '../registry/errors.ts';
import { AdminToken } from '../http/admin-token.ts';
import { ClusterRoutes } from '../http/cluster-routes.ts';
import { PrefetchJobRoutes } from '../http/prefetch-job-routes.ts';
import type { PrefetchJobsRequest } from '../prefetch/jobs-request.ts';
import { StatusPageRoutes } from '../http/status-page-routes.ts';
import { PullRecorder, type PullBatch } from '../cluster/pull-activity.ts';
import type { StatusPageData } from '../cluster/status-page-data.ts';
import type { ClusterStatus } from '../cluster/cluster-status.ts';
import { StatusPageSource } from './status-page-source.ts';
import { coordinationCheck, type CoordinationState } from '../cluster/coordination-state.ts';
import { createAccessControl } from './access.ts';
import { standaloneClusterStatus } from './standalone-status.ts';
import { OpsRoutes } from '../http/ops-routes.ts';
import { RegistryRoutes } from '../http/registry-routes.ts';
import { UnknownNamespaces } from '../http/unknown-namespaces.ts';
import { createRequestHandler, createServer, type RequestHandler } from '../http/server.ts';
import { ConnectionStats, type ConnectionCounters } from '../observability/connection-stats.ts';
import { cacheDirWritable, circuitBreakers, primaryReachable, recentWriteFailures, runHealthChecks, workersUp } from '../observability/health.ts';
import { instrumentUpstream } from '../observability/instrumented-upstream.ts';
import { UpstreamStatusBoard, type UpstreamStatus } from '../observability/upstream-status.ts';
import { countWarm, metricsObserver, workerMetrics, type WorkerMetrics } from '../observability/metrics.ts';
import { createLogger } from '../observability/logger.ts';
import type { Digest } from '../registry/digest.ts';
import { DiskBlobStore } from '../storage/disk-blob-store.ts';
import { DiskMetadataStore } from '../storage/disk-metadata-store.ts';
import { cacheLayout } from '../storage/layout.ts';
import { createRegistryClients } from '../upstream/registry-client.ts';
import type { PrimaryForClients } from '../auth/upstream-access.ts';

export interface OutpostAppDeps {
  coordinator?: FillCoordinator;
  /** Where hits and additions are reported (the per-host eviction index). */
  index?: CacheIndexReporter;
  /** Admin operations on the per-host index (through the cluster primary). */
  admin?: (request: AdminRequest) => Promise<unknown>;
  /** A read found a cached blob corrupt and deleted it (the cluster primary drops it from the index and counts it). */
  onCorruptBlob?: (digest: Digest) => void;
  logger?: Logger;
  clock?: Clock;
  metrics?: WorkerMetrics;
  /** True once shutdown started: /health fails while the node keeps serving. */
  draining?: () => boolean;
  /** Signs warms (`POST /api/v0/peer/warm`) when no peer secret is configured: the cluster primary's node-local secret; a random one by default. */
  localWarmSecret?: string;
  /** The replica set's shared state (Redis, through the cluster primary): peer fill and shared tags. */
  shared?: { directory: PeerDirectory; tags: SharedTags };
  /**
   * One of several workers of a host: also listen on a loopback sibling
   * endpoint (peer blob routes, signed with the node's secret), where the
   * others join the blobs this one streams through uncached.
   */
  siblings?: boolean;
  /** Cluster-wide views (through the cluster primary); a single process answers for itself by default. */
  cluster?: {
    metrics: () => Promise<string>;
    connections: () => Promise<ConnectionCounters>;
    workers: () => { up: number; configured: number };
    /** Host-wide cache write failures (any worker's). */
    writeFailures?: { report(code: string): void; last(): { code: string; at: number } | undefined };
    /** Host-wide state of the primaries (any worker's outages); this process's own board by default. */
    upstreams?: UpstreamStatus;
    /** Circuit breaker and 429 decisions shared with the node's other workers; none in a single process. */
    breakers?: BreakerChannel;
    /** `cluster_status` as the cluster primary answers it. */
    status?: () => Promise<unknown>;
    /** The node's etcd/Redis/leader state (the `/health` "cluster" check when etcd or Redis is configured). */
    coordination?: () => CoordinationState;
    /** The prefetch jobs, as the cluster primary runs them (admin API). */
    prefetch?: (request: PrefetchJobsRequest) => Promise<unknown>;
    /** A retention sweep of this node, run by the cluster primary (the leader's scheduled sweeps). */
    retentionSweep?: () => Promise<{ evicted: number; bytes: number }>;
    /** The status page's document, as the cluster primary gathers it; with `pulls`, where this process's pulls go. */
    statusPage?: () => Promise<StatusPageData>;
    pulls?: (batch: PullBatch) => void;
  };
}

export interface OutpostApp {
  handler: RequestHandler;
  /** Drops purged content from this process's memory (tags, manifests, small blobs, relayed answers). */
  forget(scope: PurgeScope): void;
  /** Resolves a pinned image reference to its digests, caching what it needs. */
  resolvePin(reference: string): Promise<Digest[]>;
  /** Warms images on this process's services (prefetch). */
  warmer: ImageWarmer;
  /** The secret `POST /api/v0/peer/warm` verifies: the peer secret, else the node-local one. */
  warmSecret: string;
  metrics: WorkerMetrics;
  connectionStats: ConnectionStats;
  server: Server;
  blobStore: DiskBlobStore;
  /** Listens on config.server (or the given port); resolves to the bound port. */
  listen(port?: number, host?: string): Promise<number>;
  /** Stops accepting, lets in-flight responses finish for up to `graceMs`, then cuts what is left. */
  close(options?: { graceMs?: number }): Promise<void>;
}

/** How long a replica that holds a blob may take to connect and answer before the next source is used. */
const peerStartMs = 1_000;
/** How long a replica sending a blob from its disk may pause before the rest is fetched elsewhere. */
const peerIdleMs = 3_000;

function hostOf(url: string): string {
  return new URL(url).host;
}

/** One primary: the cache's entry for it, and the primary as clients of `auth.mode: upstream` reach it. */
function upstreamEntry(
  config: UpstreamConfig & PrimaryNames,
  logger: Logger,
  clock: Clock,
  metrics: WorkerMetrics,
  status: UpstreamStatus,
  protectionConfig: UpstreamProtectionConfig,
  breakers: BreakerChannel | undefined,
): { entry: UpstreamEntry; forClients: PrimaryForClients; protection: UpstreamProtection } {
  const { host, aliases, dockerHub } = config;
  const clients = createRegistryClients(config, {
    clock,
    logger: logger.child({ module: 'upstream', upstream: host }),
    onRateLimit: (remaining, limit) => {
      if (remaining !== undefined) metrics.rateLimitRemaining.set({ upstream: host }, remaining);
      if (limit !== undefined) metrics.rateLimitLimit.set({ upstream: host }, limit);
    },
  });
  const protection = upstreamProtection(host, protectionConfig, { clock, metrics, logger: logger.child({ module: 'upstream', upstream: host }), channel: breakers });
  // Outermost: a call the breaker, the 429 gate, the cap or the 404 memory refuses never counts as an upstream request.
  const instrumented = (upstream: Upstream, rememberNotFound = false): Upstream =>
    protection.protect(instrumentUpstream(upstream, { metrics, status }), rememberNotFound);
  return {
    entry: { host, aliases, upstream: instrumented(clients.upstream, true), dockerHub },
    forClients: {
      asClient: (credentials) => instrumented(clients.asClient(credentials)),
      checkPull: (credentials, repo, signal) => clients.checkPull(credentials, repo, signal),
      checkLogin: (credentials, signal) => clients.checkLogin(credentials, signal),
    },
    protection,
  };
}

export async function createOutpostApp(config: Config, deps: OutpostAppDeps = {}): Promise<OutpostApp> {
  const logger = deps.logger ?? createLogger(config.log.level);
  const clock = deps.clock ?? systemClock;
  const metrics = deps.metrics ?? workerMetrics();
  let lastWriteFailure: { code: string; at: number } | undefined;
  const baseObserver = metricsObserver(metrics);
  const observer = {
    ...baseObserver,
    cacheWriteFailed: (code: string) => {
      lastWriteFailure = { code, at: clock.now() };
      deps.cluster?.writeFailures?.report(code);
      baseObserver.cacheWriteFailed(code);
    },
  };
  const coordinator = deps.coordinator ?? new MemoryFillCoordinator();
  const layout = cacheLayout(config.cache.dir);
  const blobStore = new DiskBlobStore(layout, {
    clock,
    onCorrupt: (digest) => {
      logger.warn({ digest }, 'cached blob does not match its digest; deleted, fetched again on the next request');
      deps.onCorruptBlob?.(digest);
    },
  });
  await blobStore.init();
  const metadata = new DiskMetadataStore(layout);

  if (config.upstream.insecure) logger.warn({ upstream: hostOf(config.upstream.url) }, 'TLS verification of the primary is disabled');
  const upstreamStatus = deps.cluster?.upstreams ?? new UpstreamStatusBoard({ logger: logger.child({ module: 'upstream' }), clock });
  const primaries = [
    upstreamEntry(config.upstream, logger, clock, metrics, upstreamStatus, config.upstreamProtection, deps.cluster?.breakers),
    ...config.registries.map((registry) => upstreamEntry(registry, logger, clock, metrics, upstreamStatus, config.upstreamProtection, deps.cluster?.breakers)),
  ];
  const [fallback, ...extra] = primaries.map(({ entry }) => entry) as [UpstreamEntry, ...UpstreamEntry[]];
  const resolver = new RepositoryResolver(fallback, extra);

  const cacheLogger = logger.child({ module: 'cache' });
  const { upstream } = config;
  const index = deps.index ?? noopIndexReporter;
  const links = new RepositoryLinks({ metadata, logger: cacheLogger });
  const stallTimeoutMs = upstream.headersTimeoutMs * (upstream.retries + 1) + upstream.connectTimeoutMs + upstream.bodyIdleTimeoutMs;
  // Peer fill: with the shared state, a peer secret and an address peers can reach this node at.
  const peerSecret = config.cluster.peerSecret;
  const peerClient =
    deps.shared !== undefined && peerSecret !== undefined
      ? new PeerClient({ nodeId: config.node.id, secret: peerSecret, connectTimeoutMs: peerStartMs, bodyIdleTimeoutMs: upstream.bodyIdleTimeoutMs, clock })
      : undefined;
  const peerLogger = logger.child({ module: 'peer-fill' });
  // The node's own secret (the peer secret, else the cluster primary's node-local one): warms and sibling workers.
  const nodeSecret = peerSecret ?? deps.localWarmSecret ?? newWarmSecret();
  const siblingClient =
    deps.siblings === true
      ? new PeerClient({ nodeId: config.node.id, secret: nodeSecret, connectTimeoutMs: peerStartMs, bodyIdleTimeoutMs: upstream.bodyIdleTimeoutMs, clock })
      : undefined;
  let siblingUrl: string | undefined;
  const blobs = new BlobService({
    links,
    store: blobStore,
    coordinator,
    observer,
    index,
    clock,
    cacheable: (size) => size === undefined || size <= config.cache.maxBytes * config.cache.lowWatermark,
    logger: cacheLogger,
    stallTimeoutMs,
    ...(siblingClient === undefined ? {} : { siblings: { client: siblingClient, url: () => siblingUrl, startTimeoutMs: peerStartMs } }),
    ...(peerClient !== undefined && deps.shared !== undefined
      ? {
          origin: new PeerFillOrigin({
            directory: deps.shared.directory,
            peers: peerClient,
            observer,
            logger: peerLogger,
            peerStartMs,
            peerIdleMs,
            followStartMs: stallTimeoutMs,
          }),
        }
      : {}),
  });
  const manifests = new ManifestService({
    links,
    blobs: blobStore,
    metadata,
    clock,
    observer,
    logger: cacheLogger,
    tagTtlMs: config.tags.ttlMs,
    revalidateTimeoutMs: config.tags.revalidateTimeoutMs,
    maxManifestBytes: config.manifests.maxBytes,
    index,
    ...(deps.shared !== undefined ? { sharedTags: deps.shared.tags } : {}),
    ...(peerClient !== undefined && deps.shared !== undefined
      ? { peers: new PeerManifests({ directory: deps.shared.directory, peers: peerClient, observer, logger: peerLogger, peerStartMs }) }
      : {}),
  });
  const passThrough = { clock, observer, logger: cacheLogger, ttlMs: config.tags.ttlMs, timeoutMs: upstream.headersTimeoutMs };
  const tagLists = new PassThroughCache<{ tags: string[] }>({ ...passThrough, kind: 'tags_list', notFound: 'NAME_UNKNOWN' });
  const referrers = new PassThroughCache<ReferrersResponse>({ ...passThrough, kind: 'referrers', notFound: 'MANIFEST_UNKNOWN' });
  const relayed = new RelayedAnswers(metadata);
  const referrersService = new ReferrersService({
    cache: referrers,
    relayed,
    manifests,
    logger: cacheLogger,
    maxIndexBytes: config.manifests.maxBytes,
  });
  const catalog = new CatalogService(
    metadata,
    resolver.entries.map((entry) => ({ upstreamKey: entry.host, prefix: entry === fallback ? '' : `${entry.host}/` })),
  );

  const access = await createAccessControl(config.auth, {
    resolver,
    primaries: new Map(primaries.map(({ entry, forClients }) => [entry.host, forClients])),
    defaultUpstream: fallback.host,
    clock,
    logger: logger.child({ module: 'auth' }),
  });
  const registry = new RegistryRoutes({
    resolver,
    access,
    audit: logger.child({ module: 'audit' }),
    blobs,
    manifests,
    tagLists,
    referrers: referrersService,
    catalog,
    relayed,
    onBlobBytes: (source, bytes) => metrics.servedBytes.inc({ source }, bytes),
    unknownNamespaces: new UnknownNamespaces(logger.child({ module: 'routing' })),
  });
  const draining = deps.draining ?? (() => false);
  const connectionStats = new ConnectionStats();
  const cluster = deps.cluster ?? {
    metrics: () => metrics.registry.metrics(),
    connections: () => Promise.resolve(connectionStats.snapshot()),
    workers: () => ({ up: 1, configured: 1 }),
  };
  const coordination = deps.cluster?.coordination;
  const clustered = config.etcd.endpoints.length > 0 || config.redis.url !== undefined;
  const checks = {
    ...(coordination && clustered ? { cluster: coordinationCheck(coordination) } : {}),
    cache_dir: cacheDirWritable(layout.root),
    workers: workersUp(cluster.workers),
    cache_writes: recentWriteFailures(() => deps.cluster?.writeFailures?.last() ?? lastWriteFailure, clock, 60_000),
    primary: primaryReachable(() => upstreamStatus.outages()),
    circuit_breakers: circuitBreakers(() => primaries.map(({ entry, protection }) => ({ host: entry.host, state: protection.breaker.state }))),
  };
  const ops = new OpsRoutes({
    health: () => runHealthChecks(checks, draining),
    metrics: async () => ({ contentType: metrics.registry.contentType, body: await cluster.metrics() }),
    connections: cluster.connections,
  });
  const pins = new PinResolver(resolver, manifests, blobs);
  const resolvePin = (reference: string): Promise<Digest[]> => pins.resolve(reference, AbortSignal.timeout(10 * 60_000));
  const admin = new AdminRoutes(config.admin.token, {
    admin: deps.admin ?? (() => Promise.reject(new RegistryError('UNSUPPORTED', 'this process has no cache index owner'))),
    resolvePin,
  });
  // In a worker the cluster primary answers; a process on its own answers for itself, standalone.
  const clusterStatus =
    deps.cluster?.status ??
    standaloneClusterStatus({ config, clock, health: () => runHealthChecks(checks, draining), draining, metrics: () => metrics.registry.metrics() });
  const adminToken = new AdminToken(config.admin.token, clock);
  const clusterRoutes = new ClusterRoutes(adminToken, clusterStatus);
  // The status page: in a worker the cluster primary holds the node's pull activity; on its own, this process does.
  let statusData: () => Promise<StatusPageData>;
  let pullRecorder: PullRecorder;
  if (deps.cluster?.statusPage !== undefined && deps.cluster.pulls !== undefined) {
    statusData = deps.cluster.statusPage;
    pullRecorder = new PullRecorder(deps.cluster.pulls, clock);
    pullRecorder.start();
  } else {
    const source = new StatusPageSource({
      nodeId: config.node.id,
      maxBytes: config.cache.maxBytes,
      showUsers: config.auth.mode !== 'none',
      clock,
      logger,
      status: async () => (await clusterStatus()) as ClusterStatus,
      metrics: () => metrics.registry.metrics(),
    });
    statusData = () => source.data();
    pullRecorder = new PullRecorder((batch) => source.pulls(batch), clock, 0);
  }
  const statusPage = new StatusPageRoutes({ token: adminToken, nodeId: config.node.id, data: statusData, logger: logger.child({ module: 'status-page' }) });
  const warmer = new CacheImageWarmer({
    targets: resolver,
    manifests,
    blobs,
    logger: logger.child({ module: 'prefetch' }),
    onResult: (result) => countWarm(metrics, result),
  });
  const mediaType = async (digest: Digest): Promise<string | undefined> => (await metadata.getManifestMeta(digest))?.mediaType;
  const peer = new PeerRoutes({
    secret: peerSecret,
    clock,
    blobs,
    mediaType,
    warm: { warmer, secret: nodeSecret, upstreamOf: (host) => resolver.keyOf(host) },
    ...(deps.cluster?.retentionSweep === undefined ? {} : { retention: { sweep: deps.cluster.retentionSweep } }),
  });
  const prefetch = new PrefetchRoutes({ token: adminToken, warmer, routing: resolver });
  const prefetchJobs = new PrefetchJobRoutes(
    adminToken,
    deps.cluster?.prefetch ?? (() => Promise.reject(new RegistryError('UNSUPPORTED', 'prefetch jobs run in the cluster primary; this process has none'))),
  );
  const handler = createRequestHandler({
    registry,
    ops,
    admin,
    cluster: clusterRoutes,
    peer,
    prefetchJobs,
    prefetch,
    statusPage,
    onPull: (event) => pullRecorder.record(event),
    metrics,
    draining,
    logger: logger.child({ module: 'http' }),
  });
  const server = createServer(handler, { ...config.server, logger: logger.child({ module: 'http' }) });
  connectionStats.attach(server);
  const siblingServer =
    siblingClient === undefined
      ? undefined
      : createServer(
          createRequestHandler({
            registry,
            ops,
            admin,
            peer: new PeerRoutes({ secret: nodeSecret, clock, blobs, mediaType }),
            peerOnly: true,
            metrics,
            draining,
            logger: logger.child({ module: 'sibling' }),
          }),
          { ...config.server, tlsCert: undefined, tlsKey: undefined, logger: logger.child({ module: 'sibling' }) },
        );

  return {
    handler,
    forget(scope) {
      blobs.forget(scope);
      manifests.forget(scope);
      links.forget(scope);
      tagLists.forget(scope);
      referrers.forget(scope);
    },
    resolvePin,
    warmer,
    warmSecret: nodeSecret,
    metrics,
    connectionStats,
    server,
    blobStore,
    listen(port = config.server.port, host = config.server.host) {
      return new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve((server.address() as AddressInfo).port);
        });
      }).then(async (bound) => {
        if (siblingServer !== undefined) siblingUrl = await listenSibling(siblingServer, logger);
        return bound;
      });
    },
    async close({ graceMs = 0 } = {}) {
      siblingUrl = undefined;
      await Promise.all([closeServer(server, graceMs), siblingServer?.listening ? closeServer(siblingServer, graceMs) : undefined]);
      access.close();
      pullRecorder.stop();
      // Upstream and peer pools close gracefully, but never hold the shutdown past a short bound.
      await Promise.race([
        Promise.all([...resolver.entries.map((entry) => entry.upstream.close()), peerClient?.close(), siblingClient?.close()]),
        new Promise((resolve) => setTimeout(resolve, 2_000).unref()),
      ]);
    },
  };
}

/** Stops accepting, lets in-flight responses finish for up to `graceMs`, then cuts what is left. */
function closeServer(server: Server, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const cut = setTimeout(() => server.closeAllConnections(), graceMs);
    // Keep-alive connections become idle as their last response ends; close them as they do.
    const sweep = setInterval(() => server.closeIdleConnections(), 100);
    server.close(() => {
      clearTimeout(cut);
      clearInterval(sweep);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/**
 * The sibling endpoint on a loopback port of this worker's own (`exclusive`:
 * not shared with the other workers through the cluster primary); its URL,
 * or undefined when it cannot listen (the other workers then fetch their own).
 */
function listenSibling(server: Server, logger: Logger): Promise<string | undefined> {
  return new Promise((resolve) => {
    const failed = (err: Error): void => {
      logger.warn({ err: err.message }, 'cannot listen on a loopback port for sibling workers; blobs streamed through are not shared with them');
      resolve(undefined);
    };
    server.once('error', failed);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      server.off('error', failed);
      server.on('error', (err) => logger.error({ err }, 'sibling endpoint error'));
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    });
  });
}
