/**
 * A live two-replica Outpost set for the status page: a real etcd, a real
 * Redis and a real distribution registry as the primary, two Outpost nodes
 * (two workers each) with an admin token. Used by the browser test and by
 * the script that makes the README's screenshot (status-page-screenshot.ts).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCleanupStack } from './cleanup.ts';
import { startDistribution, type DistributionRegistry } from './distribution.ts';
import { startEtcd } from './etcd.ts';
import { makeImage, makeLayer, pushImage, type Image } from './images.ts';
import type { OutpostNode } from './outpost.ts';
import { startRedis } from './redis.ts';
import { startReplicas } from './replica-set.ts';
import { skopeoCopy } from './skopeo.ts';
import { makeTempDir, removeTempDir } from './temp.ts';
import { waitFor } from './wait.ts';

export interface StatusPageCluster {
  registry: DistributionRegistry;
  /** n1 and n2. */
  nodes: OutpostNode[];
  adminToken: string;
  /** Pushes a fresh image with layers of these sizes to the primary. */
  push(repo: string, tag: string, layerBytes: number[]): Promise<Image>;
  /** `skopeo copy docker://<node>/<repo>:<tag> oci:...` (a real client's pull, every blob). */
  pull(node: OutpostNode, repo: string, tag: string): Promise<void>;
  dispose(): Promise<void>;
}

const ids = ['n1', 'n2'] as const;

/** The image the demo cluster's prefetch job (`nightly-base`, run at start) warms. */
export const prefetchedImage = { repository: 'base/runtime', tag: '1.0' };

export async function startStatusPageCluster(options: { adminToken?: string } = {}): Promise<StatusPageCluster> {
  const cleanup = createCleanupStack();
  const adminToken = options.adminToken ?? 'status-page-admin-token-0123456789';
  try {
    const [registry, etcd, redis] = await Promise.all([startDistribution(), startEtcd(), startRedis()]);
    cleanup.add(() => registry.dispose());
    cleanup.add(() => etcd.dispose());
    cleanup.add(() => redis.dispose());
    // A prefetch job that runs at start: the page's jobs section has a run to show.
    await pushImage(registry.url, prefetchedImage.repository, prefetchedImage.tag, makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 256 * 1024 })] }));
    const configDir = await makeTempDir('status-page-config');
    cleanup.add(() => removeTempDir(configDir));
    const configFile = join(configDir, 'outpost.json');
    await writeFile(
      configFile,
      JSON.stringify({ prefetch: [{ name: 'nightly-base', schedule: '0 3 * * *', timezone: 'Europe/Berlin', images: [`${prefetchedImage.repository}:*`], runOnStart: true }] }),
    );
    const replicas = await startReplicas(
      ids,
      {
        upstreamUrl: registry.url,
        etcdUrl: etcd.url,
        redisUrl: redis.url,
        cluster: 'statuspage',
        secret: 'status-page-peer-secret-0123456789',
        adminToken,
        env: { OUTPOST_CONFIG: configFile, OUTPOST_CACHE_MAX_BYTES: String(64 * 1024 * 1024) },
      },
      (dispose) => cleanup.add(dispose),
    );
    const nodes = [...replicas.values()];

    // Both replicas are members, a leader is elected, and each sees the other.
    for (const node of nodes) {
      await waitFor(
        async () => {
          const res = await fetch(`${node.url}/api/v0/meta/cluster_status`, { headers: { authorization: `Bearer ${adminToken}` }, signal: AbortSignal.timeout(5_000) });
          const status = (await res.json()) as { leader?: string | null; replica_health?: Record<string, string> };
          return status.leader != null && ids.every((id) => status.replica_health?.[id] === 'OK');
        },
        { what: `${node.host} to see both replicas OK and a leader`, timeoutMs: 30_000, intervalMs: 200 },
      );
    }
    return {
      registry,
      nodes,
      adminToken,
      async push(repo, tag, layerBytes) {
        const image = makeImage({ mediaTypes: 'oci', layers: layerBytes.map((sizeBytes) => makeLayer({ sizeBytes })) });
        await pushImage(registry.url, repo, tag, image);
        return image;
      },
      async pull(node, repo, tag) {
        const dir = await makeTempDir('status-pull');
        try {
          await skopeoCopy(`docker://${node.host}/${repo}:${tag}`, `oci:${dir}:${tag}`, { timeoutMs: 60_000 });
        } finally {
          await removeTempDir(dir);
        }
      },
      dispose: () => cleanup.run(),
    };
  } catch (err) {
    await cleanup.run();
    throw err;
  }
}
