/** `/health`: whether this node can serve. Each check is cheap; an unreachable primary is only "degraded". */
import { access, constants } from 'node:fs/promises';

export type CheckStatus = 'ok' | 'degraded' | 'failing';

export interface HealthReport {
  healthy: boolean;
  checks: Record<string, { status: CheckStatus; detail?: string }>;
}

export type HealthCheck = () => Promise<{ status: CheckStatus; detail?: string }>;

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

export async function runHealthChecks(checks: Record<string, HealthCheck>, draining: () => boolean): Promise<HealthReport> {
  const entries = await Promise.all(Object.entries(checks).map(async ([name, check]) => [name, await check()] as const));
  const result: HealthReport['checks'] = Object.fromEntries(entries);
  if (draining()) result.draining = { status: 'failing', detail: 'node is shutting down' };
  const healthy = Object.values(result).every((check) => check.status !== 'failing');
  return { healthy, checks: result };
}
