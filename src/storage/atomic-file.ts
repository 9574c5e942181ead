/**
 * Small files written atomically and durably: a temp file in the ingest
 * dir, flushed, renamed over the target, then the target's directory
 * flushed — so after a host crash the target holds either the old or the
 * new content, never a torn or empty file.
 */
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fsyncFileSync, makeDirDurable, type FileSync } from './file-sync.ts';
import { writerTag } from './layout.ts';

export async function writeFileAtomic(target: string, data: string | Uint8Array, tempDir: string, sync: FileSync = fsyncFileSync): Promise<void> {
  // The writer's pid is in the name, so the leftovers of a process that died can be told apart.
  const temp = path.join(tempDir, `${path.basename(target)}.${writerTag()}.tmp`);
  try {
    const handle = await open(temp, 'wx');
    try {
      await handle.writeFile(data);
      await sync.file(handle);
    } finally {
      await handle.close();
    }
    await makeDirDurable(path.dirname(target), sync);
    await rename(temp, target);
    await sync.dir(path.dirname(target));
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}
