/** Inspecting an Outpost cache directory from a test: what blobs are on disk, how many bytes they take, whether each is intact. */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { waitFor } from './wait.ts';

export async function cachedBlobs(cacheDir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const root = path.join(cacheDir, 'blobs');
  const list = (dir: string) => readdir(dir).catch(() => [] as string[]);
  for (const algorithm of await list(root)) {
    for (const shard of await list(path.join(root, algorithm))) {
      for (const file of await list(path.join(root, algorithm, shard))) {
        const info = await stat(path.join(root, algorithm, shard, file)).catch(() => undefined);
        if (info) out.set(`${algorithm}:${file}`, info.blocks * 512);
      }
    }
  }
  return out;
}

/**
 * Waits until every digest is a blob in the cache. A fill hands its clients
 * their last byte once the digest matches, before the blob is durable and
 * renamed into place: a test that wants the next request to be a hit waits
 * for this first.
 */
export async function waitForCachedBlobs(cacheDir: string, digests: readonly string[], timeoutMs = 10_000): Promise<void> {
  await waitFor(
    async () => {
      const cached = await cachedBlobs(cacheDir);
      return digests.every((digest) => cached.has(digest));
    },
    { what: `${digests.length} blob(s) to be cached`, timeoutMs },
  );
}

export async function cachedBytes(cacheDir: string): Promise<number> {
  let total = 0;
  for (const bytes of (await cachedBlobs(cacheDir)).values()) total += bytes;
  return total;
}

/** Digests of cached files whose content does not hash to their name (must always be empty). */
export async function corruptBlobs(cacheDir: string): Promise<string[]> {
  const bad: string[] = [];
  for (const digest of (await cachedBlobs(cacheDir)).keys()) {
    const [algorithm, encoded] = digest.split(':') as [string, string];
    const data = await readFile(path.join(cacheDir, 'blobs', algorithm, encoded.slice(0, 2), encoded));
    if (createHash(algorithm).update(data).digest('hex') !== encoded) bad.push(digest);
  }
  return bad;
}
