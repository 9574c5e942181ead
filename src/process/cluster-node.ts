/**
 * The node's place in its replica set, run by the cluster primary: wires the
 * etcd replica set (membership, election, fenced leader duties) and the Redis
 * connection to what the primary knows about its node (workers, cache size,
 * fills, pull statistics), keeps the cluster gauges, tells the workers (for
 * `/health`), and answers `cluster_status`.
 *
 * With Redis it also holds the node's part of the shared state: it answers
 * the workers' shared.* questions (fill locks, holders, shared tags) through
 * the shared-state broker, keeps this node's address and holdings in the
 * location index (announced again whenever Redis comes back, since a Redis
 * restarted empty has forgotten them), and withdraws what leaves the disk.
 *
 * Standalone (no etcd) the node is its own single-member replica set and its
 * own leader. Neither etcd nor Redis is ever waited for: both connect in the
 * background, and their loss only degrades the node.
 */
import type { Logger } from 'pino';
import type { Clock } from '../cache/ports.ts';
import { buildClusterStatus, type ClusterStatus } from '../cluster/cluster-status.ts';
import type { CoordinationState } from '../cluster/coordination-state.ts';
import type { HealthStatus, MemberRecord } from '../cluster/member-record.ts';
import { hitRatio, noPulls, pullStatsFromMetrics, type PullStats } from '../cluster/pull-stats.ts';
import type { Config } from '../config/types.ts';
import type { EtcdReplicaSet, ReplicaSetState } from '../coordination/etcd-replica-set.ts';
import type { RedisConnection } from '../coordination/redis-connection.ts';
import { publishPullStats } from '../coordination/redis-pull-stats.ts';
import { RedisBlobLocations } from '../coordination/redis-blob-locations.ts';
import { RedisFillLocks } from '../coordination/redis-fill-lock.ts';
import { RedisTagCache } from '../coordination/redis-tag-cache.ts';
import { RedisPullActivity } from '../coordination/redis-pull-activity.ts';
import { SharedStateBroker, type SharedStatePeer } from '../coordination/shared-state-broker.ts';
import type { Digest } from '../registry/digest.ts';
import { cacheDirWritable } from '../observability/health.ts';
import type { PrimaryMetrics } from '../observability/metrics.ts';
import { outpostVersion } from './version.ts';

/** What the cluster primary knows about its own node. */
export interface LocalNode {
  cacheBytes(): number;
  fillsInFlight(): number;
  workers(): { up: number; configured: number };
  /** Cache writes succeeded lately. */
  cacheWritable(): boolean;
  /** The workers' metrics, aggregated (Prometheus text). */
  workerMetrics(): Promise<string>;
  /** Every digest cached on this node (blobs and manifests), for the location index. */
  cachedDigests(): Iterable<Digest>;
}

export interface ClusterNodeOptions {
  config: Config;
  logger: Logger;
  metrics: PrimaryMetrics;
  clock: Clock;
  local: LocalNode;
  /** Called whenever connectivity, membership or leadership changes. */
  onChange: (state: CoordinationState) => void;
}

/** Periods derived from the lease TTL: heartbeats twice per TTL, calls bounded by half of it. */
export function clusterTimings(leaseTtlMs: number): { heartbeatMs: number; callTimeoutMs: number; staleAfterMs: number } {
  const clamp = (value: number, min: number, max: number): number => Math.min(Math.max(value, min), max);
  const heartbeatMs = clamp(leaseTtlMs / 2, 500, 5_000);
  const callTimeoutMs = clamp(leaseTtlMs / 2, 500, 3_000);
  return { heartbeatMs, callTimeoutMs, staleAfterMs: 3 * heartbeatMs + callTimeoutMs };
}

