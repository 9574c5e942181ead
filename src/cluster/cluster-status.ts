/**
 * `GET /api/v0/meta/cluster_status`, computed from what a node knows: its own
 * fresh record, the members and leader etcd lists (or the last list it could
 * read), and the leader's aggregate of every replica seen lately.
 *
 *   {"replica_health": {"n1": "OK", "n2": "unreachable: no heartbeat for 7s"},
 *    "current_issues": [{"critical": false, "description": "replica n2 has no heartbeat for 7s"}],
 *    "leader": "n1",
 *    "replicas": {"n1": {"advertise_url": ..., "version": ..., "uptime_seconds": ...,
 *                        "cache_bytes": ..., "hit_ratio": ..., "last_heartbeat": "...Z"}}}
 *
 * `replicas` lists the live members; `replica_health` also lists replicas
 * that stopped heartbeating without leaving (until forgotten after a day).
 * A replica is "OK", "degraded: <why>", "unreachable: no heartbeat for Ns",
 * or "unknown: ..." while this node cannot reach etcd. Pure: no I/O.
 */
import type { ClusterAggregate, MemberRecord, Verified } from './member-record.ts';

export interface ClusterIssue {
  critical: boolean;
  description: string;
}

export interface ReplicaSummary {
  advertise_url: string;
  version: string;
  uptime_seconds: number;
  cache_bytes: number;
  /** The replica's disk budget; absent when its record predates it. */
  cache_max_bytes?: number;
  hit_ratio: number;
  last_heartbeat: string;
}

export interface ClusterStatus {
  replica_health: Record<string, string>;
  current_issues: ClusterIssue[];
  leader: string | null;
  replicas: Record<string, ReplicaSummary>;
}

export interface StatusInputs {
  now: number;
  /** This node's record as of now. */
  self: MemberRecord;
  /** Absent: standalone (no etcd configured). */
  etcd?: {
    up: boolean;
    since: number;
    error: string | undefined;
    joined: boolean;
    joinProblem: string | undefined;
    /** The last view read from etcd, if any. */
    view:
      | {
          readAt: number;
          members: ReadonlyArray<{ id: string; record: Verified<MemberRecord> }>;
          leader: string | undefined;
          aggregate: ClusterAggregate | undefined;
          departed: ReadonlySet<string>;
        }
      | undefined;
  };
  /** Absent: no Redis configured. */
  redis?: { up: boolean; since: number; error: string | undefined };
  /** A live member whose record is older than this is "degraded: no status update". */
  staleAfterMs: number;
}

/** ISO time to the second, as operators read it. */
export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function seconds(ms: number): number {
  return Math.max(0, Math.round(ms / 1000));
}

function summary(record: MemberRecord, now: number): ReplicaSummary {
  return {
    advertise_url: record.advertise_url,
    version: record.version,
    uptime_seconds: seconds(now - Date.parse(record.started_at)),
    cache_bytes: record.cache_bytes,
    ...(record.cache_max_bytes === undefined ? {} : { cache_max_bytes: record.cache_max_bytes }),
    hit_ratio: Math.round(record.hit_ratio * 1000) / 1000,
    last_heartbeat: isoSeconds(Date.parse(record.heartbeat_at)),
  };
}

/** "OK" or "degraded: ..." from a replica's own account of its health. */
function healthOf(record: MemberRecord): string {
  if (record.health.draining) return 'degraded: draining (shutting down)';
  const problems = [...record.health.problems, ...(record.health.redis_up === false ? ['Redis unreachable'] : [])];
  if (record.health.status === 'ok' && problems.length === 0) return 'OK';
  return `degraded: ${problems.length > 0 ? problems.join('; ') : record.health.status}`;
}

/** What a replica's own record says is wrong; its Redis only when `redis` (this node reports its own Redis itself). */
function replicaIssues(id: string, record: MemberRecord, redis: boolean): ClusterIssue[] {
  const issues: ClusterIssue[] = [];
  const problems = record.health.problems.join('; ');
  if (record.health.disk_failing) issues.push({ critical: false, description: `replica ${id}'s disk is failing: ${problems}` });
  else if (record.health.status !== 'ok' && !record.health.draining) issues.push({ critical: false, description: `replica ${id} is degraded: ${problems || record.health.status}` });
  if (redis && record.health.redis_up === false) issues.push({ critical: false, description: `replica ${id} cannot reach Redis` });
  return issues;
}

