/**
 * Test content on the primary: one "app" image (a big layer plus smaller
 * ones) and many tiny images, one repository each; then the same blob files
 * laid out for nginx (hard links into the primary's storage: same bytes,
 * same page cache) and the app manifest as a static file.
 */
import { link, copyFile, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { makeImage, makeLayer, pushImage, type Layer } from '../test/support/images.ts';

export const manifestAccept = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
].join(', ');

export const manifestMediaType = 'application/vnd.docker.distribution.manifest.v2+json';

export interface BlobRef {
  digest: string;
  size: number;
}

export interface SeededImage {
  repo: string;
  tag: string;
  manifestDigest: string;
  manifest: Buffer;
  config: BlobRef;
  layers: BlobRef[];
}

export interface Seed {
  app: SeededImage;
  /** The app image's big layer. */
  big: BlobRef;
  tiny: SeededImage[];
}

export interface SeedSizes {
  bigLayerBytes: number;
  otherLayerBytes: number[];
  tinyImages: number;
}

/** A tiny image's config is padded to about this size. */
const smallConfigBytes = 600;
/** Tar content that gzips to a layer of about 4 KiB (random content does not compress; headers do). */
const tinyLayerContentBytes = 3806;

function ref(layer: Layer): BlobRef {
  return { digest: layer.digest, size: layer.size };
}

function tinyImage(index: number): { repo: string; image: ReturnType<typeof makeImage> } {
  const repo = `bench/tiny-${String(index).padStart(3, '0')}`;
  const layer = makeLayer({ sizeBytes: tinyLayerContentBytes, seed: `outpost-bench-tiny-${index}` });
  const labels = (pad: string): Record<string, string> => ({
    'org.opencontainers.image.title': repo,
    'org.opencontainers.image.description': pad,
  });
  const unpadded = makeImage({ mediaTypes: 'docker', layers: [layer], labels: labels('') });
  const pad = 'x'.repeat(Math.max(0, smallConfigBytes - unpadded.config.size));
  return { repo, image: makeImage({ mediaTypes: 'docker', layers: [layer], labels: labels(pad) }) };
}

async function inBatches<T>(items: readonly T[], size: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

export async function seedPrimary(primaryUrl: string, sizes: SeedSizes): Promise<Seed> {
  // Deterministic seeds: the same bytes every run.
  const bigLayer = makeLayer({ sizeBytes: sizes.bigLayerBytes, seed: `outpost-bench-big-${sizes.bigLayerBytes}` });
  const others = sizes.otherLayerBytes.map((bytes, i) => makeLayer({ sizeBytes: bytes, seed: `outpost-bench-layer-${i}-${bytes}` }));
  const appImage = makeImage({ mediaTypes: 'docker', layers: [bigLayer, ...others], labels: { 'org.opencontainers.image.title': 'bench/app' } });
  const app: SeededImage = {
    repo: 'bench/app',
    tag: 'v1',
    manifestDigest: appImage.digest,
    manifest: appImage.manifest,
    config: { digest: appImage.config.digest, size: appImage.config.size },
    layers: appImage.layers.map(ref),
  };
  await pushImage(primaryUrl, app.repo, app.tag, appImage);

  const tiny: SeededImage[] = [];
  const indexes = Array.from({ length: sizes.tinyImages }, (_, i) => i);
  await inBatches(indexes, 8, async (i) => {
    const { repo, image } = tinyImage(i);
    await pushImage(primaryUrl, repo, 'v1', image);
    tiny[i] = {
      repo,
      tag: 'v1',
      manifestDigest: image.digest,
      manifest: image.manifest,
      config: { digest: image.config.digest, size: image.config.size },
      layers: image.layers.map(ref),
    };
  });
  return { app, big: ref(bigLayer), tiny };
}

/** Where distribution's filesystem driver keeps a blob's bytes. */
function primaryBlobPath(primaryDataDir: string, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(primaryDataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
}

/** nginx's tree: every seeded blob under blobs/<digest>, and the app manifest under v2/<repo>/manifests/<tag>. */
export async function layOutForNginx(www: string, primaryDataDir: string, seed: Seed): Promise<void> {
  const blobs = new Set<string>();
  for (const image of [seed.app, ...seed.tiny]) {
    blobs.add(image.config.digest);
    for (const layer of image.layers) blobs.add(layer.digest);
  }
  await mkdir(join(www, 'blobs'), { recursive: true });
  await inBatches([...blobs], 32, async (digest) => {
    const from = primaryBlobPath(primaryDataDir, digest);
    const to = join(www, 'blobs', digest);
    try {
      await link(from, to);
    } catch {
      await copyFile(from, to);
    }
  });
  const manifestFile = join(www, 'v2', seed.app.repo, 'manifests', seed.app.tag);
  await mkdir(dirname(manifestFile), { recursive: true });
  await writeFile(manifestFile, seed.app.manifest);
}