const redisConnectTimeoutMs = 2_000;
const redisCommandTimeoutMs = 500;
const redisPingIntervalMs = 1_000;
const statsIntervalMs = 5_000;
const statusReadTimeoutMs = 1_500;
/** The cluster fill lock lives this long unless renewed (every third of it): a dead filler's lock is gone within it. */
const fillLockTtlMs = 5_000;
/** This node's address in Redis is rewritten this often and lives this long: a dead node is no longer asked after it. */
const addressRefreshMs = 1_500;
const addressTtlMs = 5_000;
/** How often the leader (or a node with Redis and no etcd) removes the location entries of replicas whose address expired. */
const locationSweepMs = 10 * 60_000;

/** The etcd and Redis adapters, loaded only when configured: etcd3 and ioredis add ~37 MiB to a process. */
interface Adapters {
  etcd?: typeof import('../coordination/etcd-client.ts') & typeof import('../coordination/etcd-replica-set.ts');
  redis?: typeof import('../coordination/redis-connection.ts');
}

export class ClusterNode {
  private readonly startedAt: number;
  private readonly replicaSet: EtcdReplicaSet | undefined;
  private readonly redis: RedisConnection | undefined;
  private readonly timings: ReturnType<typeof clusterTimings>;
  private readonly dirCheck: () => Promise<{ status: HealthStatus }>;
  private pulls: PullStats = noPulls;
  private pullsAt = 0;
  private dirWritable = true;
  private draining = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly shared: SharedStateBroker | undefined;
  /** The location index, when peer fill is on (Redis and a peer secret). */
  private readonly locations: RedisBlobLocations | undefined;
  private addressTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping = false;
  /** The holdings were announced once: from then on, an expired address means announcing them again. */
  private announced = false;
  /** The replica set's pull activity (the status page), when Redis is configured. */
  readonly pullActivity: RedisPullActivity | undefined;

  private constructor(
    private readonly options: ClusterNodeOptions,
    adapters: Adapters,
  ) {
    const { config, logger, metrics, clock } = options;
    this.startedAt = clock.now();
    this.timings = clusterTimings(config.etcd.leaseTtlMs);
    const check = cacheDirWritable(config.cache.dir);
    this.dirCheck = async () => check();

    if (config.redis.url !== undefined && adapters.redis !== undefined) {
      this.redis = new adapters.redis.RedisConnection({
        url: config.redis.url,
        clusterName: config.cluster.name,
        connectTimeoutMs: redisConnectTimeoutMs,
        commandTimeoutMs: redisCommandTimeoutMs,
        pingIntervalMs: redisPingIntervalMs,
        logger: logger.child({ module: 'redis' }),
        clock,
        onChange: (state) => {
          metrics.redisUp.set(state.up ? 1 : 0);
          if (state.up) void this.announceAll();
          this.notify();
        },
      });
      metrics.redisUp.set(0);
      const redis = this.redis;
      this.pullActivity = new RedisPullActivity(redis, config.node.id);
      const locations = new RedisBlobLocations(redis, config.node.id);
      this.shared = new SharedStateBroker({
        redisUp: () => redis.state().up,
        locations,
        locks: new RedisFillLocks(redis, config.node.id, fillLockTtlMs),
        tags: new RedisTagCache(redis),
        lockTtlMs: fillLockTtlMs,
        tagTtlMs: config.tags.ttlMs,
        logger: logger.child({ module: 'shared-state' }),
      });
      if (config.cluster.peerSecret !== undefined && config.node.advertiseUrl !== undefined) this.locations = locations;
      else logger.info({}, 'peer fill off: it needs OUTPOST_PEER_SECRET and an advertise URL besides Redis; shared tags only');
    } else {
      metrics.registry.removeSingleMetric('outpost_redis_up');
    }

    if (config.etcd.endpoints.length > 0 && config.cluster.peerSecret !== undefined && adapters.etcd !== undefined) {
      this.replicaSet = new adapters.etcd.EtcdReplicaSet({
        client: adapters.etcd.createEtcdClient({ endpoints: config.etcd.endpoints, callTimeoutMs: this.timings.callTimeoutMs }),
        clusterName: config.cluster.name,
        nodeId: config.node.id,
        leaseTtlSeconds: Math.max(1, Math.round(config.etcd.leaseTtlMs / 1000)),
        peerSecret: config.cluster.peerSecret,
        heartbeatMs: this.timings.heartbeatMs,
        record: () => this.record(),
        logger: logger.child({ module: 'cluster' }),
        clock,
        onChange: (state) => {
          this.updateGauges(state);
          this.notify();
        },
      });
      metrics.etcdUp.set(0);
      metrics.clusterLeader.set(0);
      metrics.clusterMembers.set(0);
    } else {
      metrics.registry.removeSingleMetric('outpost_etcd_up');
      metrics.clusterLeader.set(1);
      metrics.clusterMembers.set(1);
    }
  }

