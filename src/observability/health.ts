/**
 * `/health` (readiness): whether this node can serve. Each check is cheap;
 * an unreachable primary is only "degraded". Liveness is `/livez`
 * (src/http/ops-routes.ts), which asks nothing of the cache or the primary.
 */
import { access, constants } from 'node:fs/promises';

export type CheckStatus = 'ok' | 'degraded' | 'failing';

export interface CheckResult {
  status: CheckStatus;
  detail?: string;
}

export interface HealthReport {
  healthy: boolean;
  status: CheckStatus;
  checks: Record<string, CheckResult>;
}

export type HealthCheck = () => CheckResult | Promise<CheckResult>;

export function cacheDirWritable(dir: string): HealthCheck {
  return async () => {
    try {
      await access(dir, constants.W_OK);
      return { status: 'ok' };
    } catch (err) {
      return { status: 'failing', detail: `cache directory not writable: ${(err as NodeJS.ErrnoException).code ?? 'error'}` };
    }
  };
}

export function workersUp(state: () => { up: number; configured: number }): HealthCheck {
  return () => {
    const { up, configured } = state();
    if (up <= 0) return { status: 'failing', detail: 'no worker is running' };
    if (up < configured) return { status: 'degraded', detail: `${up} of ${configured} workers running` };
    return { status: 'ok', detail: `${up} of ${configured} workers running` };
  };
}

/** Degraded while cache writes have failed recently (disk full): content streams through uncached. */
export function recentWriteFailures(last: () => { code: string; at: number } | undefined, clock: { now(): number }, windowMs: number): HealthCheck {
  return () => {
    const failure = last();
    if (!failure || clock.now() - failure.at > windowMs) return { status: 'ok' };
    return { status: 'degraded', detail: `cache writes failing (${failure.code}); streaming through uncached` };
  };
}

/** Degraded while a primary is down, host-wide (any worker's last call to it failed with an outage). */
export function primaryReachable(outages: () => { host: string; code: string; cause: string }[]): HealthCheck {
  return () => {
    const failing = outages();
    if (failing.length === 0) return { status: 'ok' };
    return {
      status: 'degraded',
      detail: `primary unavailable (${failing.map((o) => `${o.host}: ${o.cause}`).join(', ')}); serving from cache`,
    };
  };
}

/** Degraded while a primary's circuit breaker is open or half-open (workers share their breakers' decisions): requests to it fail at once. */
export function circuitBreakers(states: () => { host: string; state: string }[]): HealthCheck {
  return () => {
    const notClosed = states().filter((b) => b.state !== 'closed');
    if (notClosed.length === 0) return { status: 'ok' };
    return { status: 'degraded', detail: `circuit breaker ${notClosed.map((b) => `${b.host}: ${b.state}`).join(', ')}; serving from cache` };
  };
}

export async function runHealthChecks(checks: Record<string, HealthCheck>, draining: () => boolean): Promise<HealthReport> {
  const entries = await Promise.all(Object.entries(checks).map(async ([name, check]) => [name, await check()] as const));
  const result: HealthReport['checks'] = Object.fromEntries(entries);
  if (draining()) result.draining = { status: 'failing', detail: 'node is shutting down' };
  const statuses = Object.values(result).map((check) => check.status);
  const status: CheckStatus = statuses.includes('failing') ? 'failing' : statuses.includes('degraded') ? 'degraded' : 'ok';
  return { healthy: status !== 'failing', status, checks: result };
}
