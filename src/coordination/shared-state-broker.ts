/**
 * Primary side of the replica set's shared state: answers the workers'
 * shared.* questions (ipc-messages.ts) from Redis, on the node's one bounded
 * connection, and owns the cluster fill locks its workers take:
 *
 * - while Redis is down every question is answered "unavailable" at once
 *   (workers fall back to per-node behaviour, nothing queues);
 * - a lock is renewed every third of its TTL while its fill runs, released
 *   when the worker says the fill ended, and released at once when that
 *   worker exits (its fill is failed and taken over on this host anyway);
 * - a node that dies stops renewing, and its locks expire within the TTL.
 */
import { randomUUID } from 'node:crypto';
import type { Logger, PeerRef } from '../cache/ports.ts';
import type { Digest } from '../registry/digest.ts';
import { parseSharedMessage, type SharedAnswers, type SharedReply, type SharedRequest } from './ipc-messages.ts';
import type { RedisBlobLocations } from './redis-blob-locations.ts';
import type { RedisFillLocks } from './redis-fill-lock.ts';
import { parseTagRecord, type RedisTagCache } from './redis-tag-cache.ts';

export interface SharedStatePeer {
  readonly id: number;
  send(message: SharedReply): void;
}

export interface SharedStateBrokerOptions {
  /** Whether Redis answers now (redis-connection.ts). */
  redisUp: () => boolean;
  locations: RedisBlobLocations;
  locks: RedisFillLocks;
  tags: RedisTagCache;
  lockTtlMs: number;
  /** How long a shared tag answer lives (the tag TTL). */
  tagTtlMs: number;
  logger: Logger;
}

interface HeldLock {
  worker: number;
  token: string;
}

export class SharedStateBroker {
  private readonly held = new Map<Digest, HeldLock>();
  /** Lock requests in flight, by `<worker> <request id>`: true once the worker gave up on the answer. */
  private readonly lockRequests = new Map<string, boolean>();
  private readonly renewer: NodeJS.Timeout;

  constructor(private readonly options: SharedStateBrokerOptions) {
    this.renewer = setInterval(() => void this.renew(), Math.max(100, Math.floor(options.lockTtlMs / 3)));
    this.renewer.unref();
  }

  /** Fill locks this node holds now. */
  get locksHeld(): number {
    return this.held.size;
  }

  /** Handles a worker's shared.* message; false when it is not one. */
  handle(peer: SharedStatePeer, message: unknown): boolean {
    const msg = parseSharedMessage(message);
    if (msg === undefined) return false;
    switch (msg.t) {
      case 'shared.release': {
        const request = msg.request === undefined ? undefined : `${peer.id} ${msg.request}`;
        if (request !== undefined && this.lockRequests.has(request)) this.lockRequests.set(request, true);
        else this.release(peer.id, msg.digest, msg.token, msg.cached);
        return true;
      }
      case 'shared.notHeld':
        if (this.options.redisUp()) this.quietly(this.options.locations.withdraw([msg.digest], msg.node), 'could not drop a false location hint');
        return true;
      case 'shared.tag.put': {
        const record = parseTagRecord(msg.record);
        if (record && this.options.redisUp()) this.quietly(this.options.tags.put(msg.key, record, this.options.tagTtlMs), 'could not share a tag answer');
        return true;
      }
      default:
        this.answer(peer, msg);
        return true;
    }
  }

  /** A worker exited: the locks its fills held go now (no announcement: its fills did not finish). */
  peerGone(workerId: number): void {
    for (const [digest, lock] of [...this.held]) {
      if (lock.worker === workerId) this.release(workerId, digest, lock.token, false);
    }
  }

  stop(): void {
    clearInterval(this.renewer);
  }

  private answer(peer: SharedStatePeer, msg: SharedRequest): void {
    const reply = (value: unknown): void => peer.send({ t: 'shared.reply', id: msg.id, value });
    const fail = (err: unknown): void => peer.send({ t: 'shared.reply', id: msg.id, error: String((err as Error)?.message ?? err) });
    if (!this.options.redisUp()) {
      fail(new Error('Redis unreachable'));
      return;
    }
    this.ask(peer.id, msg).then(reply, fail);
  }

  private async ask(worker: number, msg: SharedRequest): Promise<SharedAnswers[SharedRequest['t']]> {
    const { locations, locks, tags } = this.options;
    switch (msg.t) {
      case 'shared.holders':
        return locations.holders(msg.digest);
      case 'shared.lockOwner':
        return (await locks.owner(msg.digest)) ?? null;
      case 'shared.tag.get':
        return (await tags.get(msg.key)) ?? null;
      case 'shared.lock': {
        const token = randomUUID();
        const request = `${worker} ${msg.id}`;
        this.lockRequests.set(request, false);
        let attempt;
        try {
          attempt = await locks.acquire(msg.digest, token);
        } finally {
          const abandoned = this.lockRequests.get(request) === true;
          this.lockRequests.delete(request);
          if (abandoned && attempt?.acquired) this.quietly(locks.release(msg.digest, token, false), 'could not release an abandoned fill lock');
          if (abandoned) attempt = undefined;
        }
        if (attempt === undefined) throw new Error('the worker gave up waiting for the lock');
        if (attempt.acquired) {
          this.held.set(msg.digest, { worker, token });
          return { kind: 'acquired', token };
        }
        if ('announced' in attempt) return { kind: 'announced' };
        const url = await locations.address(attempt.owner);
        const owner: PeerRef | null = url === undefined ? null : { id: attempt.owner, url };
        return { kind: 'held', owner };
      }
    }
  }

  private release(worker: number, digest: Digest, token: string | undefined, cached: boolean): void {
    const lock = this.held.get(digest);
    if (lock === undefined || lock.worker !== worker || (token !== undefined && token !== lock.token)) {
      // Not held (lost, or never taken): the blob is announced through the index anyway.
      return;
    }
    this.held.delete(digest);
    if (!this.options.redisUp()) return; // it expires by itself
    this.quietly(this.options.locks.release(digest, lock.token, cached), 'could not release a fill lock; it expires by itself');
  }

  private async renew(): Promise<void> {
    if (this.held.size === 0 || !this.options.redisUp()) return;
    await Promise.all(
      [...this.held].map(async ([digest, lock]) => {
        try {
          if (await this.options.locks.renew(digest, lock.token)) return;
          if (this.held.get(digest) !== lock) return;
          this.held.delete(digest);
          this.options.logger.info({ digest }, 'lost a fill lock (expired or Redis restarted); the fill goes on');
        } catch (err) {
          this.options.logger.debug({ digest, err: String((err as Error)?.message ?? err) }, 'could not renew a fill lock');
        }
      }),
    );
  }

  private quietly(promise: Promise<unknown>, what: string): void {
    promise.catch((err: unknown) => this.options.logger.debug({ err: String((err as Error)?.message ?? err) }, what));
  }
}
