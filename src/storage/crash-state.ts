/**
 * How the last run ended, and which blobs that leaves unverified (see the
 * "Crash safety" part of layout.ts): the clean-shutdown marker and the
 * unverified-before time, both in `index/`, both written durably. What they
 * mean is the eviction service's business (cache/eviction-service.ts).
 */
import { readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { CrashMarkers } from '../cache/ports.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { fsyncFileSync, makeDirDurable, type FileSync } from './file-sync.ts';
import type { CacheLayout } from './layout.ts';

/** The time (ms since epoch) before which blobs are unverified, or undefined when every blob is verified. */
export async function readUnverifiedBefore(layout: CacheLayout): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(layout.unverifiedBeforePath, 'utf8');
  } catch {
    return undefined;
  }
  const value = Number(text.trim());
  return Number.isSafeInteger(value) && value > 0 ? value : undefined;
}

export class DiskCrashMarkers implements CrashMarkers {
  constructor(
    private readonly layout: CacheLayout,
    private readonly sync: FileSync = fsyncFileSync,
  ) {}

  async consumeCleanShutdown(): Promise<boolean> {
    const { cleanShutdownPath } = this.layout;
    const present = await stat(cleanShutdownPath).then(
      () => true,
      () => false,
    );
    if (!present) return false;
    await rm(cleanShutdownPath, { force: true });
    // A crash later in this run must find the marker gone.
    await this.sync.dir(path.dirname(cleanShutdownPath));
    return true;
  }

  async recordCleanShutdown(): Promise<void> {
    await makeDirDurable(this.layout.indexDir, this.sync);
    await writeFileAtomic(this.layout.cleanShutdownPath, `${new Date().toISOString()}\n`, this.layout.ingestDir, this.sync);
  }

  readUnverifiedBefore(): Promise<number | undefined> {
    return readUnverifiedBefore(this.layout);
  }

  async writeUnverifiedBefore(ms: number): Promise<void> {
    await makeDirDurable(this.layout.indexDir, this.sync);
    await writeFileAtomic(this.layout.unverifiedBeforePath, `${ms}\n`, this.layout.ingestDir, this.sync);
  }

  async clearUnverifiedBefore(): Promise<void> {
    await rm(this.layout.unverifiedBeforePath, { force: true });
    await this.sync.dir(this.layout.indexDir).catch(() => undefined);
  }
}
