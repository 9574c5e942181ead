/**
 * Verifies bytes from a remote (the primary, later a peer) while they pass:
 * the last chunk is held back until size and digest check out, so a lying or
 * truncated remote breaks the connection instead of completing a wrong body.
 * The caller owns the underlying body (and destroys it when it stops early).
 */
import type { Hash } from 'node:crypto';
import { RegistryError } from '../registry/errors.ts';

export interface VerifyOptions {
  digest: string;
  /** Hash already fed with every byte before this body the client received (a resumed transfer), or a fresh one. */
  hash: Hash;
  /** Bytes already hashed. */
  offset: number;
  /** The blob's total size, when known. */
  size: number | undefined;
  /** Maps a failure while reading the remote's body. */
  bodyFailure: (err: unknown) => RegistryError;
}

export async function* verifiedBody(body: AsyncIterable<Buffer>, options: VerifyOptions): AsyncGenerator<Buffer> {
  let held: Buffer | undefined;
  let total = options.offset;
  const chunks = body[Symbol.asyncIterator]();
  for (;;) {
    let next: IteratorResult<Buffer>;
    try {
      next = await chunks.next();
    } catch (err) {
      throw options.bodyFailure(err);
    }
    if (next.done) break;
    options.hash.update(next.value);
    total += next.value.length;
    if (options.size !== undefined && total > options.size) {
      throw new RegistryError('UPSTREAM_UNAVAILABLE', `the primary sent more than the ${options.size} bytes it announced`);
    }
    if (held) yield held;
    held = next.value;
  }
  if (options.size !== undefined && total !== options.size) {
    throw new RegistryError('UPSTREAM_UNAVAILABLE', `the primary sent ${total} of ${options.size} bytes`);
  }
  const algorithm = options.digest.slice(0, options.digest.indexOf(':'));
  if (`${algorithm}:${options.hash.digest('hex')}` !== options.digest) {
    throw new RegistryError('UPSTREAM_UNAVAILABLE', 'the primary sent content that does not match the digest');
  }
  if (held) yield held;
}

/**
 * A body that starts at 0 where the client is already at `length` (the
 * remote ignored the Range): hashes the first `length` bytes and compares
 * them with `sent`, the hash of what the client already received, then
 * yields the rest. A different prefix breaks off at once instead of after
 * the whole rest was sent.
 */
export async function* afterSentPrefix(body: AsyncIterable<Buffer>, length: number, sent: Hash, fresh: Hash): AsyncGenerator<Buffer> {
  let left = length;
  for await (const chunk of body) {
    if (left === 0) {
      yield chunk;
      continue;
    }
    const take = Math.min(left, chunk.length);
    fresh.update(chunk.subarray(0, take));
    left -= take;
    if (left === 0 && fresh.digest('hex') !== sent.copy().digest('hex')) {
      throw new RegistryError('UPSTREAM_UNAVAILABLE', 'the primary ignored the Range and its first bytes differ from those already sent');
    }
    if (take < chunk.length) yield chunk.subarray(take);
  }
}
