/**
 * A Range of a blob that can only be read whole, in order from its first
 * byte — one streamed through uncached (feed-source.ts, remote-source.ts):
 * the blob is read from 0, the bytes before the range are dropped, the
 * range's bytes go out as they pass, and the range's last byte is held back
 * until the whole blob has been read, so verified (such a source hands out
 * its own last byte only then). A client resuming a download of a layer
 * too big to cache thus gets a 206 and never a complete-looking range of
 * wrong bytes. It costs the whole transfer, and the client waits for it:
 * the price of verifying what a range hands out.
 */
import { RegistryError } from '../registry/errors.ts';
import type { BlobSource } from './blob-source.ts';

const scratchBytes = 256 * 1024;

/** `source` (read whole, in order) as a source that also serves a range; `source` itself when it already does, or its size is unknown. */
export function servingRanges(source: BlobSource): BlobSource {
  return source.seekable || source.size === undefined ? source : new WholeRangeSource(source, source.size);
}

class WholeRangeSource implements BlobSource {
  readonly seekable = true;
  /** The next byte of the whole blob the inner source will give. */
  private cursor = 0;
  /** The next byte of the range this source hands out. */
  private position = 0;
  private range: { start: number; end: number } | undefined;
  private scratch: Buffer | undefined;

  constructor(
    private readonly inner: BlobSource,
    readonly size: number,
  ) {}

  get result() {
    return this.inner.result;
  }

  willReadWhole(): void {
    this.inner.willReadWhole?.();
  }

  willReadRange(start: number, end: number): void {
    if (this.cursor > 0) throw new RangeError('a range must be chosen before the first read');
    this.range = { start, end };
    this.position = start;
  }

  async read(buffer: Buffer, position: number, length: number): Promise<number> {
    if (!this.range) {
      const n = await this.inner.read(buffer, position, length);
      this.cursor += n;
      return n;
    }
    const { start, end } = this.range;
    if (position !== this.position) throw new RangeError(`a range of a streamed blob is read in order (at ${this.position}, asked for ${position})`);
    if (position > end) return 0;
    while (this.cursor < start) await this.drop(start - this.cursor);
    if (position < end) {
      // Every byte of the range but its last, as it passes.
      const n = await this.inner.read(buffer, this.cursor, Math.min(length, end - position));
      if (n === 0) throw new RegistryError('UPSTREAM_UNAVAILABLE', 'the blob ended before the range');
      this.cursor += n;
      this.position += n;
      return n;
    }
    // The range's last byte: taken now, handed out once the rest of the blob has been read (and so verified).
    if ((await this.inner.read(buffer, this.cursor, 1)) !== 1) throw new RegistryError('UPSTREAM_UNAVAILABLE', 'the blob ended before the range');
    this.cursor += 1;
    while (this.cursor < this.size) await this.drop(this.size - this.cursor);
    if ((await this.inner.read(this.scratchBuffer(), this.cursor, 1)) !== 0) throw new RegistryError('UPSTREAM_UNAVAILABLE', 'the blob is longer than its size');
    this.position += 1;
    return 1;
  }

  async settled(): Promise<void> {
    await this.inner.settled?.();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /** Reads and drops up to `most` bytes of the whole blob. */
  private async drop(most: number): Promise<void> {
    const scratch = this.scratchBuffer();
    const n = await this.inner.read(scratch, this.cursor, Math.min(scratch.length, most));
    if (n === 0) throw new RegistryError('UPSTREAM_UNAVAILABLE', `the blob ended after ${this.cursor} of its ${this.size} bytes`);
    this.cursor += n;
  }

  private scratchBuffer(): Buffer {
    this.scratch ??= Buffer.allocUnsafe(scratchBytes);
    return this.scratch;
  }
}
