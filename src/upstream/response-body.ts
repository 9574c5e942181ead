/**
 * What happens to upstream response bodies the client does not hand out:
 * small ones (manifests, tag lists, referrers, tokens) are buffered with a
 * hard size limit — the declared Content-Length is checked before reading
 * and the bytes are counted while reading, so a primary that lies about (or
 * omits) the length still cannot make us buffer more — and unwanted ones are
 * drained or destroyed, on error paths too.
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { destroyBody, UpstreamError } from '../cache/ports.ts';

export { destroyBody };

/**
 * A byte count the primary sent (`Content-Length`, a `Content-Range` number):
 * undefined when absent, UPSTREAM_BAD_RESPONSE unless it is plain digits
 * that a Number holds exactly. undici already refuses most malformed
 * lengths; one past 2^53 gets through it and would silently become another
 * number here.
 */
export function parseByteCount(value: string | string[] | undefined, what: string, header: string): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  const count = /^\s*\d+\s*$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(count)) {
    throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `${what}: ${header} is not a byte count`);
  }
  return count;
}

/**
 * The body, at most `maxBytes` of it. Past that, the error from `tooLarge`
 * (by default "body larger than maxBytes"), thrown before reading when the
 * declared length already says so.
 */
export async function readLimited(
  body: Readable,
  contentLength: string | string[] | undefined,
  maxBytes: number,
  what: string,
  tooLarge: () => UpstreamError = () => bodyTooLarge(what, maxBytes),
): Promise<Buffer> {
  let declared: number | undefined;
  try {
    declared = parseByteCount(contentLength, what, 'Content-Length');
  } catch (err) {
    destroyBody(body);
    throw err;
  }
  if (declared !== undefined && declared > maxBytes) {
    destroyBody(body);
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let total = 0;
  // Leaving the loop early (throw) destroys the body.
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** The body parsed as JSON; malformed JSON is UPSTREAM_BAD_RESPONSE. */
export function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch (err) {
    throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `${what}: body is not JSON`, { cause: err });
  }
}

function bodyTooLarge(what: string, maxBytes: number): UpstreamError {
  return new UpstreamError('UPSTREAM_BAD_RESPONSE', `${what}: body larger than ${maxBytes} bytes`);
}

/**
 * Lets go of a body nobody will read: small ones are drained so the
 * connection can be reused, big or failing ones destroyed (undici's `dump`).
 */
export function discard(body: Dispatcher.ResponseData['body']): void {
  body.dump().catch(() => {
    // Errors while draining a body we did not want do not matter.
  });
}

