/**
 * The prefetch jobs of the admin API, behind `OUTPOST_ADMIN_TOKEN` (bearer),
 * the same from any replica:
 *
 *   GET  /api/v0/prefetch/jobs              {"jobs": PrefetchJobStatus[]}: next run, last run (counts, errors)
 *   POST /api/v0/prefetch/jobs/<name>/run   202 {"job", "runId"}: the leader runs it now
 *                                           404 JOB_UNKNOWN, 409 RUN_IN_PROGRESS
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PrefetchJobsRequest } from '../prefetch/jobs-request.ts';
import { RegistryError } from '../registry/errors.ts';
import type { AdminToken } from './admin-token.ts';
import { sendJson } from './send.ts';

export const prefetchJobsPath = '/api/v0/prefetch/jobs';

/** Whether `path` is one of these routes. */
export function isPrefetchJobsPath(path: string): boolean {
  return path === prefetchJobsPath || path.startsWith(`${prefetchJobsPath}/`);
}

export class PrefetchJobRoutes {
  constructor(
    private readonly token: AdminToken,
    /** Answered by the process that runs the jobs (the cluster primary). */
    private readonly jobs: (request: PrefetchJobsRequest) => Promise<unknown>,
  ) {}

  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    this.token.authorize(req, 'the admin API');
    const method = req.method ?? 'GET';
    if (path === prefetchJobsPath) {
      if (method !== 'GET' && method !== 'HEAD') throw new RegistryError('UNSUPPORTED', 'the job list is read-only', { headers: { allow: 'GET, HEAD' } });
      const value = (await this.jobs({ op: 'list' })) as unknown[];
      sendJson(req, res, 200, { jobs: value }, { 'cache-control': 'no-store' });
      return;
    }
    const rest = path.slice(prefetchJobsPath.length + 1);
    const slash = rest.indexOf('/');
    if (slash <= 0 || rest.slice(slash) !== '/run') throw new RegistryError('NAME_INVALID', 'no such prefetch route', { detail: { path: path.slice(0, 300) } });
    if (method !== 'POST') throw new RegistryError('UNSUPPORTED', 'a run is started with POST', { headers: { allow: 'POST' } });
    let job: string;
    try {
      job = decodeURIComponent(rest.slice(0, slash));
    } catch {
      throw new RegistryError('JOB_UNKNOWN', 'no prefetch job of that name is configured');
    }
    req.resume(); // a body, if any, is not read
    const { runId } = (await this.jobs({ op: 'run', job })) as { runId: string };
    sendJson(req, res, 202, { job, runId }, { 'cache-control': 'no-store' });
  }
}
