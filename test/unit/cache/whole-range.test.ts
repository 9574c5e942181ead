import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { BlobSource } from '../../../src/cache/blob-source.ts';
import { servingRanges } from '../../../src/cache/whole-range.ts';

const KiB = 1024;

/**
 * A source read whole, in order, like a blob streamed through: it verifies
 * as it goes and hands out its own last byte only once the digest matched
 * (a mismatch rejects instead).
 */
function streamedThrough(sent: Buffer, digest: string) {
  const hash = createHash('sha256');
  let position = 0;
  const reads: number[] = [];
  const source: BlobSource & { reads: number[]; closed: boolean } = {
    size: sent.length,
    result: 'passthrough',
    seekable: false,
    reads,
    closed: false,
    async read(buffer, at, length) {
      if (at !== position) throw new RangeError(`read in order: at ${position}, asked ${at}`);
      reads.push(at);
      const n = Math.min(length, sent.length - position, 40 * KiB);
      if (n === 0) return 0;
      const chunk = sent.subarray(position, position + n);
      hash.update(chunk);
      if (position + n === sent.length && `sha256:${hash.copy().digest('hex')}` !== digest) throw new Error('digest mismatch');
      chunk.copy(buffer);
      position += n;
      return n;
    },
    async close() {
      source.closed = true;
    },
  };
  return source;
}

async function readRange(source: BlobSource, start: number, end: number): Promise<Buffer> {
  source.willReadRange!(start, end);
  const out: Buffer[] = [];
  for (let position = start; position <= end; ) {
    const buffer = Buffer.alloc(64 * KiB);
    const n = await source.read(buffer, position, Math.min(buffer.length, end + 1 - position));
    if (n === 0) throw new Error('ended early');
    out.push(buffer.subarray(0, n));
    position += n;
  }
  return Buffer.concat(out);
}

describe('a range of a blob read whole', () => {
  const blob = randomBytes(700 * KiB + 13);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;

  it('hands out exactly the range, having read (and so verified) the whole blob before its last byte', async () => {
    const inner = streamedThrough(blob, digest);
    const source = servingRanges(inner);
    expect(source.seekable).toBe(true);
    expect(await readRange(source, 100 * KiB + 7, 300 * KiB)).toEqual(blob.subarray(100 * KiB + 7, 300 * KiB + 1));
    expect(inner.reads.at(-1)).toBe(blob.length); // read to the end: the inner source said 0, verified
    await source.close();
    expect(inner.closed).toBe(true);
  });

  it('serves the first and the last byte, and a whole read unchanged', async () => {
    expect(await readRange(servingRanges(streamedThrough(blob, digest)), 0, 0)).toEqual(blob.subarray(0, 1));
    expect(await readRange(servingRanges(streamedThrough(blob, digest)), blob.length - 1, blob.length - 1)).toEqual(blob.subarray(-1));
    const whole = servingRanges(streamedThrough(blob, digest));
    whole.willReadWhole?.();
    const buffer = Buffer.alloc(blob.length);
    let got = 0;
    for (let n; (n = await whole.read(buffer.subarray(got), got, blob.length - got)) > 0; ) got += n;
    expect(buffer).toEqual(blob);
  });

  it('never hands out the last byte of a range when the blob does not match its digest', async () => {
    const lie = Buffer.from(blob);
    lie[lie.length - 1]! ^= 1; // wrong far past the range
    const source = servingRanges(streamedThrough(lie, digest));
    source.willReadRange!(0, 10 * KiB - 1);
    const buffer = Buffer.alloc(10 * KiB);
    let position = 0;
    await expect(
      (async () => {
        for (;;) {
          const n = await source.read(buffer.subarray(position), position, 10 * KiB - position);
          position += n;
        }
      })(),
    ).rejects.toThrow('digest mismatch');
    expect(position).toBe(10 * KiB - 1);
  });

  it('leaves sources that serve ranges themselves, or whose size is unknown, as they are', () => {
    const seekable = { ...streamedThrough(blob, digest), seekable: true };
    expect(servingRanges(seekable)).toBe(seekable);
    const unknown = { ...streamedThrough(blob, digest), size: undefined };
    expect(servingRanges(unknown)).toBe(unknown);
  });
});