export function buildClusterStatus(inputs: StatusInputs): ClusterStatus {
  const { now, self } = inputs;
  const selfId = self.node_id;
  const health: Record<string, string> = {};
  const replicas: Record<string, ReplicaSummary> = {};
  const issues: ClusterIssue[] = [];

  const { redis } = inputs;
  if (redis !== undefined && !redis.up) {
    issues.push({
      critical: false,
      description: `Redis unreachable from ${selfId} since ${isoSeconds(redis.since)}${redis.error ? ` (${redis.error})` : ''}: per-node behaviour until it answers`,
    });
  }

  const { etcd } = inputs;
  if (etcd === undefined) {
    health[selfId] = healthOf(self);
    replicas[selfId] = summary(self, now);
    issues.unshift(...replicaIssues(selfId, self, false));
    return { replica_health: health, current_issues: issues, leader: selfId, replicas };
  }

  const view = etcd.view;
  const live = new Map<string, Verified<MemberRecord>>();
  for (const member of view?.members ?? []) live.set(member.id, member.record);
  const published = live.get(selfId);
  // This node's own entry: its current figures, with the last heartbeat etcd holds (or held, when unreachable).
  const selfRecord: MemberRecord = { ...self, heartbeat_at: published?.verified ? published.value.heartbeat_at : self.heartbeat_at };
  live.set(selfId, { verified: true, value: selfRecord });

  if (!etcd.up) {
    issues.unshift({
      critical: true,
      description:
        `etcd unreachable from ${selfId} since ${isoSeconds(etcd.since)}${etcd.error ? ` (${etcd.error})` : ''}: ` +
        `no leader duties; replicas as last seen ${view ? isoSeconds(view.readAt) : 'never'}`,
    });
  } else if (etcd.joinProblem !== undefined) {
    issues.unshift({ critical: true, description: `${selfId} is not a member of the replica set: ${etcd.joinProblem}` });
  } else if (!etcd.joined) {
    issues.push({ critical: false, description: `${selfId} is (re)joining the replica set` });
  }
  const leader = etcd.up ? (view?.leader ?? null) : null;
  if (etcd.up && leader === null) issues.unshift({ critical: true, description: 'no leader elected' });

  for (const id of [...live.keys()].sort()) {
    const record = live.get(id)!;
    if (!record.verified) {
      health[id] = `degraded: membership record ${record.reason}`;
      issues.push({ critical: true, description: `replica ${id}'s membership record does not verify: ${record.reason}` });
      continue;
    }
    const r = record.value;
    replicas[id] = summary(r, now);
    if (!etcd.up && id !== selfId) {
      health[id] = `unknown: etcd unreachable from ${selfId} (${healthOf(r)} as of ${isoSeconds(view?.readAt ?? now)})`;
      continue;
    }
    const age = now - Date.parse(r.heartbeat_at);
    if (id !== selfId && age > inputs.staleAfterMs) {
      health[id] = `degraded: no status update for ${seconds(age)}s`;
      issues.push({ critical: false, description: `replica ${id} has not updated its status for ${seconds(age)}s` });
      continue;
    }
    health[id] = healthOf(r);
    issues.push(...replicaIssues(id, r, id !== selfId));
  }

  for (const [id, known] of Object.entries(view?.aggregate?.replicas ?? {})) {
    if (live.has(id) || view?.departed.has(id)) continue;
    const silent = seconds(now - Date.parse(known.last_heartbeat));
    health[id] = `unreachable: no heartbeat for ${silent}s`;
    issues.push({ critical: false, description: `replica ${id} has no heartbeat for ${silent}s` });
  }
  const sorted = Object.fromEntries(Object.entries(health).sort(([a], [b]) => a.localeCompare(b)));
  return { replica_health: sorted, current_issues: issues, leader, replicas };
}
