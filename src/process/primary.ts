/**
 * The cluster primary: sweeps leftovers of an earlier run, forks the workers
 * and restarts any that dies (with backoff, logging the cause), brokers
 * host-wide fill coordination, and on SIGTERM tells every worker to drain and
 * waits for them (bounded); on SIGHUP it has them reload the HTTPS
 * certificate (tls-reload.ts). After an unclean shutdown it scrubs the cache in
 * the background (see layout.ts).
 *
 * It never exits while it should serve: not when every worker dies at once,
 * not between a death and the restart. It exits non-zero when it cannot
 * serve at all (a worker cannot listen: port taken, no permission), with one
 * line on stderr saying why, instead of restarting workers forever.
 */
import cluster, { type Worker } from 'node:cluster';
import { createServer as createNetServer } from 'node:net';
import type { Config } from '../config/types.ts';
import { FillBroker } from '../coordination/fill-broker.ts';
import { createLogger } from '../observability/logger.ts';
import { indexMetricsObserver, primaryMetrics } from '../observability/metrics.ts';
import { PrimaryOps } from './cluster-ops.ts';
import { systemClock, type PurgeScope } from '../cache/ports.ts';
import type { Digest } from '../registry/digest.ts';
import { DiskBlobStore } from '../storage/disk-blob-store.ts';
import { DiskMetadataStore } from '../storage/disk-metadata-store.ts';
import { CacheAdminService } from '../cache/cache-admin-service.ts';
import { CacheScrub } from '../cache/cache-scrub.ts';
import { EvictionService } from '../cache/eviction-service.ts';
import { PurgePlanner } from '../cache/purge-planner.ts';
import { DiskCrashMarkers } from '../storage/crash-state.ts';
import { DiskPinStore } from '../storage/disk-pin-store.ts';
import { SnapshotIndexPersistence } from '../storage/index-snapshot.ts';
import { DiskIngestLeftovers } from '../storage/ingest-leftovers.ts';
import { cacheLayout } from '../storage/layout.ts';
import { describeCannotListen, isCannotListen } from './supervision.ts';
import { workerConfigMessage } from './worker-config.ts';
import { workerEnv, workerForkSettings } from './worker-exec.ts';
import { WorkerSupervisor } from './worker-supervisor.ts';
import { newWarmSecret, warmSecretEnv } from './warm-secret.ts';
import { DuplicateNodeIdError } from '../cluster/duplicate-node-id-error.ts';
import { ClusterNode } from './cluster-node.ts';
import { StatusPageSource } from './status-page-source.ts';
import { reloadTlsOnSighup } from './tls-reload.ts';
import { readTlsPair } from '../config/tls-pair.ts';
import type { PrefetchJobs } from '../prefetch/prefetch-jobs.ts';
import type { ClusterStatus } from '../cluster/cluster-status.ts';
import { RegistryError } from '../registry/errors.ts';
import { RetentionPolicy } from '../cache/retention-policy.ts';
import { CronSchedule } from '../prefetch/cron-schedule.ts';
import { RetentionSweeps } from '../prefetch/retention-sweeps.ts';
import { realTimers } from '../prefetch/scheduler.ts';

/** How the primary ends: 0 after a requested stop, 1 when forced or on a failure, 3 when the node cannot listen (2, an invalid configuration, comes from main). */
export const exitCodes = { stopped: 0, failed: 1, cannotListen: 3 } as const;

/** Binds and releases the port once; returns the error code when that fails for a reason no restart fixes. */
async function probeListen(host: string, port: number): Promise<string | undefined> {
  const probe = createNetServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen({ host, port }, resolve);
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return isCannotListen(code) ? code : undefined;
  }
  await new Promise((resolve) => probe.close(resolve));
  return undefined;
}

