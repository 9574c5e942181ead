/** Which digests a repository purge removes, read through the BlobStore and MetadataStore ports (memory adapters). */
import { describe, expect, it } from 'vitest';
import { PurgePlanner } from '../../../src/cache/purge-planner.ts';
import { mediaTypes } from '../../../src/registry/media-types.ts';
import { cachedRepositories } from '../../support/memory-cache-ports.ts';

const upstreams = ['registry.test', 'mirror.test'];

describe('PurgePlanner', () => {
  it('removes a repository\'s manifests, index children, configs and layers, but keeps what another repository references', async () => {
    const { files, metadata, blob, image, index } = cachedRepositories();
    const base = blob('base layer');
    const own = blob('app layer');
    const config = blob('app config');
    const child = await image(config, [base, own]);
    const top = await index([child]);
    await metadata.linkManifest('registry.test', 'library/app', top);
    const otherConfig = blob('other config');
    const other = await image(otherConfig, [base]); // shares the base layer
    await metadata.linkManifest('mirror.test', 'library/other', other);

    const planner = new PurgePlanner({ blobs: files, metadata, upstreamKeys: upstreams });
    expect(new Set(await planner.repository('library/app'))).toEqual(new Set([top, child, config, own]));
    expect(new Set(await planner.repository('library/other'))).toEqual(new Set([other, otherConfig]));
  });

  it('takes a repository of that name from every upstream', async () => {
    const { files, metadata, blob, image } = cachedRepositories();
    const a = await image(blob('config a'), []);
    const b = await image(blob('config b'), []);
    await metadata.linkManifest('registry.test', 'library/app', a);
    await metadata.linkManifest('mirror.test', 'library/app', b);
    const planner = new PurgePlanner({ blobs: files, metadata, upstreamKeys: upstreams });
    expect(await planner.repository('library/app')).toHaveLength(4);
  });

  it('treats a cached manifest that does not parse, or whose bytes are gone, as a leaf', async () => {
    const { files, metadata, blob, manifest, image } = cachedRepositories();
    const broken = await manifest({ schemaVersion: 2, config: 'not a descriptor' }, mediaTypes.ociManifest);
    const layer = blob('layer of a manifest whose bytes are gone');
    const gone = await image(blob('config'), [layer]);
    files.files.delete(gone);
    await metadata.linkManifest('registry.test', 'library/app', broken);
    await metadata.linkManifest('registry.test', 'library/app', gone);
    const planner = new PurgePlanner({ blobs: files, metadata, upstreamKeys: upstreams });
    expect(new Set(await planner.repository('library/app'))).toEqual(new Set([broken, gone]));
  });

  it('plans nothing for a repository the cache does not hold', async () => {
    const { files, metadata } = cachedRepositories();
    const planner = new PurgePlanner({ blobs: files, metadata, upstreamKeys: upstreams });
    expect(await planner.repository('library/none')).toEqual([]);
  });
});
