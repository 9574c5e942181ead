/**
 * Memory adapters for the ports the eviction service, the purge planner and
 * the admin service see (cache/ports.ts): cached files, index persistence,
 * crash markers, ingest leftovers, pins and repository metadata. Each does
 * what its disk adapter in storage/ does, in maps, and records what it was
 * asked to do so tests can look.
 */
import { MemoryBlob } from '../../src/cache/memory-blob.ts';
import type {
  BlobFiles,
  BlobStore,
  CrashMarkers,
  IndexEntry,
  IndexPersistence,
  IngestLeftovers,
  LinkKind,
  LeftoverFile,
  LoadedIndex,
  ManifestMeta,
  MetadataStore,
  OpenBlob,
  PinStore,
  TagRecord,
} from '../../src/cache/ports.ts';
import { digestOf, type Digest } from '../../src/registry/digest.ts';
import { mediaTypes } from '../../src/registry/media-types.ts';

interface MemoryFile {
  data: Buffer;
  /** What the file takes "on disk". */
  bytes: number;
  mtimeMs: number;
}

/** Cached blob files: inspect, remove (which can be held pending) and open. */
export class MemoryBlobFiles implements BlobFiles, Pick<BlobStore, 'open'> {
  readonly files = new Map<Digest, MemoryFile>();
  readonly removed: Digest[] = [];
  private held: (() => void)[] | undefined;

  /** Stores `data` under its digest; `bytes` defaults to the data's length. */
  put(data: Buffer | string, options: { bytes?: number; mtimeMs?: number } = {}): Digest {
    const buffer = Buffer.from(data);
    const digest = digestOf(buffer);
    this.files.set(digest, { data: buffer, bytes: options.bytes ?? buffer.byteLength, mtimeMs: options.mtimeMs ?? 0 });
    return digest;
  }

  has(digest: Digest): boolean {
    return this.files.has(digest);
  }

  async inspect(digest: Digest): Promise<{ bytes: number; size: number } | undefined> {
    const file = this.files.get(digest);
    return file ? { bytes: file.bytes, size: file.data.byteLength } : undefined;
  }

  /** Deletes the file at once; while removes are held, resolves only when they are released. */
  async remove(digest: Digest): Promise<void> {
    this.files.delete(digest);
    this.removed.push(digest);
    if (this.held) await new Promise<void>((resolve) => this.held!.push(resolve));
  }

  /** Removes wait until the returned function is called. */
  holdRemoves(): () => void {
    const held: (() => void)[] = [];
    this.held = held;
    return () => {
      this.held = undefined;
      for (const release of held) release();
    };
  }

  async open(digest: Digest): Promise<OpenBlob | undefined> {
    const file = this.files.get(digest);
    return file ? new MemoryBlob(file.data) : undefined;
  }
}

/**
 * The index as a saved list, reconciled with the files like the snapshot:
 * entries whose file is gone are dropped, files it does not know are
 * scanned (their mtime stands for last access), and with `checkSizes` a
 * file whose size is not the recorded one is reported torn.
 */
export class MemoryIndexPersistence implements IndexPersistence {
  saved: IndexEntry[] | undefined;
  saves = 0;
  failSaves = false;

  constructor(private readonly files: MemoryBlobFiles) {}

  async load(options: { checkSizes: boolean }): Promise<LoadedIndex> {
    const known = new Map((this.saved ?? []).map((e) => [e.digest, e]));
    const entries: IndexEntry[] = [];
    const torn: Digest[] = [];
    let fromSnapshot = 0;
    let scanned = 0;
    let newestMtimeMs = 0;
    for (const [digest, file] of this.files.files) {
      const entry = known.get(digest);
      if (options.checkSizes || !entry) newestMtimeMs = Math.max(newestMtimeMs, file.mtimeMs);
      if (!entry) {
        scanned += 1;
        entries.push({ digest, bytes: file.bytes, kind: 'blob', lastAccess: file.mtimeMs });
      } else if (options.checkSizes && entry.size !== undefined && entry.size !== file.data.byteLength) {
        torn.push(digest);
      } else {
        fromSnapshot += 1;
        entries.push({ ...entry });
      }
    }
    entries.sort((a, b) => a.lastAccess - b.lastAccess);
    return { entries, fromSnapshot, scanned, torn, newestMtimeMs };
  }

  async save(entries: Iterable<IndexEntry>): Promise<void> {
    const copy = [...entries].map((e) => ({ ...e }));
    if (this.failSaves) throw new Error('disk full');
    this.saved = copy;
    this.saves += 1;
  }
}

export class MemoryCrashMarkers implements CrashMarkers {
  clean = false;
  unverifiedBefore: number | undefined;
  /** Every call, in order, so tests can check what came last. */
  readonly calls: string[] = [];

  async consumeCleanShutdown(): Promise<boolean> {
    this.calls.push('consumeCleanShutdown');
    const was = this.clean;
    this.clean = false;
    return was;
  }

  async recordCleanShutdown(): Promise<void> {
    this.calls.push('recordCleanShutdown');
    this.clean = true;
  }

  async readUnverifiedBefore(): Promise<number | undefined> {
    return this.unverifiedBefore;
  }

  async writeUnverifiedBefore(ms: number): Promise<void> {
    this.calls.push('writeUnverifiedBefore');
    this.unverifiedBefore = ms;
  }

  async clearUnverifiedBefore(): Promise<void> {
    this.calls.push('clearUnverifiedBefore');
    this.unverifiedBefore = undefined;
  }
}

