/**
 * `POST /api/v0/peer/warm` on real nodes (cluster primary + workers) in front
 * of a real distribution registry: with a peer secret, a signed warm streams
 * progress and a result and leaves the image cached; a standalone node
 * takes only its own node-local secret, so any signature from outside is
 * refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/cache/ports.ts';
import { HttpReplicaWarmClient } from '../../src/coordination/replica-warm-client.ts';
import type { WarmProgress } from '../../src/prefetch/ports.ts';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { makeImage, makeLayer, pushImage, type Image } from '../support/images.ts';
import { readFileSync } from 'node:fs';
import { childPids, startOutpost, type OutpostNode } from '../support/outpost.ts';
import { waitFor } from '../support/wait.ts';

const MiB = 1024 * 1024;
const peerSecret = 'peer-warm-secret-0123456789abcdef';
const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let withSecret: OutpostNode;
let standalone: OutpostNode;
let image: Image;

beforeAll(async () => {
  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  image = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 8 * MiB, seed: 'peer-warm' })] });
  await pushImage(registry.url, 'warm/peer', 'v1', image);
  [withSecret, standalone] = await Promise.all([
    startOutpost({ upstreamUrl: registry.url, env: { OUTPOST_PEER_SECRET: peerSecret } }),
    startOutpost({ upstreamUrl: registry.url }),
  ]);
  cleanup.add(() => withSecret.dispose());
  cleanup.add(() => standalone.dispose());
}, 180_000);
afterAll(() => cleanup.run());

describe('peer warm endpoint', () => {
  it('warms an image for a caller signing with the peer secret', async () => {
    const client = new HttpReplicaWarmClient({ nodeId: 'scheduler', secret: peerSecret, clock: systemClock });
    cleanup.add(() => client.close());
    const ref = { upstream: registry.host, repository: 'warm/peer', reference: 'v1' };
    const progress: WarmProgress[] = [];
    const result = await client.warm({ id: 'a', url: withSecret.url }, ref, { platforms: [], signal: AbortSignal.timeout(60_000), onProgress: (p) => progress.push(p) });
    expect(result).toMatchObject({ ok: true, digest: image.digest, blobs: 2, bytes: image.blobs.reduce((s, b) => s + b.size, 0), cachedBlobs: 0 });
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress.every((p) => p.image === `${registry.host}/warm/peer:v1`)).toBe(true);
    await registry.flushLog();
    registry.clearRequests();
    const again = await client.warm({ id: 'a', url: withSecret.url }, ref, { platforms: [], signal: AbortSignal.timeout(60_000) });
    expect(again).toMatchObject({ ok: true, blobs: 2, cachedBlobs: 2 });
    await registry.flushLog();
    expect(registry.countRequests({ method: 'GET', kind: 'blob' })).toBe(0);
  });

  it('on a standalone node, takes the secret its primary handed every worker', async () => {
    const secretOf = (pid: number): string | undefined => {
      try {
        return /(?:^|\0)OUTPOST_INTERNAL_WARM_SECRET=([0-9a-f]{64})(?:\0|$)/.exec(readFileSync(`/proc/${pid}/environ`, 'latin1'))?.[1];
      } catch {
        return undefined; // gone meanwhile
      }
    };
    // Both workers forked (a busy machine may still be starting the second).
    let secrets: (string | undefined)[] = [];
    await waitFor(
      () => {
        secrets = childPids(standalone.pid!).map(secretOf).filter((s) => s !== undefined);
        return secrets.length === 2;
      },
      { timeoutMs: 30_000, what: 'two workers with a warm secret in their environment' },
    );
    expect(secrets[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(secrets[1]).toBe(secrets[0]);
    const client = new HttpReplicaWarmClient({ nodeId: 'self', secret: secrets[0]!, clock: systemClock });
    cleanup.add(() => client.close());
    const result = await client.warm({ id: 'self', url: standalone.url }, { upstream: registry.host, repository: 'warm/peer', reference: 'v1' }, { platforms: [], signal: AbortSignal.timeout(60_000) });
    expect(result).toMatchObject({ ok: true, blobs: 2 });
  });

  it('on a standalone node, refuses every signature but its own node-local one', async () => {
    for (const secret of [peerSecret, 'a'.repeat(64)]) {
      const client = new HttpReplicaWarmClient({ nodeId: 'outsider', secret, clock: systemClock });
      cleanup.add(() => client.close());
      await expect(
        client.warm({ id: 'b', url: standalone.url }, { upstream: registry.host, repository: 'warm/peer', reference: 'v1' }, { platforms: [], signal: AbortSignal.timeout(30_000) }),
      ).rejects.toMatchObject({ code: 'WARM_REFUSED' });
    }
  });
});
