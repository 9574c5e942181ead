/**
 * JSON of run records as stored in etcd: written by this code, but read
 * back as untrusted input (another version, a hand edit): every field is
 * checked, and a record that does not parse is treated as absent.
 */
import type { ImageRef } from './ports.ts';
import type { ImageOutcome, RunHeader, RunRequest, RunState } from './run-store.ts';
import type { RunReason } from './scheduler.ts';

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown, max = 2_048): v is string => typeof v === 'string' && v.length <= max;
const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const optStr = (v: unknown): v is string | undefined => v === undefined || v === null || str(v);
const states: readonly RunState[] = ['running', 'succeeded', 'partial', 'failed'];
const reasons: readonly RunReason[] = ['schedule', 'start', 'manual', 'resume'];

function json(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export function parseRunHeader(text: string): RunHeader | undefined {
  const v = json(text);
  if (!isObj(v)) return undefined;
  const { job, runId, dueKey, reason, startedAt, finishedAt, state, error } = v;
  if (!str(job, 200) || !str(runId, 200) || !str(dueKey, 300) || !reasons.includes(reason as RunReason) || !num(startedAt)) return undefined;
  if (!(finishedAt === undefined || finishedAt === null || num(finishedAt)) || !states.includes(state as RunState) || !optStr(error)) return undefined;
  return {
    job,
    runId,
    dueKey,
    reason: reason as RunReason,
    startedAt,
    finishedAt: num(finishedAt) ? finishedAt : undefined,
    state: state as RunState,
    error: str(error) ? error : undefined,
  };
}

export function parseImageRefs(text: string): ImageRef[] | undefined {
  const v = json(text);
  if (!Array.isArray(v)) return undefined;
  const refs: ImageRef[] = [];
  for (const item of v) {
    if (!isObj(item) || !str(item.upstream, 300) || !str(item.repository, 512) || !str(item.reference, 200)) return undefined;
    refs.push({ upstream: item.upstream, repository: item.repository, reference: item.reference });
  }
  return refs;
}

export function parseImageOutcome(text: string): ImageOutcome | undefined {
  const v = json(text);
  if (!isObj(v)) return undefined;
  const { index, image, ok, skipped, blobs, bytes, replicas, error } = v;
  if (!num(index) || !Number.isInteger(index) || !str(image) || typeof ok !== 'boolean' || typeof skipped !== 'boolean') return undefined;
  if (!num(blobs) || !num(bytes) || !Array.isArray(replicas) || !replicas.every((r) => str(r, 200)) || !optStr(error)) return undefined;
  return { index, image, ok, skipped, blobs, bytes, replicas: replicas as string[], error: str(error) ? error : undefined };
}

export function parseRunRequest(text: string): RunRequest | undefined {
  const v = json(text);
  if (!isObj(v) || !str(v.job, 200) || !str(v.runId, 200) || !num(v.at)) return undefined;
  return { job: v.job, runId: v.runId, at: v.at };
}