/** Files in a pretend ingest area, each written by a pid. */
export class MemoryIngestLeftovers implements IngestLeftovers {
  readonly files = new Map<string, LeftoverFile & { pid: number }>();

  write(path: string, pid: number, bytes: number, mtimeMs = 0): void {
    this.files.set(path, { path, pid, bytes, mtimeMs });
  }

  async writtenBy(pid: number): Promise<LeftoverFile[]> {
    return [...this.files.values()].filter((f) => f.pid === pid).map(({ path, bytes, mtimeMs }) => ({ path, bytes, mtimeMs }));
  }

  async inspect(path: string): Promise<LeftoverFile | undefined> {
    const file = this.files.get(path);
    return file ? { path: file.path, bytes: file.bytes, mtimeMs: file.mtimeMs } : undefined;
  }

  async remove(path: string): Promise<void> {
    this.files.delete(path);
  }
}

export class MemoryPinStore implements PinStore {
  saved: string[] = [];

  async load(): Promise<string[]> {
    return [...this.saved];
  }

  async save(references: readonly string[]): Promise<void> {
    this.saved = [...references];
  }
}

const key = (...parts: string[]): string => parts.join('\u0000');

/** Repositories, tags, links and manifest metadata in maps. */
export class MemoryMetadataStore implements MetadataStore {
  readonly manifests = new Map<Digest, ManifestMeta>();
  private readonly tags = new Map<string, TagRecord>();
  private readonly relayed = new Map<string, unknown>();
  /** upstream → repository name → the manifests it links. */
  readonly links = new Map<string, Map<string, Set<Digest>>>();
  /** Blob links, as `upstream, name, digest` keys. */
  readonly blobLinks = new Set<string>();

  async getManifestMeta(digest: Digest): Promise<ManifestMeta | undefined> {
    return this.manifests.get(digest);
  }

  async putManifestMeta(digest: Digest, meta: ManifestMeta): Promise<void> {
    this.manifests.set(digest, meta);
  }

  async getTag(upstream: string, name: string, tag: string): Promise<TagRecord | undefined> {
    return this.tags.get(key(upstream, name, tag));
  }

  async putTag(upstream: string, name: string, tag: string, record: TagRecord): Promise<void> {
    this.tags.set(key(upstream, name, tag), record);
  }

  async linkManifest(upstream: string, name: string, digest: Digest): Promise<void> {
    const repositories = this.links.get(upstream) ?? new Map<string, Set<Digest>>();
    this.links.set(upstream, repositories);
    const linked = repositories.get(name) ?? new Set<Digest>();
    repositories.set(name, linked);
    linked.add(digest);
  }

  async linkBlob(upstream: string, name: string, digest: Digest): Promise<void> {
    this.blobLinks.add(key(upstream, name, digest));
  }

  async hasLink(upstream: string, name: string, kind: LinkKind, digest: Digest): Promise<boolean> {
    if (kind === 'blob') return this.blobLinks.has(key(upstream, name, digest));
    return this.links.get(upstream)?.get(name)?.has(digest) ?? false;
  }

  async listRepositories(upstream: string): Promise<string[]> {
    return [...(this.links.get(upstream)?.keys() ?? [])].sort();
  }

  async listManifestLinks(upstream: string, name: string): Promise<Digest[]> {
    return [...(this.links.get(upstream)?.get(name) ?? [])];
  }

  async removeRepository(upstream: string, name: string): Promise<void> {
    this.links.get(upstream)?.delete(name);
    const prefix = key(upstream, name, '');
    for (const map of [this.tags, this.relayed]) {
      for (const k of [...map.keys()]) if (k.startsWith(prefix)) map.delete(k);
    }
    for (const k of [...this.blobLinks]) if (k.startsWith(prefix)) this.blobLinks.delete(k);
  }

  async removeAllRepositories(): Promise<void> {
    this.links.clear();
    this.blobLinks.clear();
    this.tags.clear();
    this.relayed.clear();
  }

  async getRelayed(upstream: string, name: string, k: string): Promise<unknown | undefined> {
    return this.relayed.get(key(upstream, name, k));
  }

  async putRelayed(upstream: string, name: string, k: string, value: unknown): Promise<void> {
    this.relayed.set(key(upstream, name, k), value);
  }
}

/** A cache holding manifests, their configs and layers, linked to repositories. */
export function cachedRepositories() {
  const files = new MemoryBlobFiles();
  const metadata = new MemoryMetadataStore();
  const blob = (name: string): Digest => files.put(name);
  const manifest = async (body: unknown, mediaType: string): Promise<Digest> => {
    const data = Buffer.from(JSON.stringify(body));
    const digest = files.put(data);
    await metadata.putManifestMeta(digest, { mediaType, size: data.byteLength });
    return digest;
  };
  const image = (config: Digest, layers: Digest[]) =>
    manifest(
      {
        schemaVersion: 2,
        mediaType: mediaTypes.ociManifest,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 1 },
        layers: layers.map((digest) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size: 1 })),
      },
      mediaTypes.ociManifest,
    );
  const index = (children: Digest[]) =>
    manifest(
      {
        schemaVersion: 2,
        mediaType: mediaTypes.ociIndex,
        manifests: children.map((digest) => ({ mediaType: mediaTypes.ociManifest, digest, size: 1, platform: { os: 'linux', architecture: 'amd64' } })),
      },
      mediaTypes.ociIndex,
    );
  return { files, metadata, blob, manifest, image, index };
}

/** Links that say every repository has every blob: for tests about fills, not about which repository may serve what. */
export const everyBlobLinked = { has: async (): Promise<boolean> => true, add: async (): Promise<void> => undefined };
