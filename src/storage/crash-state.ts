/**
 * How the last run ended, and which blobs that leaves unverified (see the
 * "Crash safety" part of layout.ts): the clean-shutdown marker and the
 * unverified-before time, both in `index/`, both written durably.
 */
import { readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from './atomic-file.ts';
import { fsyncFileSync, makeDirDurable, type FileSync } from './file-sync.ts';
import type { CacheLayout } from './layout.ts';

/** Removes the clean-shutdown marker; true when it was there (the last run stopped cleanly). */
export async function consumeCleanShutdown(layout: CacheLayout, sync: FileSync = fsyncFileSync): Promise<boolean> {
  const present = await stat(layout.cleanShutdownPath).then(
    () => true,
    () => false,
  );
  if (!present) return false;
  await rm(layout.cleanShutdownPath, { force: true });
  // A crash later in this run must find the marker gone.
  await sync.dir(path.dirname(layout.cleanShutdownPath));
  return true;
}

/** Written last by a clean stop, after everything else is on disk. */
export async function recordCleanShutdown(layout: CacheLayout, sync: FileSync = fsyncFileSync): Promise<void> {
  await makeDirDurable(layout.indexDir, sync);
  await writeFileAtomic(layout.cleanShutdownPath, `${new Date().toISOString()}\n`, layout.ingestDir, sync);
}

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

export async function writeUnverifiedBefore(layout: CacheLayout, ms: number, sync: FileSync = fsyncFileSync): Promise<void> {
  await makeDirDurable(layout.indexDir, sync);
  await writeFileAtomic(layout.unverifiedBeforePath, `${ms}\n`, layout.ingestDir, sync);
}

export async function clearUnverifiedBefore(layout: CacheLayout, sync: FileSync = fsyncFileSync): Promise<void> {
  await rm(layout.unverifiedBeforePath, { force: true });
  await sync.dir(layout.indexDir).catch(() => undefined);
}
