/**
 * A blob another worker of this host streams through uncached (its fill's
 * `streaming` state), read from that worker's sibling endpoint: the host
 * then asks the primary once for it, however many of its workers' clients
 * want it at the same time.
 *
 * The sibling serves it from its feed only — never from the primary, never
 * from disk — and cuts off a reader that falls a window behind (or it dies).
 * The rest then comes from the primary with a Range, continuing the same
 * body; a primary that ignores the Range has the bytes already passed
 * skipped. The caller verifies the whole body against the digest
 * (remote-source.ts), so a client never completes a body whose two parts
 * differ.
 */
import { RegistryError } from '../registry/errors.ts';
import { destroyBody, type BlobResponse } from './ports.ts';

export interface SiblingStreamOptions {
  /** The size the client is told, when known: the sibling must not send more, nor end short of it. */
  size: number | undefined;
  /** The blob from `start` on, from the primary. */
  resume: (start: number) => Promise<BlobResponse>;
  /** Told when the sibling's transfer broke off, and where. */
  onBroken: (position: number, err: unknown) => void;
  /** The transfer's own signal: once aborted, nothing is resumed. */
  signal: AbortSignal;
}

export async function* siblingThenPrimary(first: BlobResponse, options: SiblingStreamOptions): AsyncGenerator<Buffer> {
  const { size } = options;
  let position = 0;
  try {
    for await (const chunk of first.body as AsyncIterable<Buffer>) {
      position += chunk.length;
      if (size !== undefined && position > size) throw new RegistryError('UPSTREAM_UNAVAILABLE', `the sibling worker sent more than the ${size} bytes announced`);
      yield chunk;
    }
    if (size === undefined || position === size) return;
    options.onBroken(position, new Error(`the sibling worker ended after ${position} of ${size} bytes`));
  } catch (err) {
    if (options.signal.aborted || err instanceof RegistryError) throw err;
    options.onBroken(position, err);
  } finally {
    destroyBody(first.body);
  }
  const rest = await options.resume(position);
  let skip = position - rest.offset;
  try {
    if (skip < 0) throw new RegistryError('UPSTREAM_UNAVAILABLE', `the primary answered from byte ${rest.offset}, not ${position}`);
    for await (const raw of rest.body as AsyncIterable<Buffer>) {
      if (skip >= raw.length) {
        skip -= raw.length;
        continue;
      }
      yield skip > 0 ? raw.subarray(skip) : raw;
      skip = 0;
    }
  } finally {
    destroyBody(rest.body);
  }
}
