import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Creates a fresh directory under the OS temp dir, named `outpost-<prefix>-XXXXXX`. */
export async function makeTempDir(prefix: string): Promise<string> {
  const safe = prefix.replace(/[^A-Za-z0-9_.-]/g, '-');
  return mkdtemp(join(tmpdir(), `outpost-${safe}-`));
}

/** Removes a directory made by {@link makeTempDir} (recursively; a missing directory is fine). */
export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
}