  /**
   * Starts Redis and etcd in the background. When etcd answers now, the node
   * id is claimed first: rejects with DuplicateNodeIdError if a live replica
   * holds it.
   */
  static async start(options: ClusterNodeOptions): Promise<ClusterNode> {
    const { config } = options;
    const node = new ClusterNode(options, {
      ...(config.etcd.endpoints.length > 0
        ? { etcd: { ...(await import('../coordination/etcd-client.ts')), ...(await import('../coordination/etcd-replica-set.ts')) } }
        : {}),
      ...(config.redis.url !== undefined ? { redis: await import('../coordination/redis-connection.ts') } : {}),
    });
    node.redis?.start();
    if (node.locations !== undefined) {
      node.addressTimer = setInterval(() => void node.refreshAddress(), addressRefreshMs);
      node.addressTimer.unref();
      node.sweepTimer = setInterval(() => void node.sweepLocations(), locationSweepMs);
      node.sweepTimer.unref();
    }
    await node.replicaSet?.start();
    if (node.replicaSet !== undefined || node.redis !== undefined) {
      // Standalone, nobody reads the figures between two cluster_status requests: they are refreshed then.
      node.timer = setInterval(() => void node.refreshLocal(), Math.min(statsIntervalMs, node.timings.heartbeatMs));
      node.timer.unref();
      void node.refreshLocal();
    }
    return node;
  }

  /** The etcd replica set (membership, election, fenced writes); undefined standalone. For the leader's duties (prefetch). */
  get replicaSetHandle(): EtcdReplicaSet | undefined {
    return this.replicaSet;
  }

  /** When this node's process started (ms). */
  get started(): number {
    return this.startedAt;
  }

  /** For the workers' `/health`. */
  coordination(): CoordinationState {
    const state: CoordinationState = {};
    if (this.replicaSet !== undefined) {
      const rs = this.replicaSet.state();
      state.etcd = {
        up: rs.etcdUp,
        since: rs.etcdSince,
        error: rs.etcdError,
        joined: rs.joined,
        joinProblem: rs.joinProblem,
        leader: rs.leaderId,
        leading: rs.leader,
        members: rs.members,
      };
    }
    if (this.redis !== undefined) state.redis = this.redis.state();
    return state;
  }

  /** `GET /api/v0/meta/cluster_status`. */
  async status(): Promise<ClusterStatus> {
    if (this.timer === undefined) await this.refreshLocal();
    // Well inside the workers' IPC deadline: a slow etcd yields the last view, flagged by the etcd issue.
    const view = this.replicaSet === undefined ? undefined : await this.replicaSet.view(statusReadTimeoutMs);
    const rs = this.replicaSet?.state();
    return buildClusterStatus({
      now: this.options.clock.now(),
      self: { ...this.record(), instance: this.replicaSet?.instance ?? '', heartbeat_at: new Date(this.options.clock.now()).toISOString() },
      ...(rs === undefined
        ? {}
        : { etcd: { up: rs.etcdUp, since: rs.etcdSince, error: rs.etcdError, joined: rs.joined, joinProblem: rs.joinProblem, view } }),
      ...(this.redis === undefined ? {} : { redis: this.redis.state() }),
      staleAfterMs: this.timings.staleAfterMs,
    });
  }

