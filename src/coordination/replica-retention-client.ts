/**
 * Asks another replica for a retention sweep: `POST /api/v0/peer/retention`
 * signed with the replica set's peer secret (cluster/peer-protocol.ts),
 * answered `{"evicted": n, "bytes": n}` once the sweep is done.
 *
 * Error contract: resolves with the replica's counts, or rejects with an
 * Error naming the cause (unreachable, timeout, HTTP status and OCI code,
 * an answer that is not the documented JSON). The body is always consumed
 * or destroyed; at most 4 KiB of it is read.
 */
import { request } from 'undici';
import type { Clock } from '../cache/ports.ts';
import { peerAuthHeader, peerRetentionPath, signPeerRequest } from '../cluster/peer-protocol.ts';
import type { ReplicaTarget } from '../prefetch/ports.ts';
import type { SweepResult } from '../prefetch/retention-sweeps.ts';

const maxAnswerBytes = 4 * 1024;

export interface ReplicaRetentionClientOptions {
  nodeId: string;
  secret: string;
  clock: Clock;
  /** Until the replica answers (its sweep is done). Default 10 min. */
  timeoutMs?: number;
}

export class ReplicaRetentionClient {
  constructor(private readonly options: ReplicaRetentionClientOptions) {}

  async sweep(replica: ReplicaTarget, signal: AbortSignal): Promise<SweepResult> {
    const { nodeId, secret, clock } = this.options;
    const url = new URL(peerRetentionPath, replica.url);
    const timeoutMs = this.options.timeoutMs ?? 10 * 60_000;
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(url, {
        method: 'POST',
        headers: { [peerAuthHeader]: signPeerRequest(secret, 'POST', peerRetentionPath, nodeId, clock.now()) },
        signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
        headersTimeout: timeoutMs,
        bodyTimeout: 30_000,
      });
    } catch (err) {
      throw new Error(`replica ${replica.id} could not be asked: ${String((err as Error)?.message ?? err)}`, { cause: err });
    }
    let text = '';
    try {
      for await (const chunk of res.body) {
        text += (chunk as Buffer).toString('utf8');
        if (text.length > maxAnswerBytes) throw new Error(`replica ${replica.id} answered more than ${maxAnswerBytes} bytes`);
      }
    } finally {
      res.body.destroy();
    }
    if (res.statusCode !== 200) {
      let code = '';
      try {
        code = String((JSON.parse(text) as { errors?: Array<{ code?: unknown }> }).errors?.[0]?.code ?? '');
      } catch {
        // not the OCI envelope
      }
      throw new Error(`replica ${replica.id} answered HTTP ${res.statusCode}${code ? ` ${code}` : ''}`);
    }
    const value = JSON.parse(text) as { evicted?: unknown; bytes?: unknown };
    if (!Number.isSafeInteger(value.evicted) || !Number.isSafeInteger(value.bytes) || (value.evicted as number) < 0 || (value.bytes as number) < 0) {
      throw new Error(`replica ${replica.id} answered something else than a sweep's counts`);
    }
    return { evicted: value.evicted as number, bytes: value.bytes as number };
  }
}
