/**
 * The admin operations on a host's cache, as one typed request union: what
 * the HTTP admin routes build, what crosses IPC from a worker to the
 * cluster primary, and what the admin service runs. Anything that arrives
 * over IPC goes through {@link parseAdminRequest}: digests through the
 * digest parser, names through the name grammar.
 */
import { parseDigest, tryParseDigest, type Digest } from '../registry/digest.ts';
import { RegistryError } from '../registry/errors.ts';
import { validateName } from '../registry/reference.ts';

export type PurgeTarget = { digest: Digest } | { repository: string } | { all: true };

export type AdminRequest =
  | { op: 'stats' }
  | { op: 'list'; limit: number; cursor: number }
  | { op: 'purge'; target: PurgeTarget }
  | { op: 'pin'; reference: string; digests: Digest[]; persist: boolean }
  | { op: 'unpin'; reference: string }
  | { op: 'pins' }
  | { op: 'verify' }
  | { op: 'verifyStatus' };

const maxReferenceLength = 512;

function reference(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > maxReferenceLength) {
    throw new RegistryError('BODY_INVALID', 'an image reference is required (e.g. library/nginx:1.27)');
  }
  return value;
}

function whole(value: unknown, fallback: number, min: number, max: number): number {
  const n = typeof value === 'number' && Number.isSafeInteger(value) ? value : fallback;
  return Math.min(Math.max(n, min), max);
}

function purgeTarget(value: unknown): PurgeTarget {
  const raw = (typeof value === 'object' && value !== null ? value : {}) as { digest?: unknown; repository?: unknown; all?: unknown };
  if (typeof raw.digest === 'string') return { digest: parseDigest(raw.digest) };
  if (typeof raw.repository === 'string') return { repository: validateName(raw.repository) };
  if (raw.all === true) return { all: true };
  throw new RegistryError('BODY_INVALID', 'purge takes {"digest"}, {"repository"} or {"all":true}');
}

/** Parses an admin request that crossed a process boundary; throws a RegistryError when malformed. */
export function parseAdminRequest(value: unknown): AdminRequest {
  const raw = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  switch (raw.op) {
    case 'stats':
    case 'pins':
    case 'verify':
    case 'verifyStatus':
      return { op: raw.op };
    case 'list':
      return { op: 'list', limit: whole(raw.limit, 100, 1, 1000), cursor: whole(raw.cursor, 0, 0, Number.MAX_SAFE_INTEGER) };
    case 'purge':
      return { op: 'purge', target: purgeTarget(raw.target) };
    case 'pin':
      return {
        op: 'pin',
        reference: reference(raw.reference),
        digests: Array.isArray(raw.digests) ? raw.digests.map(tryParseDigest).filter((d): d is Digest => d !== undefined) : [],
        persist: raw.persist === true,
      };
    case 'unpin':
      return { op: 'unpin', reference: reference(raw.reference) };
    default:
      throw new RegistryError('UNSUPPORTED', 'unknown admin operation', { detail: { op: String(raw.op).slice(0, 40) } });
  }
}
