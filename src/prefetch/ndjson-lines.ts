/**
 * Newline-delimited JSON read from an untrusted stream (a peer's warm, a
 * node's prefetch answer): lines are split as bytes arrive, each bounded by
 * `maxLineBytes` — a longer one rejects instead of growing a buffer — and
 * parsed to JSON. Empty lines are skipped.
 */

/** A stream that is not NDJSON within bounds. */
export class NdjsonError extends Error {
  override readonly name = 'NdjsonError';
  readonly code = 'NDJSON_INVALID';
}

export async function* ndjsonLines(body: AsyncIterable<Uint8Array | string>, maxLineBytes: number): AsyncGenerator<unknown> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const parse = (line: Buffer): unknown => {
    const text = line.toString('utf8').trim();
    if (text === '') return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new NdjsonError(`a line is not JSON: ${JSON.stringify(text.slice(0, 80))}`);
    }
  };
  for await (const raw of body) {
    let chunk = typeof raw === 'string' ? Buffer.from(raw) : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let newline = chunk.indexOf(0x0a); newline >= 0; newline = chunk.indexOf(0x0a)) {
      if (pendingBytes + newline > maxLineBytes) throw new NdjsonError(`a line is longer than ${maxLineBytes} bytes`);
      const line = pending.length === 0 ? chunk.subarray(0, newline) : Buffer.concat([...pending, chunk.subarray(0, newline)]);
      pending = [];
      pendingBytes = 0;
      chunk = chunk.subarray(newline + 1);
      const value = parse(line);
      if (value !== undefined) yield value;
    }
    if (chunk.length > 0) {
      pendingBytes += chunk.length;
      if (pendingBytes > maxLineBytes) throw new NdjsonError(`a line is longer than ${maxLineBytes} bytes`);
      pending.push(Buffer.from(chunk));
    }
  }
  if (pendingBytes > 0) {
    const value = parse(Buffer.concat(pending));
    if (value !== undefined) yield value;
  }
}
