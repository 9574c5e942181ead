/** Manifest media types, tag answers and repository links as small JSON files (see layout.ts). */
import { access, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { LinkKind, ManifestMeta, MetadataStore, TagRecord } from '../cache/ports.ts';
import { tryParseDigest, type Digest } from '../registry/digest.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { fsyncFileSync, noFileSync, type FileSync } from './file-sync.ts';
import type { CacheLayout } from './layout.ts';

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // A missing file is a miss; a torn or foreign file is treated as a miss too and gets rewritten.
    if (code === 'ENOENT' || err instanceof SyntaxError) return undefined;
    throw err;
  }
}

/** An empty file whose existence is the link; not flushed (a link lost in a crash is asked of the primary again). */
async function writeLink(link: string): Promise<void> {
  await mkdir(path.dirname(link), { recursive: true });
  await writeFile(link, '');
}

/**
 * Manifest metadata and tag records are written durably (a torn tag record
 * would cost stale-if-error its answer after a host crash); relayed answers
 * only atomically — a torn one reads as a miss and is fetched again.
 */
export class DiskMetadataStore implements MetadataStore {
  constructor(
    private readonly layout: CacheLayout,
    private readonly sync: FileSync = fsyncFileSync,
  ) {}

  async getManifestMeta(digest: Digest): Promise<ManifestMeta | undefined> {
    const meta = await readJson<Partial<ManifestMeta>>(this.layout.manifestMetaPath(digest));
    if (typeof meta?.mediaType !== 'string' || typeof meta.size !== 'number') return undefined;
    return { mediaType: meta.mediaType, size: meta.size };
  }

  putManifestMeta(digest: Digest, meta: ManifestMeta): Promise<void> {
    return writeFileAtomic(this.layout.manifestMetaPath(digest), JSON.stringify(meta), this.layout.ingestDir, this.sync);
  }

  async getTag(upstream: string, name: string, tag: string): Promise<TagRecord | undefined> {
    const record = await readJson<Record<string, unknown>>(this.layout.tagPath(upstream, name, tag));
    const digest = tryParseDigest(record?.digest);
    // A torn or foreign record is a miss (and gets rewritten), never a path.
    if (!record || !digest || typeof record.mediaType !== 'string' || typeof record.size !== 'number' || typeof record.fetchedAt !== 'number') return undefined;
    return { digest, mediaType: record.mediaType, size: record.size, fetchedAt: record.fetchedAt };
  }

  putTag(upstream: string, name: string, tag: string, record: TagRecord): Promise<void> {
    return writeFileAtomic(this.layout.tagPath(upstream, name, tag), JSON.stringify(record), this.layout.ingestDir, this.sync);
  }

  linkManifest(upstream: string, name: string, digest: Digest): Promise<void> {
    return writeLink(this.layout.manifestLinkPath(upstream, name, digest));
  }

  linkBlob(upstream: string, name: string, digest: Digest): Promise<void> {
    return writeLink(this.layout.blobLinkPath(upstream, name, digest));
  }

  async hasLink(upstream: string, name: string, kind: LinkKind, digest: Digest): Promise<boolean> {
    const link = kind === 'manifest' ? this.layout.manifestLinkPath(upstream, name, digest) : this.layout.blobLinkPath(upstream, name, digest);
    try {
      await access(link);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      throw err;
    }
  }

  getRelayed(upstream: string, name: string, key: string): Promise<unknown | undefined> {
    return readJson<unknown>(this.layout.relayedPath(upstream, name, key));
  }

  putRelayed(upstream: string, name: string, key: string, value: unknown): Promise<void> {
    return writeFileAtomic(this.layout.relayedPath(upstream, name, key), JSON.stringify(value), this.layout.ingestDir, noFileSync);
  }

  async listManifestLinks(upstream: string, name: string): Promise<Digest[]> {
    let files: string[];
    try {
      files = await readdir(this.layout.manifestLinksDir(upstream, name));
    } catch {
      return [];
    }
    return files.map((file) => tryParseDigest(file.replace('-', ':'))).filter((d): d is Digest => d !== undefined);
  }

  async removeRepository(upstream: string, name: string): Promise<void> {
    const dir = path.join(this.layout.repositoriesDir(upstream), name);
    for (const sub of ['_tags', '_manifests', '_layers', '_relayed']) await rm(path.join(dir, sub), { recursive: true, force: true });
  }

  async removeAllRepositories(): Promise<void> {
    await rm(this.layout.repositoriesRoot, { recursive: true, force: true });
  }

  async listRepositories(upstream: string): Promise<string[]> {
    const root = this.layout.repositoriesDir(upstream);
    const names: string[] = [];
    const walk = async (dir: string, prefix: string, depth: number): Promise<void> => {
      if (depth > 32) return;
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      if (entries.some((e) => e.isDirectory() && (e.name === '_tags' || e.name === '_manifests'))) {
        names.push(prefix);
      }
      for (const entry of entries) {
        if (!entry.isDirectory() || entry.name.startsWith('_')) continue;
        await walk(path.join(dir, entry.name), prefix ? `${prefix}/${entry.name}` : entry.name, depth + 1);
      }
    };
    await walk(root, '', 0);
    return names.sort();
  }
}
