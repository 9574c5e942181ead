/**
 * Streams bytes straight from the primary to a client (no disk), verifying
 * the digest on the way: the last chunk is held back until size and digest
 * check out, so a lying or truncated primary breaks the connection instead
 * of completing a wrong body.
 */
import type { Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { RegistryError } from '../registry/errors.ts';

export interface VerifyOptions {
  digest: string;
  /** Hash already fed with the bytes before this body (a resumed transfer), or a fresh one. */
  hash: Hash;
  /** Bytes already hashed. */
  offset: number;
  /** The blob's total size, when known. */
  size: number | undefined;
  /** Maps a failure while reading the primary's body. */
  bodyFailure: (err: unknown) => RegistryError;
}

export async function* verifiedBody(body: Readable, options: VerifyOptions): AsyncGenerator<Buffer> {
  let held: Buffer | undefined;
  let total = options.offset;
  let finished = false;
  const chunks = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  try {
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
      if (held) yield held;
      held = next.value;
    }
    finished = true;
  } finally {
    if (!finished && !body.destroyed) {
      body.on('error', () => undefined);
      body.destroy();
    }
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