  /** Shutdown begins: leadership goes to another replica now; membership stays (as draining) until {@link stop}. */
  async beginShutdown(): Promise<void> {
    this.draining = true;
    await this.replicaSet?.resign();
  }

  /** A worker's shared.* message (fill locks, holders, shared tags); false when it is not one. */
  handleWorkerMessage(peer: SharedStatePeer, message: unknown): boolean {
    return this.shared?.handle(peer, message) ?? false;
  }

  /** A worker exited: the fill locks it held go at once. */
  workerGone(workerId: number): void {
    this.shared?.peerGone(workerId);
  }

  /** Content landed on this node's disk: other replicas may fetch it from here. */
  cached(digests: readonly Digest[]): void {
    if (digests.length === 0 || this.locations === undefined || !this.redis?.state().up) return;
    this.locations.announce(digests).catch((err: unknown) => this.options.logger.debug({ err: String(err) }, 'could not announce cached content'));
  }

  /** Content left this node's disk (eviction, purge, corruption): nobody is sent here for it. */
  removed(digests: readonly Digest[]): void {
    if (digests.length === 0 || this.locations === undefined || !this.redis?.state().up) return;
    this.locations.withdraw(digests).catch((err: unknown) => this.options.logger.debug({ err: String(err) }, 'could not withdraw removed content'));
  }

  /** Leaves the replica set (lease revoked) and closes etcd and Redis. Bounded; never throws. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.addressTimer);
    clearInterval(this.sweepTimer);
    this.shared?.stop();
    if (this.locations !== undefined && this.redis?.state().up) await this.locations.leave().catch(() => undefined);
    await Promise.race([
      Promise.all([this.replicaSet?.stop(), this.redis?.stop()]).catch(() => undefined),
      new Promise((resolve) => setTimeout(resolve, 2 * this.timings.callTimeoutMs + 2_000).unref()),
    ]);
  }

  // ---------------------------------------------------------------------------

  private record(): Omit<MemberRecord, 'heartbeat_at' | 'instance'> {
    const { config, local } = this.options;
    return {
      node_id: config.node.id,
      advertise_url: config.node.advertiseUrl ?? '',
      version: outpostVersion(),
      started_at: new Date(this.startedAt).toISOString(),
      health: this.health(),
      cache_bytes: local.cacheBytes(),
      cache_max_bytes: config.cache.maxBytes,
      hit_ratio: hitRatio(this.pulls),
      fills_in_flight: local.fillsInFlight(),
    };
  }

  /** The node's health as the cluster primary sees it (the workers' `/health` adds the primary's reachability). */
  private health(): MemberRecord['health'] {
    const problems: string[] = [];
    let status: HealthStatus = 'ok';
    const worse = (to: HealthStatus): void => {
      if (to === 'failing' || status === 'ok') status = to;
    };
    const { up, configured } = this.options.local.workers();
    if (up === 0) {
      worse('failing');
      problems.push('no worker is running');
    } else if (up < configured) {
      worse('degraded');
      problems.push(`${up} of ${configured} workers running`);
    }
    const writesFailing = !this.options.local.cacheWritable();
    if (!this.dirWritable) {
      worse('failing');
      problems.push('cache directory not writable');
    } else if (writesFailing) {
      worse('degraded');
      problems.push('cache writes failing; streaming through uncached');
    }
    // Redis is reported through redis_up (cluster_status names it once, as its own issue).
    const redisUp = this.redis?.state().up;
    if (this.draining) worse('degraded');
    return {
      status,
      problems,
      draining: this.draining,
      disk_failing: !this.dirWritable || writesFailing,
      ...(redisUp === undefined ? {} : { redis_up: redisUp }),
    };
  }

