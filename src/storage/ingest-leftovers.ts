/**
 * Files a writer left in `ingest/` (see layout.ts): each name carries the
 * pid of the process that wrote it, so when a worker dies its partial
 * fills and atomic writes can be named, counted and swept. Only files
 * directly in `ingest/` are ever looked at or removed.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { IngestLeftovers, LeftoverFile } from '../cache/ports.ts';
import { diskBytes } from './disk-blob-store.ts';
import { writerPid, type CacheLayout } from './layout.ts';

export class DiskIngestLeftovers implements IngestLeftovers {
  constructor(private readonly layout: CacheLayout) {}

  async writtenBy(pid: number): Promise<LeftoverFile[]> {
    const names = await readdir(this.layout.ingestDir).catch(() => [] as string[]);
    const files: LeftoverFile[] = [];
    for (const name of names) {
      if (writerPid(name) !== pid) continue;
      const file = await this.inspect(path.join(this.layout.ingestDir, name));
      if (file) files.push(file);
    }
    return files;
  }

  async inspect(file: string): Promise<LeftoverFile | undefined> {
    if (!this.inIngest(file)) return undefined;
    const info = await stat(file).catch(() => undefined);
    return info ? { path: file, bytes: diskBytes(info), mtimeMs: info.mtimeMs } : undefined;
  }

  async remove(file: string): Promise<void> {
    if (this.inIngest(file)) await rm(file, { force: true });
  }

  private inIngest(file: string): boolean {
    return path.dirname(path.resolve(file)) === this.layout.ingestDir;
  }
}
