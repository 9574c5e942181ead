/** Messages between cluster workers and the primary's fill broker. */
import type { FillState } from '../cache/ports.ts';

export type WorkerToPrimary =
  | { t: 'fill.acquire'; id: number; digest: string }
  | { t: 'fill.update'; id: number; state: FillState }
  | { t: 'fill.unwatch'; id: number };

export type PrimaryToWorker =
  | { t: 'fill.role'; id: number; role: 'leader' | 'follower'; state: FillState }
  | { t: 'fill.state'; id: number; state: FillState };

export function isFillMessage(message: unknown): message is { t: string; id: number } {
  return typeof message === 'object' && message !== null && typeof (message as { t?: unknown }).t === 'string' && (message as { t: string }).t.startsWith('fill.');
}
