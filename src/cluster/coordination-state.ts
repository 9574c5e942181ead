/**
 * What the cluster primary knows about the node's place in the replica set,
 * as it tells its workers (for `/health`): etcd and Redis connectivity,
 * membership, leadership. Absent parts are not configured.
 */
import type { CheckResult } from '../observability/health.ts';

export interface CoordinationState {
  etcd?: {
    up: boolean;
    since: number;
    error: string | undefined;
    joined: boolean;
    joinProblem: string | undefined;
    leader: string | undefined;
    leading: boolean;
    members: number;
  };
  redis?: { up: boolean; since: number; error: string | undefined };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const optionalString = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/** Parses the state as it arrives over IPC; anything malformed is dropped. */
export function parseCoordinationState(value: unknown): CoordinationState | undefined {
  if (!isObject(value)) return undefined;
  const state: CoordinationState = {};
  const { etcd, redis } = value;
  if (isObject(etcd) && typeof etcd['up'] === 'boolean' && typeof etcd['since'] === 'number') {
    state.etcd = {
      up: etcd['up'],
      since: etcd['since'],
      error: optionalString(etcd['error']),
      joined: etcd['joined'] === true,
      joinProblem: optionalString(etcd['joinProblem']),
      leader: optionalString(etcd['leader']),
      leading: etcd['leading'] === true,
      members: typeof etcd['members'] === 'number' ? etcd['members'] : 0,
    };
  }
  if (isObject(redis) && typeof redis['up'] === 'boolean' && typeof redis['since'] === 'number') {
    state.redis = { up: redis['up'], since: redis['since'], error: optionalString(redis['error']) };
  }
  return state;
}

function since(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The `cluster` check of `/health`: degraded (never failing) when etcd or
 * Redis is unreachable or the node could not join; the node serves on.
 */
export function coordinationCheck(state: () => CoordinationState): () => CheckResult {
  return () => {
    const { etcd, redis } = state();
    const problems: string[] = [];
    const facts: string[] = [];
    if (etcd !== undefined) {
      if (!etcd.up) {
        problems.push(`etcd unreachable since ${since(etcd.since)}${etcd.error ? ` (${etcd.error})` : ''}; serving on, no leader duties`);
      } else if (etcd.joinProblem !== undefined) {
        problems.push(`not a member of the replica set: ${etcd.joinProblem}`);
      } else if (!etcd.joined) {
        problems.push('joining the replica set');
      } else if (etcd.leader === undefined) {
        problems.push('no leader elected');
      } else {
        facts.push(`${etcd.members} member${etcd.members === 1 ? '' : 's'}, leader ${etcd.leader}${etcd.leading ? ' (this node)' : ''}`);
      }
    }
    if (redis !== undefined) {
      if (!redis.up) problems.push(`Redis unreachable since ${since(redis.since)}${redis.error ? ` (${redis.error})` : ''}; per-node behaviour`);
      else facts.push('Redis reachable');
    }
    if (problems.length > 0) return { status: 'degraded', detail: problems.join('; ') };
    return { status: 'ok', detail: facts.join('; ') || 'standalone' };
  };
}
