/**
 * Making a mirror warm, and proving it: request every path until a whole
 * pass causes no blob GET on the primary. Manifest requests do not count:
 * the distribution proxy asks the primary about a tag on every request, by
 * design (that is what the tag scenarios measure).
 */
import type { DistributionRegistry } from '../../test/support/distribution.ts';
import { parallelGets } from '../blob-clients.ts';

async function primaryBlobGetsDuring(primary: DistributionRegistry, action: () => Promise<void>): Promise<number> {
  await primary.flushLog();
  const before = primary.countRequests({ method: 'GET', kind: 'blob' });
  await action();
  await primary.flushLog();
  return primary.countRequests({ method: 'GET', kind: 'blob' }) - before;
}

export async function warmPaths(
  primary: DistributionRegistry,
  baseUrl: string,
  paths: readonly string[],
  headers: Record<string, string> = {},
): Promise<void> {
  for (let pass = 1; pass <= 5; pass++) {
    const upstream = await primaryBlobGetsDuring(primary, async () => {
      for (const path of paths) {
        const res = await fetch(`${baseUrl}${path}`, { headers, signal: AbortSignal.timeout(60_000) });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`warming ${baseUrl}${path}: HTTP ${res.status}`);
      }
    });
    if (upstream === 0) return;
  }
  throw new Error(`${baseUrl} still fetches from the primary after 5 passes over ${paths.length} paths`);
}

/** GETs a big blob (hashing it) until a GET causes no GET on the primary. */
export async function warmBlob(primary: DistributionRegistry, baseUrl: string, path: string, digest: string): Promise<void> {
  for (let pass = 1; pass <= 5; pass++) {
    let digestSeen: string | undefined;
    const upstream = await primaryBlobGetsDuring(primary, async () => {
      const { outcomes } = await parallelGets(baseUrl, path, { clients: 1, getsPerClient: 1, hash: true });
      digestSeen = outcomes[0]?.digest;
      if (outcomes[0]?.status !== 200) throw new Error(`warming ${baseUrl}${path}: HTTP ${outcomes[0]?.status} ${outcomes[0]?.error ?? ''}`);
    });
    if (digestSeen !== digest) throw new Error(`${baseUrl}${path} served ${digestSeen}, expected ${digest}`);
    if (upstream === 0) return;
  }
  throw new Error(`${baseUrl}${path} still fetches from the primary after 5 GETs`);
}
