/** Pins added through the admin API, as `index/pins.json` (a JSON array of references), written atomically and durably. */
import { readFile } from 'node:fs/promises';
import type { PinStore } from '../cache/ports.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { fsyncFileSync, type FileSync } from './file-sync.ts';
import type { CacheLayout } from './layout.ts';

export class DiskPinStore implements PinStore {
  constructor(
    private readonly layout: CacheLayout,
    private readonly sync: FileSync = fsyncFileSync,
  ) {}

  /** A missing, torn or foreign file holds no pins. */
  async load(): Promise<string[]> {
    try {
      const parsed = JSON.parse(await readFile(this.layout.pinsPath, 'utf8')) as unknown;
      return Array.isArray(parsed) ? parsed.filter((p): p is string => typeof p === 'string') : [];
    } catch {
      return [];
    }
  }

  async save(references: readonly string[]): Promise<void> {
    await writeFileAtomic(this.layout.pinsPath, JSON.stringify(references), this.layout.ingestDir, this.sync);
  }
}
