/**
 * Worker side of the replica set's shared state: the PeerDirectory and
 * SharedTags ports, answered by the cluster primary (shared-state-broker.ts)
 * from Redis. Every question has a deadline: a primary or Redis that does not
 * answer in time is "unknown", and the caller goes on per node at once.
 */
import type { FillLockResult, PeerDirectory, PeerRef, SharedTags, TagRecord } from '../cache/ports.ts';
import type { Digest } from '../registry/digest.ts';
import { isSharedReply, type SharedAnswers, type SharedReply, type SharedRequest, type SharedWorkerMessage } from './ipc-messages.ts';
import { parseTagRecord } from './redis-tag-cache.ts';

export interface SharedStateChannel {
  send(message: SharedWorkerMessage): void;
  onMessage(listener: (message: unknown) => void): void;
}

/** Two bounded Redis round trips (500 ms each) and the IPC hops. */
const defaultDeadlineMs = 1_200;

type Question = SharedRequest extends infer Q ? (Q extends { id: number } ? Omit<Q, 'id'> : never) : never;

export class IpcSharedState implements PeerDirectory, SharedTags {
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: SharedReply) => void>();

  constructor(
    private readonly channel: SharedStateChannel,
    private readonly deadlineMs = defaultDeadlineMs,
  ) {
    channel.onMessage((message) => {
      if (!isSharedReply(message)) return;
      const resolve = this.waiting.get(message.id);
      this.waiting.delete(message.id);
      resolve?.(message);
    });
  }

  async holders(digest: Digest): Promise<PeerRef[]> {
    const value = await this.ask<'shared.holders'>({ t: 'shared.holders', digest });
    return Array.isArray(value) ? value.filter(isPeerRef) : [];
  }

  notHeld(digest: Digest, peerId: string): void {
    this.channel.send({ t: 'shared.notHeld', digest, node: peerId });
  }

  async lock(digest: Digest): Promise<FillLockResult> {
    let answer: SharedAnswers['shared.lock'];
    const request = this.nextId;
    try {
      answer = await this.ask<'shared.lock'>({ t: 'shared.lock', digest });
    } catch {
      // The primary may take it after all: it lets it go rather than renew it for nobody.
      this.channel.send({ t: 'shared.release', digest, request, cached: false });
      return { kind: 'unavailable' };
    }
    if (answer?.kind === 'acquired' && typeof answer.token === 'string') {
      const token = answer.token;
      let released = false;
      return {
        kind: 'acquired',
        lock: {
          release: (cached) => {
            if (released) return;
            released = true;
            this.channel.send({ t: 'shared.release', digest, token, cached });
          },
        },
      };
    }
    if (answer?.kind === 'held') return { kind: 'held', owner: isPeerRef(answer.owner) ? answer.owner : undefined };
    if (answer?.kind === 'announced') return { kind: 'announced' };
    return { kind: 'unavailable' };
  }

  async lockOwner(digest: Digest): Promise<string | undefined> {
    const value = await this.ask<'shared.lockOwner'>({ t: 'shared.lockOwner', digest });
    return typeof value === 'string' ? value : undefined;
  }

  async get(upstream: string, name: string, tag: string): Promise<TagRecord | undefined> {
    try {
      return parseTagRecord(await this.ask<'shared.tag.get'>({ t: 'shared.tag.get', key: tagKey(upstream, name, tag) }));
    } catch {
      return undefined;
    }
  }

  put(upstream: string, name: string, tag: string, record: TagRecord): void {
    this.channel.send({ t: 'shared.tag.put', key: tagKey(upstream, name, tag), record });
  }

  private ask<T extends keyof SharedAnswers>(question: Question & { t: T }): Promise<SharedAnswers[T]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`the shared state did not answer ${question.t} within ${this.deadlineMs} ms`));
      }, this.deadlineMs);
      this.waiting.set(id, (reply) => {
        clearTimeout(timer);
        if (reply.error !== undefined) reject(new Error(reply.error));
        else resolve(reply.value as SharedAnswers[T]);
      });
      this.channel.send({ ...question, id } as SharedRequest);
    });
  }
}

/** `<upstream>/<name>:<tag>`, the tag's key in the shared cache. */
export function tagKey(upstream: string, name: string, tag: string): string {
  return `${upstream}/${name}:${tag}`;
}

function isPeerRef(value: unknown): value is PeerRef {
  return typeof value === 'object' && value !== null && typeof (value as PeerRef).id === 'string' && typeof (value as PeerRef).url === 'string';
}
