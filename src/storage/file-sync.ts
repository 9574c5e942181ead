/**
 * Durability: what must reach stable storage before a write counts. A file
 * is flushed (fdatasync) before it is renamed into place, and the directory
 * that received the new name is flushed (fsync) after the rename, so after
 * a host crash a name under `blobs/` (or a small metadata file) never points
 * at bytes that were still in the page cache. Injected, so tests can check
 * the order and benchmarks can compare.
 */
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

export interface FileSync {
  /** Flushes a file's data (and the metadata needed to read it back) to stable storage. */
  file(handle: FileHandle): Promise<void>;
  /** Flushes a directory's entries (names added or removed in it) to stable storage. */
  dir(dir: string): Promise<void>;
}

export const fsyncFileSync: FileSync = {
  file: (handle) => handle.datasync(),
  async dir(dir) {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};

/** No flushing at all: for benchmarks that measure what durability costs. */
export const noFileSync: FileSync = { file: async () => undefined, dir: async () => undefined };

/**
 * `mkdir -p` whose new directories are themselves durable: each created
 * directory's name is flushed in its parent.
 */
export async function makeDirDurable(dir: string, sync: FileSync): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  const created: string[] = [];
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    created.push(current);
    if (current === path.resolve(first) || path.dirname(current) === current) break;
  }
  for (const made of created.reverse()) await sync.dir(path.dirname(made));
}
