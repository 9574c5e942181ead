/**
 * The admin operations on memory adapters: the answers the admin API and
 * the CLI read (purges with the scope the primary broadcasts to workers),
 * pins that are saved, and unknown operations.
 */
import { describe, expect, it } from 'vitest';
import { CacheAdminService } from '../../../src/cache/cache-admin-service.ts';
import { EvictionService } from '../../../src/cache/eviction-service.ts';
import { PurgePlanner } from '../../../src/cache/purge-planner.ts';
import type { Digest } from '../../../src/registry/digest.ts';
import {
  cachedRepositories,
  MemoryCrashMarkers,
  MemoryIndexPersistence,
  MemoryIngestLeftovers,
  MemoryPinStore,
} from '../../support/memory-cache-ports.ts';
import { parseAdminRequest } from '../../../src/cache/admin-request.ts';

/** An admin request as it arrives over IPC: parsed, then run. */
async function call(admin: { handle(request: ReturnType<typeof parseAdminRequest>): Promise<unknown> }, op: string, args: Record<string, unknown> = {}): Promise<unknown> {
  return admin.handle(parseAdminRequest({ op, ...args, target: args }));
}

const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const upstreamKeys = ['registry.test', 'mirror.test'];

async function setup(configPins: string[] = []) {
  const cache = cachedRepositories();
  const { files, metadata } = cache;
  const evictions = new EvictionService({
    files,
    persistence: new MemoryIndexPersistence(files),
    markers: new MemoryCrashMarkers(),
    leftovers: new MemoryIngestLeftovers(),
    clock: { now: () => 1 },
    logger: silent,
    maxBytes: 1_000_000,
    highWatermark: 0.9,
    lowWatermark: 0.5,
    retentionMs: 0,
  });
  const pins = new MemoryPinStore();
  const admin = new CacheAdminService({
    evictions,
    planner: new PurgePlanner({ blobs: files, metadata, upstreamKeys }),
    metadata,
    pins,
    upstreamKeys,
    configPins,
  });
  /** Indexes every file in the cache, as workers would have reported them. */
  const indexAll = (): void => {
    evictions.apply({ touched: [], added: [...files.files].map(([digest, file]): [Digest, number, 'blob'] => [digest, file.bytes, 'blob']) });
  };
  return { ...cache, evictions, admin, pins, indexAll };
}

describe('CacheAdminService', () => {
  it('purges a repository: its content but what another repository shares, its metadata in every upstream, and says so in the scope', async () => {
    const { admin, metadata, files, blob, image, indexAll } = await setup();
    const shared = blob('shared layer');
    const config = blob('app config');
    const app = await image(config, [shared]);
    const other = await image(blob('other config'), [shared]);
    await metadata.linkManifest('registry.test', 'library/app', app);
    await metadata.linkManifest('mirror.test', 'library/app', app);
    await metadata.linkManifest('registry.test', 'library/other', other);
    indexAll();
    const bytes = (await files.inspect(app))!.bytes + (await files.inspect(config))!.bytes;
    const answer = (await call(admin, 'purge', { repository: 'library/app' })) as { scope: { digests: Digest[] } };
    expect(answer).toEqual({
      removed: 2,
      bytes,
      scope: {
        kind: 'some',
        digests: expect.arrayContaining([app, config]),
        repositories: [
          { upstream: 'registry.test', name: 'library/app' },
          { upstream: 'mirror.test', name: 'library/app' },
        ],
      },
    });
    expect(answer.scope.digests).toHaveLength(2);
    expect(files.has(shared)).toBe(true);
    expect(files.has(app)).toBe(false);
    expect(await metadata.listRepositories('registry.test')).toEqual(['library/other']);
    expect(await metadata.listRepositories('mirror.test')).toEqual([]);
  });

  it('purges a digest and says which', async () => {
    const { admin, blob, indexAll } = await setup();
    const layer = blob('a layer');
    indexAll();
    expect(await call(admin, 'purge', { digest: layer })).toEqual({
      removed: 1,
      bytes: Buffer.byteLength('a layer'),
      scope: { kind: 'some', digests: [layer], repositories: [] },
    });
  });

  it('purges everything: every entry and every repository', async () => {
    const { admin, metadata, files, blob, image, indexAll } = await setup();
    await metadata.linkManifest('registry.test', 'library/app', await image(blob('config'), []));
    indexAll();
    expect(await call(admin, 'purge', { all: true })).toEqual({ removed: 2, bytes: expect.any(Number), scope: { kind: 'all' } });
    expect(files.files.size).toBe(0);
    expect(await metadata.listRepositories('registry.test')).toEqual([]);
  });

  it('refuses a purge of nothing, a malformed digest and an unknown operation', async () => {
    const { admin } = await setup();
    await expect(call(admin, 'purge', {})).rejects.toMatchObject({ code: 'BODY_INVALID' });
    await expect(call(admin, 'purge', { digest: 'sha256:nope' })).rejects.toMatchObject({ code: 'DIGEST_INVALID' });
    await expect(call(admin, 'purge', { repository: '../etc' })).rejects.toMatchObject({ code: 'NAME_INVALID' });
    await expect(call(admin, 'reboot', {})).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    await expect(call(admin, 'verify', {})).rejects.toMatchObject({ code: 'UNSUPPORTED' }); // no scrub wired
  });

  it('saves pins added with persist, forgets them on unpin, and lists them with the configured ones', async () => {
    const { admin, pins, evictions, blob } = await setup(['library/base:1']);
    pins.saved = ['library/saved:1'];
    await admin.loadPins();
    expect(admin.pinnedReferences()).toEqual(['library/base:1', 'library/saved:1']);
    const layer = blob('pinned layer');
    expect(await call(admin, 'pin', { reference: 'library/app:1', digests: [layer, 'not a digest'], persist: true })).toEqual({ reference: 'library/app:1', digests: 1 });
    expect(pins.saved).toEqual(['library/saved:1', 'library/app:1']);
    expect(evictions.index.isPinned(layer)).toBe(true);
    expect(await call(admin, 'pin', { reference: 'library/base:1', digests: [] })).toEqual({ reference: 'library/base:1', digests: 0 });
    expect(pins.saved).toEqual(['library/saved:1', 'library/app:1']); // not asked to persist
    expect(await call(admin, 'pins', {})).toEqual({
      pins: [
        { reference: 'library/app:1', digests: 1 },
        { reference: 'library/base:1', digests: 0 },
      ],
      configured: ['library/base:1', 'library/saved:1', 'library/app:1'],
    });
    expect(await call(admin, 'unpin', { reference: 'library/app:1' })).toEqual({ reference: 'library/app:1', removed: true });
    expect(pins.saved).toEqual(['library/saved:1']);
    expect(evictions.index.isPinned(layer)).toBe(false);
    expect(await call(admin, 'unpin', { reference: 'library/none:1' })).toEqual({ reference: 'library/none:1', removed: false });
  });

  it('answers stats and listings from the eviction service', async () => {
    const { admin, blob, indexAll } = await setup();
    blob('a');
    blob('b');
    indexAll();
    expect(await call(admin, 'stats', {})).toMatchObject({ entries: 2, blobs: 2, manifests: 0, maxBytes: 1_000_000 });
    expect(await call(admin, 'list', { limit: 1 })).toMatchObject({ entries: [{ pinned: false }], next: 1 });
  });
});
