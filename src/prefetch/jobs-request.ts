/**
 * What the admin API asks of the prefetch jobs (a worker's HTTP request,
 * answered by the cluster primary that runs them): list them, or run one now.
 */
import { RegistryError } from '../registry/errors.ts';

export type PrefetchJobsRequest = { op: 'list' } | { op: 'run'; job: string };

/** The shape job names have in the config (`[a-z0-9][a-z0-9._-]*`); anything else names no job. */
const jobName = /^[a-z0-9][a-z0-9._-]{0,99}$/;

/** Parses a request that crossed IPC; throws BODY_INVALID, or JOB_UNKNOWN for a name no job can have. */
export function parsePrefetchJobsRequest(value: unknown): PrefetchJobsRequest {
  const raw = (typeof value === 'object' && value !== null ? value : {}) as { op?: unknown; job?: unknown };
  if (raw.op === 'list') return { op: 'list' };
  if (raw.op === 'run' && typeof raw.job === 'string') {
    if (!jobName.test(raw.job)) throw new RegistryError('JOB_UNKNOWN', 'no prefetch job of that name is configured');
    return { op: 'run', job: raw.job };
  }
  throw new RegistryError('BODY_INVALID', 'not a prefetch jobs request');
}
