/**
 * The replica set's Redis connection (ioredis), bounded so that a dead or
 * hung Redis costs a caller one short timeout and never a queue:
 *
 * - no offline queue: while disconnected, a command fails at once;
 * - every command has a deadline (`commandTimeoutMs`) and is not retried;
 * - reconnects forever in the background, backing off to at most 2 s;
 * - a PING every `pingIntervalMs` notices a Redis that accepts connections
 *   but no longer answers (stopped, swapping).
 *
 * `up` is true from the first answered command after (re)connecting until a
 * disconnect or a failed PING. Keys are `<cluster>:<part>:<part>...` so
 * replica sets sharing a Redis never meet.
 *
 * Error contract: commands reject with ioredis errors ("Stream isn't
 * writeable...", "Command timed out", connection errors); callers treat any
 * rejection as "Redis unavailable" and fall back to per-node behaviour.
 */
import { Redis } from 'ioredis';
import type { Clock, Logger } from '../cache/ports.ts';

export interface RedisConnectionOptions {
  url: string;
  clusterName: string;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  pingIntervalMs: number;
  logger: Logger;
  clock: Clock;
  onChange?: (state: RedisState) => void;
}

export interface RedisState {
  up: boolean;
  /** When `up` last changed. */
  since: number;
  /** Why Redis is considered down. */
  error: string | undefined;
}

const maxBackoffMs = 2_000;

export class RedisConnection {
  readonly client: Redis;
  private current: RedisState;
  private pinger: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: RedisConnectionOptions) {
    this.current = { up: false, since: options.clock.now(), error: 'not connected yet' };
    this.client = new Redis(options.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: options.connectTimeoutMs,
      commandTimeout: options.commandTimeoutMs,
      retryStrategy: (attempt) => Math.min(100 * 2 ** Math.min(attempt, 5), maxBackoffMs),
      connectionName: `outpost:${options.clusterName}`,
    });
    this.client.on('ready', () => this.setUp(true, undefined));
    this.client.on('close', () => this.setUp(false, 'connection closed'));
    this.client.on('error', (err: Error) => {
      if (this.current.up) this.setUp(false, err.message);
      else this.current = { ...this.current, error: err.message };
    });
  }

  /** `<cluster>:<parts...>` */
  key(...parts: string[]): string {
    return [this.options.clusterName, ...parts].join(':');
  }

  state(): RedisState {
    return { ...this.current };
  }

  /** Connects in the background; never waits for Redis. */
  start(): void {
    this.client.connect().catch(() => undefined); // retried by retryStrategy; the state says how it goes
    this.pinger = setInterval(() => void this.ping(), this.options.pingIntervalMs);
    this.pinger.unref();
  }

  /** QUIT (bounded), then drop the connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.pinger);
    if (this.client.status === 'ready') {
      await Promise.race([this.client.quit().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, this.options.commandTimeoutMs).unref())]);
    }
    this.client.disconnect(false);
  }

  private async ping(): Promise<void> {
    if (this.client.status !== 'ready') return;
    try {
      await this.client.ping();
      this.setUp(true, undefined);
    } catch (err) {
      this.setUp(false, `PING failed: ${(err as Error).message}`);
    }
  }

  private setUp(up: boolean, error: string | undefined): void {
    if (this.stopped || this.current.up === up) return;
    this.current = { up, since: this.options.clock.now(), error };
    if (up) this.options.logger.info({}, 'Redis reachable');
    else this.options.logger.warn({ err: error }, 'Redis unreachable; per-node behaviour until it answers');
    this.options.onChange?.(this.state());
  }
}
