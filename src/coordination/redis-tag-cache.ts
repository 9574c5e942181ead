/**
 * The shared tag cache in Redis: a tag answer one replica got from the
 * primary, reused by the others while it is fresh.
 *
 *   <cluster>:tag:<upstream>/<name>:<tag>  {"digest","mediaType","size","fetchedAt"}, expiring with the tag TTL
 *
 * A record read back is untrusted text: it becomes a TagRecord only through
 * {@link parseTagRecord} (the digest through the digest parser), and its
 * digest is never served without the manifest bytes verifying against it.
 *
 * Error contract: rejects with an ioredis error when Redis does not answer.
 */
import type { TagRecord } from '../cache/ports.ts';
import { tryParseDigest } from '../registry/digest.ts';
import type { RedisConnection } from './redis-connection.ts';

export class RedisTagCache {
  constructor(private readonly redis: RedisConnection) {}

  async get(key: string): Promise<TagRecord | undefined> {
    const raw = await this.redis.client.get(this.redis.key('tag', key));
    return raw === null ? undefined : parseTagRecord(raw);
  }

  async put(key: string, record: TagRecord, ttlMs: number): Promise<void> {
    await this.redis.client.set(this.redis.key('tag', key), JSON.stringify(record), 'PX', Math.max(1, Math.round(ttlMs)));
  }
}

/** A TagRecord from JSON text (Redis, IPC); undefined when anything is off. */
export function parseTagRecord(raw: unknown): TagRecord | undefined {
  let value: unknown = raw;
  if (typeof raw === 'string') {
    try {
      value = JSON.parse(raw);
    } catch {
      return undefined;
    }
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { digest, mediaType, size, fetchedAt } = value as Record<string, unknown>;
  const parsed = tryParseDigest(digest);
  if (parsed === undefined || typeof mediaType !== 'string' || mediaType.length > 255) return undefined;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return undefined;
  if (typeof fetchedAt !== 'number' || !Number.isFinite(fetchedAt)) return undefined;
  return { digest: parsed, mediaType, size, fetchedAt };
}
