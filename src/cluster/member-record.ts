/**
 * What a replica publishes about itself in etcd (`<cluster>/members/<node-id>`,
 * under its lease), what the leader keeps about every replica it has seen
 * (`<cluster>/status`), and how both are signed with the peer secret.
 *
 * Values read from etcd are untrusted text: they become records only through
 * the parsers here, and a record whose signature does not verify with this
 * replica's secret is reported as such, never believed.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export type HealthStatus = 'ok' | 'degraded' | 'failing';

/** A replica's own account of itself, refreshed every heartbeat. */
export interface MemberRecord {
  node_id: string;
  /** Random per process start: tells a restarted node from a second node with the same id. */
  instance: string;
  advertise_url: string;
  version: string;
  /** ISO time the node started. */
  started_at: string;
  /** ISO time this record was written. */
  heartbeat_at: string;
  health: {
    status: HealthStatus;
    /** Human-readable problems ("cache writes failing (ENOSPC)"); empty when ok. */
    problems: string[];
    draining: boolean;
    /** The cache's disk is failing (unwritable directory, failing writes). */
    disk_failing: boolean;
    /** Redis unreachable from this node (absent: no Redis configured). */
    redis_up?: boolean;
  };
  cache_bytes: number;
  /** The replica's disk budget (`cache.maxBytes`); absent in records of older versions. */
  cache_max_bytes?: number;
  /** Blob hits ÷ blob lookups since the node started; 0 before the first lookup. */
  hit_ratio: number;
  fills_in_flight: number;
}

/** The leader's lasting memory of every replica, so one that died is still reported. */
export interface KnownReplica {
  advertise_url: string;
  version: string;
  started_at: string;
  last_heartbeat: string;
}

export interface ClusterAggregate {
  /** The leader that wrote it. */
  leader: string;
  updated_at: string;
  replicas: Record<string, KnownReplica>;
}

export type Verified<T> = { verified: true; value: T } | { verified: false; reason: string; value?: T };

function signature(secret: string, body: string): Buffer {
  return createHmac('sha256', secret).update('outpost-cluster-record\n').update(body).digest();
}

/** The JSON text stored in etcd: the record with an HMAC-SHA256 of its own JSON. */
export function signRecord(secret: string, record: object): string {
  const body = JSON.stringify(record);
  return JSON.stringify({ ...record, sig: signature(secret, body).toString('hex') });
}

/** Parses and verifies signed JSON; `parse` turns the unsigned object into a T or throws. */
export function verifyRecord<T>(secret: string, text: string, parse: (value: Record<string, unknown>) => T): Verified<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { verified: false, reason: 'not JSON' };
  }
  if (!isObject(raw)) return { verified: false, reason: 'not a JSON object' };
  const { sig, ...rest } = raw;
  let value: T | undefined;
  try {
    value = parse(rest);
  } catch (err) {
    return { verified: false, reason: (err as Error).message };
  }
  if (typeof sig !== 'string' || !/^[0-9a-f]{64}$/.test(sig)) return { verified: false, reason: 'unsigned', value };
  // JSON.parse keeps key order, so the body re-serialises exactly as it was signed.
  const expected = signature(secret, JSON.stringify(rest));
  if (!timingSafeEqual(expected, Buffer.from(sig, 'hex'))) {
    return { verified: false, reason: 'signature does not verify (a different OUTPOST_PEER_SECRET?)', value };
  }
  return { verified: true, value };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: Record<string, unknown>, key: string, max = 2048): string {
  const v = value[key];
  if (typeof v !== 'string' || v.length > max) throw new Error(`${key} is not a string`);
  return v;
}

function num(value: Record<string, unknown>, key: string): number {
  const v = value[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`${key} is not a non-negative number`);
  return v;
}

function time(value: Record<string, unknown>, key: string): string {
  const v = str(value, key, 64);
  if (Number.isNaN(Date.parse(v))) throw new Error(`${key} is not a time`);
  return v;
}

const healthStatuses: ReadonlySet<string> = new Set(['ok', 'degraded', 'failing']);

export function parseMemberRecord(value: Record<string, unknown>): MemberRecord {
  const health = value['health'];
  if (!isObject(health)) throw new Error('health is not an object');
  const status = health['status'];
  if (typeof status !== 'string' || !healthStatuses.has(status)) throw new Error('health.status is invalid');
  const problems = health['problems'];
  if (!Array.isArray(problems) || !problems.every((p) => typeof p === 'string' && p.length <= 1024) || problems.length > 32) {
    throw new Error('health.problems is invalid');
  }
  const redisUp = health['redis_up'];
  return {
    node_id: str(value, 'node_id', 253),
    instance: str(value, 'instance', 64),
    advertise_url: str(value, 'advertise_url'),
    version: str(value, 'version', 64),
    started_at: time(value, 'started_at'),
    heartbeat_at: time(value, 'heartbeat_at'),
    health: {
      status: status as HealthStatus,
      problems: problems as string[],
      draining: health['draining'] === true,
      disk_failing: health['disk_failing'] === true,
      ...(typeof redisUp === 'boolean' ? { redis_up: redisUp } : {}),
    },
    cache_bytes: num(value, 'cache_bytes'),
    ...(value['cache_max_bytes'] === undefined ? {} : { cache_max_bytes: num(value, 'cache_max_bytes') }),
    hit_ratio: Math.min(num(value, 'hit_ratio'), 1),
    fills_in_flight: num(value, 'fills_in_flight'),
  };
}

export function parseAggregate(value: Record<string, unknown>): ClusterAggregate {
  const replicas = value['replicas'];
  if (!isObject(replicas)) throw new Error('replicas is not an object');
  const parsed: Record<string, KnownReplica> = {};
  for (const [id, entry] of Object.entries(replicas)) {
    if (!isObject(entry)) throw new Error(`replicas.${id} is not an object`);
    parsed[id] = {
      advertise_url: str(entry, 'advertise_url'),
      version: str(entry, 'version', 64),
      started_at: time(entry, 'started_at'),
      last_heartbeat: time(entry, 'last_heartbeat'),
    };
  }
  return { leader: str(value, 'leader', 253), updated_at: time(value, 'updated_at'), replicas: parsed };
}