  /** Publishes this node's address (peers fetch from it while it lives); false when it had expired meanwhile. */
  private async advertise(): Promise<boolean> {
    const url = this.options.config.node.advertiseUrl;
    if (this.locations === undefined || url === undefined || this.draining || !this.redis?.state().up) return true;
    return this.locations.advertise(url, addressTtlMs).catch((err: unknown) => {
      this.options.logger.debug({ err: String(err) }, 'could not publish this node\'s address');
      return true;
    });
  }

  /**
   * The address refresh. When the address had expired (this process stalled,
   * or Redis was out of reach without the connection noticing), the location
   * sweep may have removed this node's holdings: they are announced again.
   */
  private async refreshAddress(): Promise<void> {
    if ((await this.advertise()) || !this.announced) return;
    this.options.logger.info({}, 'this node\'s address in Redis had expired; announcing its cache again');
    await this.announceHoldings();
  }

  /** Redis is (back) up: it may have restarted empty, so the address and every holding are announced again. */
  private async announceAll(): Promise<void> {
    await this.advertise();
    await this.announceHoldings();
  }

  private async announceHoldings(): Promise<void> {
    if (this.locations === undefined) return;
    this.announced = true;
    const started = this.options.clock.now();
    try {
      const count = await this.locations.announce(this.options.local.cachedDigests());
      this.options.logger.info({ digests: count, ms: this.options.clock.now() - started }, 'announced this node\'s cache to the replica set');
    } catch (err) {
      this.options.logger.warn({ err: String(err) }, 'could not announce this node\'s cache to the replica set; announced again when Redis is back');
    }
  }

  /**
   * Removes the location entries of replicas whose address expired; on the
   * leader only (any node without etcd), one sweep at a time. Run every
   * `locationSweepMs` by a timer.
   */
  async sweepLocations(): Promise<void> {
    if (this.locations === undefined || this.sweeping || this.draining || !this.redis?.state().up) return;
    if (this.replicaSet !== undefined && !this.replicaSet.state().leader) return;
    this.sweeping = true;
    const started = this.options.clock.now();
    try {
      const { sets, removed } = await this.locations.sweep();
      this.options.metrics.locationEntriesSwept.inc(removed);
      const ms = this.options.clock.now() - started;
      if (removed > 0) this.options.logger.info({ sets, removed, ms }, 'removed the location entries of replicas whose address expired');
      else this.options.logger.debug({ sets, ms }, 'location sweep: nothing to remove');
    } catch (err) {
      this.options.logger.warn({ err: String(err) }, 'could not sweep the location entries of gone replicas; tried again at the next sweep');
    } finally {
      this.sweeping = false;
    }
  }

  private async refreshLocal(): Promise<void> {
    this.dirWritable = (await this.dirCheck()).status === 'ok';
    const now = this.options.clock.now();
    if (this.timer !== undefined && now - this.pullsAt < statsIntervalMs) return;
    await this.refreshPulls();
    if (this.redis?.state().up) {
      await publishPullStats(this.redis, this.options.config.node.id, this.pulls, now, 10 * statsIntervalMs).catch((err: unknown) => {
        this.options.logger.debug({ err: String(err) }, 'could not publish pull statistics to Redis');
      });
    }
  }

  private async refreshPulls(): Promise<void> {
    try {
      this.pulls = pullStatsFromMetrics(await this.options.local.workerMetrics());
      this.pullsAt = this.options.clock.now();
    } catch {
      // Workers busy or restarting: keep the last figures.
    }
  }

  private updateGauges(state: ReplicaSetState): void {
    const { metrics } = this.options;
    metrics.etcdUp.set(state.etcdUp ? 1 : 0);
    metrics.clusterLeader.set(state.leader ? 1 : 0);
    metrics.clusterMembers.set(state.members);
  }

  private notify(): void {
    this.options.onChange(this.coordination());
  }
}
