/**
 * How long the eviction index takes to load at start-up with N cached blobs
 * (default 100,000): once without a snapshot (every file stat'ed) and once
 * from the snapshot (directories listed, nothing stat'ed).
 *
 *   node --import tsx bench/index-startup.ts [--blobs 100000]
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { digestOf } from '../src/registry/digest.ts';
import path from 'node:path';
import { EvictionService } from '../src/cache/eviction-service.ts';
import { systemClock } from '../src/cache/ports.ts';
import { DiskCrashMarkers } from '../src/storage/crash-state.ts';
import { DiskBlobStore } from '../src/storage/disk-blob-store.ts';
import { SnapshotIndexPersistence } from '../src/storage/index-snapshot.ts';
import { DiskIngestLeftovers } from '../src/storage/ingest-leftovers.ts';
import { cacheLayout } from '../src/storage/layout.ts';

const argIndex = process.argv.indexOf('--blobs');
const count = argIndex > 0 ? Number(process.argv[argIndex + 1]) : 100_000;
const silent = { debug() {}, info() {}, warn() {}, error() {} };

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'outpost-index-bench-'));
  try {
    const layout = cacheLayout(dir);
    const store = new DiskBlobStore(layout);
    await store.init();
    const made = performance.now();
    const batch = 500;
    for (let i = 0; i < count; i += batch) {
      await Promise.all(
        Array.from({ length: Math.min(batch, count - i) }, async (_, j) => {
          const content = `blob ${i + j}`;
          const digest = digestOf(Buffer.from(content));
          const file = layout.blobPath(digest);
          await mkdir(path.dirname(file), { recursive: true });
          await writeFile(file, content);
        }),
      );
    }
    console.log(`created ${count} blobs in ${Math.round(performance.now() - made)} ms`);
    const owner = () =>
      new EvictionService({
        files: store,
        persistence: new SnapshotIndexPersistence(layout),
        markers: new DiskCrashMarkers(layout),
        leftovers: new DiskIngestLeftovers(layout),
        clock: systemClock,
        logger: silent,
        maxBytes: 2 ** 40,
        highWatermark: 0.95,
        lowWatermark: 0.85,
        retentionMs: 0,
      });
    const cold = owner();
    const first = await cold.load();
    console.log(`start-up without a snapshot (stat every file): ${first.entries} entries in ${first.ms} ms`);
    await cold.stop(); // writes the snapshot
    const warm = owner();
    const second = await warm.load();
    console.log(`start-up from the snapshot:                  ${second.entries} entries in ${second.ms} ms`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

void main();