export async function runPrimary(config: Config): Promise<void> {
  const logger = createLogger(config.log.level, { node: config.node.id, role: 'primary' });
  // First thing: Node's default for SIGHUP is to exit, and `systemctl reload` must never stop the node.
  let tlsWorkers: () => Worker[] = () => [];
  let tlsServed: (notAfter: Date) => void = () => undefined;
  const tls = reloadTlsOnSighup({
    files: config.server,
    logger: logger.child({ module: 'tls' }),
    workers: () => tlsWorkers().filter((w) => w.isConnected()).map((w) => ({ id: w.id, send: (message) => w.send(message) })),
    onReloaded: (pair) => tlsServed(pair.notAfter),
  });
  // Before touching the cache dir: a second node started by mistake on a taken port must not sweep the first one's fills.
  const listenProblem = await probeListen(config.server.host, config.server.port);
  if (listenProblem) {
    const message = describeCannotListen(config.server.host, config.server.port, listenProblem);
    logger.fatal({ code: listenProblem }, message);
    process.stderr.write(`outpost: ${message}\n`);
    process.exit(exitCodes.cannotListen);
  }
  const layout = cacheLayout(config.cache.dir);
  const metrics = primaryMetrics();
  tlsServed = (notAfter) => metrics.tlsCertificateExpiry.set(notAfter.getTime() / 1000);
  const startPair = config.server.tlsCert && config.server.tlsKey ? readTlsPair(config.server.tlsCert, config.server.tlsKey) : undefined;
  if (startPair?.ok) tlsServed(startPair.pair.notAfter);
  // Called only once serving starts (owner is set by then).
  const dropCorrupt = (digest: Digest): void => {
    metrics.corruptFiles.inc({ check: 'digest' });
    void owner.dropped(digest);
  };
  const store = new DiskBlobStore(layout, { onCorrupt: dropCorrupt });
  await store.init();
  const swept = await store.sweep();
  if (swept > 0) logger.info({ swept }, 'removed leftover temp files');

  const broker = new FillBroker({
    logger: logger.child({ module: 'fills' }),
    // A worker that dies mid-fill leaves no partial file behind until the next restart.
    discard: (partialPath) => store.discardPartial(partialPath),
  });
  metrics.workersConfigured.set(config.workers);
  // Set once the replica set is wired: what leaves the disk leaves the location index too.
  let contentRemoved: (digests: Digest[]) => void = () => undefined;
  // The host's eviction policy (cache/) over its disk adapters (storage/); workers feed it index batches.
  const markers = new DiskCrashMarkers(layout);
  const owner = new EvictionService({
    files: store,
    persistence: new SnapshotIndexPersistence(layout),
    markers,
    leftovers: new DiskIngestLeftovers(layout),
    clock: systemClock,
    logger: logger.child({ module: 'index' }),
    observer: indexMetricsObserver(metrics),
    maxBytes: config.cache.maxBytes,
    highWatermark: config.cache.highWatermark,
    lowWatermark: config.cache.lowWatermark,
    retentionMs: config.cache.retentionMs,
    // With a schedule (the leader's) or per-repository rules, sweeps are run from here (below), not on the index's own timer.
    periodicRetention: config.cache.retentionSchedule === undefined && config.cache.retentionRules.length === 0,
    onRemoved: (digests) => contentRemoved(digests),
  });
  // Before any worker starts: they read which blobs are unverified from index/unverified-before.
  const loaded = await owner.load();
  store.unverifiedBefore = loaded.unverifiedBefore;
  owner.start();
  const scrub = new CacheScrub({
    store,
    entries: () => owner.index.entries(),
    bytesPerSecond: config.cache.scrubRate,
    logger: logger.child({ module: 'scrub' }),
    onVerified: (digest, size) => owner.verifiedSize(digest, size),
    onComplete: async () => {
      if (store.unverifiedBefore === undefined) return;
      await markers.clearUnverifiedBefore();
      store.unverifiedBefore = undefined;
      logger.info({}, 'every cached blob is verified');
    },
  });
  if (loaded.unverifiedBefore !== undefined && config.cache.scrubRate > 0) scrub.start('unverified');
  const upstreamKeys = [config.upstream.host, ...config.registries.map((r) => r.host)];
  const metadata = new DiskMetadataStore(layout);
  const purgePlanner = new PurgePlanner({ blobs: store, metadata, upstreamKeys });
  // Retention: cache.retention, refined per repository by cache.retentionRules; pins win. One sweep at a time.
  const retentionPolicy = new RetentionPolicy(config.cache.retentionMs, config.cache.retentionRules);
  let sweeping: Promise<{ evicted: number; bytes: number }> | undefined;
  const sweepRetention = (): Promise<{ evicted: number; bytes: number }> =>
    (sweeping ??= owner
      .sweepRetentionOf(async (entries, pinned) =>
        retentionPolicy.plan(entries, {
          now: systemClock.now(),
          pinned,
          referencedBy: retentionPolicy.hasRules ? await purgePlanner.referencingRepositories() : new Map(),
        }),
      )
      .finally(() => {
        sweeping = undefined;
      }));
  if (config.cache.retentionSchedule === undefined && retentionPolicy.hasRules) {
    // No schedule: each node sweeps on its own, as with cache.retention alone (every tenth of the shortest period, 1 s..1 h).
    const every = Math.min(Math.max(retentionPolicy.shortestMs / 10, 1_000), 3_600_000);
    setInterval(() => void sweepRetention().catch((err: unknown) => logger.warn({ err: String(err) }, 'retention sweep failed')), every).unref();
  }
  const admin = new CacheAdminService({
    evictions: owner,
    planner: purgePlanner,
    metadata,
    pins: new DiskPinStore(layout),
    upstreamKeys,
    configPins: config.cache.pins,
    scrub,
  });
  await admin.loadPins();
  // Prefetch jobs (set once the node is in its replica set): every node keeps their schedule; only the leader runs them.
  let prefetch: PrefetchJobs | undefined;
  /** cluster_status, with a current issue for each job whose last run failed or left images cold (from the run store: the same from any replica). */
  const clusterStatus = async (): Promise<ClusterStatus> => {
    const status = await clusterNode.status();
    const issues = await prefetch?.issues().catch((err: unknown) => {
      logger.debug({ err: String(err) }, 'could not read the prefetch runs for cluster_status');
      return [];
    });
    return issues === undefined || issues.length === 0 ? status : { ...status, current_issues: [...status.current_issues, ...issues] };
  };
  const ops = new PrimaryOps(
    metrics,
    config.workers,
    {
      admin: async (request) => {
        const value = await admin.handle(request);
        if (typeof value !== 'object' || value === null || !('scope' in value)) return value;
        // A purge is done only once every worker has forgotten it from memory too.
        const { scope, ...result } = value as { scope: PurgeScope };
        await ops.forgetEverywhere(scope);
        return result;
      },
      indexBatch: (batch) => {
        owner.apply(batch);
        clusterNode.cached(batch.added.map(([digest]) => digest));
      },
      corrupt: dropCorrupt,
      clusterStatus: () => clusterStatus(),
      retentionSweep: () => sweepRetention(),
      prefetch: async (request) => {
        if (request.op === 'list') return prefetch === undefined ? [] : prefetch.list();
        if (prefetch === undefined) throw new RegistryError('JOB_UNKNOWN', 'no prefetch job is configured');
        return prefetch.requestRun(request.job);
      },
      statusPage: (): Promise<unknown> => statusPage.data(),
      pulls: (batch) => statusPage.pulls(batch),
    },
    { logger: logger.child({ module: 'upstream' }) },
  );
  let clusterNode: ClusterNode;
  const statusPage: StatusPageSource = new StatusPageSource({
    nodeId: config.node.id,
    maxBytes: config.cache.maxBytes,
    showUsers: config.auth.mode !== 'none',
    clock: systemClock,
    logger: logger.child({ module: 'status-page' }),
    status: () => clusterStatus(),
    metrics: (): Promise<string> => ops.nodeMetricsText(),
    shared: () => clusterNode?.pullActivity,
    jobs: () => (prefetch === undefined ? Promise.resolve([]) : prefetch.list()),
  });
  try {
    clusterNode = await ClusterNode.start({
      config,
      logger,
      metrics,
      clock: systemClock,
      local: {
        cacheBytes: () => owner.index.totalBytes,
        fillsInFlight: () => broker.inflight,
        workers: () => ({ up: Object.values(cluster.workers ?? {}).filter((w) => w?.isConnected()).length, configured: config.workers }),
        cacheWritable: () => ops.writable(60_000),
        workerMetrics: () => ops.nodeMetricsText(),
        cachedDigests: () => [...owner.index.entries()].map((entry) => entry.digest),
      },
      onChange: (state) => {
        ops.coordination(state);
        prefetch?.leadershipChanged(state.etcd?.leading ?? true);
      },
    });
  } catch (err) {
    if (!(err instanceof DuplicateNodeIdError)) throw err;
    logger.fatal({ nodeId: err.nodeId, holder: err.holder }, 'duplicate node id');
    process.stderr.write(`outpost: cannot start: ${err.message}\n`);
    process.exit(1);
  }
  ops.coordination(clusterNode.coordination());
  statusPage.start();
  contentRemoved = (digests) => clusterNode.removed(digests);
  metrics.cacheWritable.set(1);
  setInterval(() => metrics.cacheWritable.set(ops.writable(60_000) ? 1 : 0), 1_000).unref();
  // Pins resolve in a worker (it has the upstream and the manifest service); tags that move move their pins.
  let pinsRequested = false;
  const refreshPins = (to?: Worker): void => {
    pinsRequested = ops.refreshPins(admin.pinnedReferences(), to) || pinsRequested;
  };
  setInterval(() => refreshPins(), Math.max(config.tags.ttlMs, 1_000)).unref();
  let stopping = false;

  // Standalone, the workers' warm endpoint takes this node-local secret (the peer secret otherwise).
  const localWarmSecret = newWarmSecret();
  if (config.prefetch.length > 0) {
    // Loaded only with jobs: the registry client and undici stay out of a primary that has none.
    const [{ createPrefetchJobs }, { registryCatalogFor }, { CatalogJobImages }, { HttpReplicaWarmClient }, { instrumentUpstream, instrumentListing }, { upstreamProtection }] = await Promise.all([
      import('./prefetch-node.ts'),
      import('../upstream/registry-catalog.ts'),
      import('../prefetch/job-images.ts'),
      import('../coordination/replica-warm-client.ts'),
      import('../observability/instrumented-upstream.ts'),
      import('./upstream-protection.ts'),
    ]);
    // The primary has no registry clients of its own: these list the primaries for the jobs (catalog, tags, image dates).
    const listing = registryCatalogFor(
      [config.upstream, ...config.registries],
      { clock: systemClock, logger: logger.child({ module: 'prefetch' }) },
      { maxManifestBytes: config.manifests.maxBytes },
      // Like a worker's requests: counted in outpost_upstream_requests_total (list_page, get_manifest, get_blob), on the
      // board of primaries that are down (/health), and through a breaker that shares its decisions with the workers'.
      (host, { upstream, listing }) => {
        const protection = upstreamProtection(host, config.upstreamProtection, { clock: systemClock, metrics, logger: logger.child({ module: 'upstream', upstream: host }), channel: ops.breakers });
        const counted = { metrics, status: ops.upstreamStatus };
        return { upstream: protection.protect(instrumentUpstream(upstream, counted), false), listing: protection.protectListing(instrumentListing(host, listing, counted)) };
      },
    );
    prefetch = await createPrefetchJobs({
      config,
      logger,
      clock: systemClock,
      metrics,
      replicaSet: clusterNode.replicaSetHandle,
      startedAt: clusterNode.started,
      source: new CatalogJobImages({
        catalog: listing.catalog,
        clock: systemClock,
        logger: logger.child({ module: 'prefetch' }),
      }),
      client: new HttpReplicaWarmClient({ nodeId: config.node.id, secret: config.cluster.peerSecret ?? localWarmSecret, clock: systemClock }),
    });
  }
  let prefetchStarted = false;
  // Scheduled retention: the leader (standalone: this node) has every live replica sweep.
  let retentionSweeps: RetentionSweeps | undefined;
  if (config.cache.retentionSchedule !== undefined) {
    const replicaSet = clusterNode.replicaSetHandle;
    const peerSecret = config.cluster.peerSecret;
    const [{ servingReplicas }, { ReplicaRetentionClient }] = await Promise.all([import('./prefetch-node.ts'), import('../coordination/replica-retention-client.ts')]);
    const remote = peerSecret === undefined ? undefined : new ReplicaRetentionClient({ nodeId: config.node.id, secret: peerSecret, clock: systemClock });
    const serving = replicaSet === undefined ? undefined : servingReplicas(config, replicaSet);
    retentionSweeps = new RetentionSweeps({
      schedule: new CronSchedule(config.cache.retentionSchedule, 'UTC'),
      clock: systemClock,
      timers: realTimers,
      isLeader: () => replicaSet?.state().leader ?? true,
      logger: logger.child({ module: 'retention' }),
      replicas: async () => (serving === undefined ? [] : (await serving()).live),
      selfId: config.node.id,
      local: sweepRetention,
      remote: (replica, signal) => {
        if (remote === undefined) return Promise.reject(new Error('no peer secret to ask other replicas with'));
        return remote.sweep(replica, signal);
      },
    });
    retentionSweeps.start();
  }
  const supervisor = new WorkerSupervisor({
    workers: config.workers,
    env: { ...workerEnv(process.env), [warmSecretEnv]: localWarmSecret },
    logger,
    onFork: (worker) => {
      worker.send(workerConfigMessage(config));
      const peer = { id: worker.id, send: (message: object) => worker.isConnected() && worker.send(message) };
      worker.on('message', (message: unknown) => {
        try {
          broker.handle(peer, message);
          clusterNode.handleWorkerMessage(peer, message);
          ops.handle(worker, message);
          tls.handle(worker.id, message);
          metrics.fillsCoordinated.set(broker.inflight);
        } catch (err) {
          logger.error({ err, workerId: worker.id }, 'could not handle a message from a worker');
        }
      });
      worker.on('listening', () => {
        ops.workerOnline();
        if (!prefetchStarted) {
          // Runs warm through the workers: nothing starts before one listens.
          prefetchStarted = true;
          prefetch?.start();
        }
        if (!pinsRequested) refreshPins(worker);
      });
    },
    onExit: (worker) => {
      broker.peerGone(worker.id);
      clusterNode.workerGone(worker.id);
      ops.workerExited(worker);
      void owner.workerExited(worker.process.pid).catch((err: unknown) => logger.warn({ err: String(err) }, 'could not account for a dead worker\'s partial files'));
    },
    onRestart: () => metrics.workerRestarts.inc(),
    onCannotListen: (message) => {
      stopping = true;
      logger.fatal({}, message);
      process.stderr.write(`outpost: ${message}\n`);
      for (const worker of supervisor.live()) worker.process.kill('SIGKILL');
      const bound = setTimeout(() => process.exit(exitCodes.cannotListen), 2_000);
      void owner.stop().finally(() => {
        clearTimeout(bound);
        process.exit(exitCodes.cannotListen);
      });
    },
  });

  tlsWorkers = () => supervisor.live();

  // An empty event loop while serving would end the process with code 0, which a supervisor
  // (systemd Restart=on-failure) does not restart. Never expected; a failure if it happens.
  process.on('beforeExit', () => {
    if (stopping) return;
    logger.fatal({}, 'the primary has nothing left to run while it should serve; exiting 1');
    process.exit(exitCodes.failed);
  });

  cluster.setupPrimary(workerForkSettings(process.execArgv));
  supervisor.start();
  logger.info({ workers: config.workers, port: config.server.port, upstream: config.upstream.url, cacheDir: config.cache.dir }, 'outpost started');

  const finish = (): void => {
    void Promise.all([owner.stop(), clusterNode.stop()]).finally(() => {
      logger.info({}, 'outpost stopped');
      process.exit(exitCodes.stopped);
    });
  };
  let forced = false;
  const stop = (): void => {
    if (stopping) {
      if (forced) return;
      forced = true;
      logger.warn({}, 'second signal: stopping now');
      for (const worker of supervisor.live()) worker.process.kill('SIGKILL');
      process.exit(exitCodes.failed);
    }
    stopping = true;
    const workers = supervisor.stop();
    logger.info({ workers: workers.length }, 'shutting down');
    void prefetch?.stop(); // runs in progress stop here; their records stay in progress for the next leader
    void retentionSweeps?.stop();
    void clusterNode.beginShutdown(); // leadership moves on now; membership (as draining) until the workers are gone
    // A signal, not an IPC message: a worker still starting up has no handler yet and simply ends.
    for (const worker of workers) worker.process.kill('SIGTERM');
    const bound = setTimeout(() => {
      logger.warn({}, 'workers did not stop in time; killing them');
      for (const worker of workers) worker.process.kill('SIGKILL');
      process.exit(exitCodes.failed);
    }, config.drainSeconds * 1000 + config.shutdownTimeoutMs + 10_000);
    bound.unref();
    let alive = workers.length;
    if (alive === 0) finish();
    for (const worker of workers) {
      worker.once('exit', () => {
        alive -= 1;
        if (alive === 0) finish();
      });
    }
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
