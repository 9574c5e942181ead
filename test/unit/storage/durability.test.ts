/** Writes reach stable storage before they count: the file before its rename, the directory after. */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestOf } from '../../../src/registry/digest.ts';
import { writeFileAtomic } from '../../../src/storage/atomic-file.ts';
import { DiskBlobStore } from '../../../src/storage/disk-blob-store.ts';
import { DiskMetadataStore } from '../../../src/storage/disk-metadata-store.ts';
import type { FileSync } from '../../../src/storage/file-sync.ts';
import { cacheLayout, type CacheLayout } from '../../../src/storage/layout.ts';

interface SyncEvent {
  op: 'file' | 'dir';
  dir?: string;
  /** Whether the file under watch had its final name when the sync happened. */
  visible: boolean;
}

/** A FileSync that records what was flushed, and whether `watched` was visible at that moment. */
function recordingSync(): { sync: FileSync; events: SyncEvent[]; watch(file: string): void } {
  const events: SyncEvent[] = [];
  let watched = '';
  return {
    events,
    watch: (file) => {
      watched = file;
    },
    sync: {
      file: async (handle: FileHandle) => {
        await handle.datasync();
        events.push({ op: 'file', visible: existsSync(watched) });
      },
      dir: async (dir: string) => {
        events.push({ op: 'dir', dir, visible: existsSync(watched) });
      },
    },
  };
}

describe('durable writes', () => {
  let dir: string;
  let layout: CacheLayout;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'outpost-sync-'));
    layout = cacheLayout(dir);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('flushes a fill before renaming it into blobs/ and flushes its directory after', async () => {
    const recorder = recordingSync();
    const store = new DiskBlobStore(layout, { sync: recorder.sync });
    await store.init();
    const data = randomBytes(300_000);
    const digest = digestOf(data);
    const final = layout.blobPath(digest);
    recorder.watch(final);
    const ingest = await store.beginIngest(digest, data.length);
    await ingest.write(data);
    await ingest.commit();
    const fileSync = recorder.events.findIndex((e) => e.op === 'file');
    const dirSync = recorder.events.findIndex((e) => e.op === 'dir' && e.dir === path.dirname(final) && e.visible);
    expect(fileSync).toBeGreaterThanOrEqual(0);
    expect(recorder.events[fileSync]!.visible).toBe(false); // flushed before the rename
    expect(dirSync).toBeGreaterThan(fileSync); // the new name flushed after it
  });

  it('flushes a small atomic file before its rename and its directory after', async () => {
    const recorder = recordingSync();
    const target = path.join(dir, 'index', 'pins.json');
    recorder.watch(target);
    await writeFileAtomic(target, '["library/nginx:1.27"]', dir, recorder.sync);
    expect(recorder.events[0]).toMatchObject({ op: 'file', visible: false });
    expect(recorder.events.at(-1)).toMatchObject({ op: 'dir', dir: path.dirname(target), visible: true });
  });

  it('writes tag records and manifest metadata durably', async () => {
    const recorder = recordingSync();
    const metadata = new DiskMetadataStore(layout, recorder.sync);
    await mkdir(layout.ingestDir, { recursive: true });
    const digest = digestOf(Buffer.from('manifest'));
    recorder.watch(layout.tagPath('registry.test', 'library/nginx', '1.27'));
    await metadata.putTag('registry.test', 'library/nginx', '1.27', { digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 8, fetchedAt: 1 });
    expect(recorder.events.filter((e) => e.op === 'file')).toHaveLength(1);
    expect(recorder.events.at(-1)).toMatchObject({ op: 'dir', visible: true });
    await metadata.putManifestMeta(digest, { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 8 });
    expect(recorder.events.filter((e) => e.op === 'file')).toHaveLength(2);
  });
});
