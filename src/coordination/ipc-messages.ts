/**
 * Messages between cluster workers and the primary about coordination: the
 * host's fills (fill.*, fill-broker.ts) and the replica set's shared state
 * in Redis (shared.*, shared-state-broker.ts), which workers reach only
 * through the primary's one bounded connection.
 */
import type { FillState, PeerRef, TagRecord } from '../cache/ports.ts';
import type { Digest } from '../registry/digest.ts';
import { tryParseDigest } from '../registry/digest.ts';

export type WorkerToPrimary =
  | { t: 'fill.acquire'; id: number; digest: string }
  /** A watch on the fill in progress, if any (answered `role: 'none'` when there is none); never leads. */
  | { t: 'fill.follow'; id: number; digest: string }
  | { t: 'fill.update'; id: number; state: FillState }
  | { t: 'fill.unwatch'; id: number };

export type PrimaryToWorker =
  | { t: 'fill.role'; id: number; role: 'leader' | 'follower' | 'none'; state: FillState }
  | { t: 'fill.state'; id: number; state: FillState };

export function isFillMessage(message: unknown): message is { t: string; id: number } {
  return typeof message === 'object' && message !== null && typeof (message as { t?: unknown }).t === 'string' && (message as { t: string }).t.startsWith('fill.');
}

/** Worker → primary: questions (with an id, answered by `shared.reply`) and notices. */
export type SharedRequest =
  | { t: 'shared.holders'; id: number; digest: Digest }
  | { t: 'shared.lock'; id: number; digest: Digest }
  | { t: 'shared.lockOwner'; id: number; digest: Digest }
  | { t: 'shared.tag.get'; id: number; key: string };

export type SharedNotice =
  /**
   * The fill holding the lock of `digest` ended; or, with `request` instead
   * of `token`, the worker gave up waiting for that lock request's answer.
   */
  | { t: 'shared.release'; digest: Digest; token?: string; request?: number; cached: boolean }
  | { t: 'shared.notHeld'; digest: Digest; node: string }
  | { t: 'shared.tag.put'; key: string; record: TagRecord };

export type SharedWorkerMessage = SharedRequest | SharedNotice;

/** What each question is answered with (`shared.reply.value`). */
export interface SharedAnswers {
  'shared.holders': PeerRef[];
  'shared.lock': { kind: 'acquired'; token: string } | { kind: 'held'; owner: PeerRef | null } | { kind: 'announced' } | { kind: 'unavailable' };
  'shared.lockOwner': string | null;
  'shared.tag.get': TagRecord | null;
}

/** Primary → worker. `error` means the shared state could not answer (Redis down, a failed command). */
export type SharedReply = { t: 'shared.reply'; id: number; value?: unknown; error?: string };

type Loose = Record<string, unknown>;

/** A worker's shared-state message as the primary receives it; undefined when malformed or not one. */
export function parseSharedMessage(message: unknown): SharedWorkerMessage | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const m = message as Loose;
  if (typeof m['t'] !== 'string' || !m['t'].startsWith('shared.')) return undefined;
  const id = m['id'];
  const digest = tryParseDigest(m['digest']);
  switch (m['t']) {
    case 'shared.holders':
    case 'shared.lock':
    case 'shared.lockOwner':
      return typeof id === 'number' && digest ? { t: m['t'], id, digest } : undefined;
    case 'shared.tag.get':
      return typeof id === 'number' && typeof m['key'] === 'string' ? { t: m['t'], id, key: m['key'] } : undefined;
    case 'shared.release':
      return digest && typeof m['cached'] === 'boolean'
        ? {
            t: m['t'],
            digest,
            cached: m['cached'],
            ...(typeof m['token'] === 'string' ? { token: m['token'] } : {}),
            ...(typeof m['request'] === 'number' ? { request: m['request'] } : {}),
          }
        : undefined;
    case 'shared.notHeld':
      return digest && typeof m['node'] === 'string' ? { t: m['t'], digest, node: m['node'] } : undefined;
    case 'shared.tag.put':
      return typeof m['key'] === 'string' && typeof m['record'] === 'object' && m['record'] !== null
        ? { t: m['t'], key: m['key'], record: m['record'] as TagRecord }
        : undefined;
    default:
      return undefined;
  }
}

export function isSharedReply(message: unknown): message is SharedReply {
  return typeof message === 'object' && message !== null && (message as Loose)['t'] === 'shared.reply' && typeof (message as Loose)['id'] === 'number';
}
