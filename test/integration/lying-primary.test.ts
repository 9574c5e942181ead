/**
 * A primary that lies in manifest bodies (digests with `../` in an index's
 * children, an image's config or layers) must not make Outpost read, delete
 * or create anything outside its cache directory. The manifest is refused
 * (502, MANIFEST_INVALID in the detail) and never cached; manifests already
 * on disk are only ever followed through the validating walker.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startLyingRegistry, type LyingRegistry } from '../support/lying-registry.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';

const oci = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
};
const token = 'lying-primary-admin-token';
const sha = (data: string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** A "digest" that, joined under the cache's blobs/ dir, lands on `target`. */
const traversalTo = (target: string): string => `sha256:${'../'.repeat(24)}${target.slice(1)}`;

describe('a primary that lies in manifest bodies', () => {
  const cleanup = createCleanupStack();
  let primary: LyingRegistry;
  let outpost: OutpostNode;
  let outside: string;
  let secret: string;

  beforeAll(async () => {
    outside = await makeTempDir('outside-cache');
    cleanup.add(() => removeTempDir(outside));
    secret = path.join(outside, 'secret');
    await writeFile(secret, 'TOP SECRET: never served, never deleted');
    primary = await startLyingRegistry();
    cleanup.add(() => primary.close());
    outpost = await startOutpost({ upstreamUrl: primary.url, env: { OUTPOST_ADMIN_TOKEN: token } });
    cleanup.add(() => outpost.dispose());
  });
  afterAll(() => cleanup.run());

  const admin = (route: string, body: unknown): Promise<Response> =>
    fetch(`${outpost.url}/api/v0/cache/${route}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  async function outsideFiles(): Promise<string[]> {
    return (await readdir(outside)).sort();
  }

  async function cachedFiles(dir = outpost.cacheDir): Promise<string[]> {
    const out: string[] = [];
    for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
      if (entry.isFile()) out.push(path.relative(outpost.cacheDir, path.join(entry.parentPath, entry.name)));
    }
    return out;
  }

  it('refuses an index whose child digest walks out of the cache: 502, nothing read, nothing cached', async () => {
    primary.manifest('evil/read', 'v1', { schemaVersion: 2, mediaType: oci.index, manifests: [{ mediaType: oci.manifest, digest: traversalTo(secret), size: 40 }] }, oci.index);
    // A client that takes only single manifests makes Outpost follow the index's linux/amd64 child.
    for (const method of ['GET', 'HEAD']) {
      const res = await fetch(`${outpost.url}/v2/evil/read/manifests/v1`, { method, headers: { accept: oci.manifest } });
      expect(res.status).toBe(502);
      if (method === 'GET') {
        const body = await res.text();
        expect(body).not.toContain('TOP SECRET');
        expect(JSON.parse(body)).toMatchObject({ errors: [{ code: 'UPSTREAM_UNAVAILABLE', detail: { code: 'MANIFEST_INVALID' } }] });
      }
    }
    expect((await cachedFiles()).filter((f) => f.startsWith('blobs/') || f.startsWith('repositories/'))).toEqual([]);
    expect(await outsideFiles()).toEqual(['secret']);
  });

  it('refuses an image whose layer digest walks out of the cache', async () => {
    const config = '{"architecture":"amd64","os":"linux"}';
    primary.manifest(
      'evil/layer',
      'v1',
      { schemaVersion: 2, mediaType: oci.manifest, config: { mediaType: oci.config, digest: sha(config), size: config.length }, layers: [{ mediaType: oci.layer, digest: traversalTo(secret), size: 40 }] },
      oci.manifest,
    );
    const res = await fetch(`${outpost.url}/v2/evil/layer/manifests/v1`, { headers: { accept: oci.manifest } });
    expect(res.status).toBe(502);
    expect(await res.json()).toMatchObject({ errors: [{ detail: { code: 'MANIFEST_INVALID' } }] });
  });

  it('creates nothing outside the cache when pinning a lying image', async () => {
    const config = '{"architecture":"amd64","os":"linux"}';
    primary.set(`/v2/evil/pin/blobs/${sha(config)}`, { body: config });
    primary.manifest(
      'evil/pin',
      'v1',
      {
        schemaVersion: 2,
        mediaType: oci.manifest,
        config: { mediaType: oci.config, digest: sha(config), size: config.length },
        layers: [{ mediaType: oci.layer, digest: traversalTo(path.join(outside, 'created')), size: 4 }],
      },
      oci.manifest,
    );
    const res = await admin('pins', { reference: 'evil/pin:v1' });
    expect(res.status).toBe(502);
    expect(await outsideFiles()).toEqual(['secret']);
    expect(await readdir(path.join(outpost.cacheDir, 'ingest'))).toEqual([]);
  });

  it('deletes nothing outside the cache when purging a repository whose cached manifest lies', async () => {
    // A manifest already on disk (written before this version, or by hand) that references a traversal "digest".
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: oci.manifest,
      config: { mediaType: oci.config, digest: traversalTo(secret), size: 1 },
      layers: [{ mediaType: oci.layer, digest: traversalTo(secret), size: 1 }],
    });
    const digest = sha(body);
    const hex = digest.slice(7);
    const blob = path.join(outpost.cacheDir, 'blobs', 'sha256', hex.slice(0, 2), hex);
    await mkdir(path.dirname(blob), { recursive: true });
    await writeFile(blob, body);
    const meta = path.join(outpost.cacheDir, 'manifests', 'sha256', hex.slice(0, 2), `${hex}.json`);
    await mkdir(path.dirname(meta), { recursive: true });
    await writeFile(meta, JSON.stringify({ mediaType: oci.manifest, size: body.length }));
    const links = path.join(outpost.cacheDir, 'repositories', primary.host.replace(':', '_'), 'evil', 'purge', '_manifests');
    await mkdir(links, { recursive: true });
    await writeFile(path.join(links, `sha256-${hex}`), '');

    const res = await admin('purge', { repository: 'evil/purge' });
    expect(res.status).toBe(200);
    expect(await readFile(secret, 'utf8')).toContain('TOP SECRET');
    expect(await outsideFiles()).toEqual(['secret']);
  });
});
