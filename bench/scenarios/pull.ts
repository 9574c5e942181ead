/** A whole-image pull with skopeo, and what it cost the primary. */
import { join } from 'node:path';
import type { DistributionRegistry } from '../../test/support/distribution.ts';
import { dirManifestDigest, skopeoCopy } from '../../test/support/skopeo.ts';
import { makeTempDir, removeTempDir } from '../../test/support/temp.ts';
import type { SeededImage } from '../seed.ts';

export interface PullResult {
  seconds: number;
  /** Digest of the manifest skopeo wrote (must equal the seeded one). */
  manifestDigest: string;
}

/** `skopeo copy docker://<host>/<repo>:<tag> dir:<temp>`, timed; the copy is removed afterwards. */
export async function pullImage(host: string, image: SeededImage): Promise<PullResult> {
  const dir = await makeTempDir('bench-pull');
  try {
    const dest = join(dir, 'image');
    const started = performance.now();
    await skopeoCopy(`docker://${host}/${image.repo}:${image.tag}`, `dir:${dest}`, { timeoutMs: 900_000 });
    const seconds = (performance.now() - started) / 1000;
    const manifestDigest = await dirManifestDigest(dest);
    if (manifestDigest !== image.manifestDigest) {
      throw new Error(`pull from ${host} wrote manifest ${manifestDigest}, expected ${image.manifestDigest}`);
    }
    return { seconds, manifestDigest };
  } finally {
    await removeTempDir(dir);
  }
}

export interface UpstreamCost {
  /** Blob GETs the primary answered, and the body bytes it wrote for them. */
  blobGets: number;
  blobBytes: number;
  /** GETs per digest, over the blobs of interest (0 for a blob never fetched). */
  getsPerBlob: Record<string, number>;
  manifestRequests: number;
}

/** What the primary served since the last `clearRequests()` (flushes its access log first). */
export async function upstreamCost(primary: DistributionRegistry, digests: readonly string[]): Promise<UpstreamCost> {
  await primary.flushLog();
  const gets = primary.requests({ method: 'GET', kind: 'blob' });
  const getsPerBlob: Record<string, number> = {};
  for (const digest of digests) getsPerBlob[digest] = 0;
  for (const entry of gets) {
    const digest = entry.path.slice(entry.path.lastIndexOf('/') + 1);
    getsPerBlob[digest] = (getsPerBlob[digest] ?? 0) + 1;
  }
  return {
    blobGets: gets.length,
    blobBytes: gets.reduce((sum, e) => sum + (e.bytes ?? 0), 0),
    getsPerBlob,
    manifestRequests: primary.countRequests({ kind: 'manifest' }),
  };
}
