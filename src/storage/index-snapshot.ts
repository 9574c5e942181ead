/**
 * Persistence of the eviction index: a snapshot of (digest, bytes, kind,
 * last access) in least-recently-used order, written atomically, and a scan
 * of `blobs/` that reconciles it with what is really on disk. Start-up reads
 * the snapshot and lists directories; only files the snapshot does not know
 * are stat'ed, so 100,000 blobs load in about a second.
 *
 *   <cache dir>/index/lru.snapshot   "outpost-lru 1" then one "digest bytes kind lastAccess" line per entry
 */
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { EntryKind, IndexEntry } from '../cache/eviction-index.ts';
import { tryParseDigest, type Digest } from '../registry/digest.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { diskBytes } from './disk-blob-store.ts';
import type { CacheLayout } from './layout.ts';

const header = 'outpost-lru 1';

export function snapshotPath(layout: CacheLayout): string {
  return path.join(layout.root, 'index', 'lru.snapshot');
}

export async function writeSnapshot(layout: CacheLayout, entries: Iterable<IndexEntry>): Promise<number> {
  const lines = [header];
  for (const e of entries) lines.push(`${e.digest} ${e.bytes} ${e.kind} ${e.lastAccess}`);
  await mkdir(path.dirname(snapshotPath(layout)), { recursive: true });
  await writeFileAtomic(snapshotPath(layout), `${lines.join('\n')}\n`, layout.ingestDir);
  return lines.length - 1;
}

async function readSnapshot(layout: CacheLayout): Promise<Map<Digest, IndexEntry>> {
  const entries = new Map<Digest, IndexEntry>();
  let text: string;
  try {
    text = await readFile(snapshotPath(layout), 'utf8');
  } catch {
    return entries;
  }
  const lines = text.split('\n');
  if (lines[0] !== header) return entries;
  for (let i = 1; i < lines.length; i++) {
    const [raw, bytes, kind, lastAccess] = (lines[i] ?? '').split(' ');
    const digest = tryParseDigest(raw);
    if (!digest || (kind !== 'blob' && kind !== 'manifest')) continue;
    entries.set(digest, { digest, bytes: Number(bytes), kind, lastAccess: Number(lastAccess) });
  }
  return entries;
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/** Every `algorithm:encoded` under a two-level sharded tree (blobs/ or manifests/); stray files are ignored. */
async function listDigests(root: string, suffix = ''): Promise<Digest[]> {
  const digests: Digest[] = [];
  for (const algorithm of await listDir(root)) {
    const shards = await listDir(path.join(root, algorithm));
    const lists = await Promise.all(shards.map((shard) => listDir(path.join(root, algorithm, shard))));
    for (const files of lists) {
      for (const file of files) {
        if (suffix && !file.endsWith(suffix)) continue;
        const digest = tryParseDigest(`${algorithm}:${suffix ? file.slice(0, -suffix.length) : file}`);
        if (digest) digests.push(digest);
      }
    }
  }
  return digests;
}

export interface LoadedIndex {
  /** Oldest access first, ready to insert in order. */
  entries: IndexEntry[];
  fromSnapshot: number;
  scanned: number;
}

/** The cache as it is on disk, in approximately least-recently-used order. */
export async function loadIndex(layout: CacheLayout): Promise<LoadedIndex> {
  const [snapshot, blobs, manifests] = await Promise.all([
    readSnapshot(layout),
    listDigests(path.join(layout.root, 'blobs')),
    listDigests(path.join(layout.root, 'manifests'), '.json'),
  ]);
  const manifestSet = new Set(manifests);
  const entries: IndexEntry[] = [];
  const unknown: Digest[] = [];
  let fromSnapshot = 0;
  for (const digest of blobs) {
    const known = snapshot.get(digest);
    if (known) {
      entries.push(known);
      fromSnapshot += 1;
    } else {
      unknown.push(digest);
    }
  }
  // Files the snapshot does not know (written after it, or no snapshot): their mtime stands for last access.
  const batch = 256;
  for (let i = 0; i < unknown.length; i += batch) {
    const slice = unknown.slice(i, i + batch);
    const infos = await Promise.all(slice.map((digest) => stat(layout.blobPath(digest)).catch(() => undefined)));
    slice.forEach((digest, j) => {
      const info = infos[j];
      if (!info) return;
      const kind: EntryKind = manifestSet.has(digest) ? 'manifest' : 'blob';
      entries.push({ digest, bytes: diskBytes(info), kind, lastAccess: info.mtimeMs });
    });
  }
  entries.sort((a, b) => a.lastAccess - b.lastAccess);
  return { entries, fromSnapshot, scanned: unknown.length };
}
