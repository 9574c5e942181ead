/** An OpenBlob over bytes already in memory (small blobs kept per process). */
import type { OpenBlob } from './ports.ts';

export class MemoryBlob implements OpenBlob {
  constructor(private readonly data: Buffer) {}

  get size(): number {
    return this.data.byteLength;
  }

  async read(buffer: Buffer, position: number, length: number): Promise<number> {
    return this.data.copy(buffer, 0, position, Math.min(position + length, this.data.byteLength));
  }

  async readAll(): Promise<Buffer> {
    return this.data;
  }

  async close(): Promise<void> {}
}
