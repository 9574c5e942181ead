/** containerd (hosts.toml mirror, `?ns=`) and podman (vfs) pull real images through Outpost. */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startContainerd, type Containerd } from '../support/containerd.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { makeImage, makeIndex, makeLayer, pushImage, pushIndex, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { createPodman } from '../support/podman.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';

const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let outpost: OutpostNode;
let image: Image;
let indexDigest: string;

beforeAll(async () => {
  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  image = makeImage({ mediaTypes: 'docker', layers: [makeLayer({ sizeBytes: 500_000, files: 4, seed: 'clients-1' }), makeLayer({ sizeBytes: 20_000, seed: 'clients-2' })] });
  await pushImage(registry.url, 'team/tool', 'v1', image);
  const amd64 = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 100_000, seed: 'c-amd64' })], platform: { os: 'linux', architecture: 'amd64' } });
  const arm64 = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 100_000, seed: 'c-arm64' })], platform: { os: 'linux', architecture: 'arm64' } });
  indexDigest = (await pushIndex(registry.url, 'team/multi', 'v1', makeIndex([amd64, arm64], 'oci'), [amd64, arm64])).digest;
  outpost = await startOutpost({ upstreamUrl: registry.url });
  cleanup.add(() => outpost.dispose());
}, 120_000);
afterAll(() => cleanup.run());

/** Requests that reached the primary from anything but Outpost (a client falling back past the mirror). */
async function directRequests(): Promise<number> {
  await registry.flushLog();
  return registry.requests().filter((entry) => !/outpost/i.test(entry.userAgent ?? '')).length;
}

describe('containerd through a hosts.toml mirror', () => {
  let containerd: Containerd;

  let nsOutpost: OutpostNode;

  beforeAll(async () => {
    // The default primary is a dead address: only containerd's ?ns=<registry host> can reach the real one.
    const dir = await makeTempDir('ns-config');
    cleanup.add(() => removeTempDir(dir));
    const configFile = path.join(dir, 'outpost.yaml');
    await writeFile(configFile, `registries:\n  - host: "${registry.host}"\n    url: "${registry.url}"\n`);
    nsOutpost = await startOutpost({ upstreamUrl: 'http://127.0.0.1:9', env: { OUTPOST_CONFIG: configFile } });
    cleanup.add(() => nsOutpost.dispose());
    containerd = await startContainerd();
    cleanup.add(() => containerd.stop());
    await containerd.mirror(registry.host, nsOutpost.url);
  }, 60_000);

  it('pulls and unpacks an image with the primary’s digest, sending ?ns=', async () => {
    registry.clearRequests();
    const ref = `${registry.host}/team/tool:v1`;
    await containerd.pull(ref);
    expect(await containerd.imageDigest(ref)).toBe(image.digest);
    expect(await directRequests()).toBe(0);
    const served = nsOutpost.logs().filter((line) => line.msg === 'request' && line.repository === 'team/tool' && line.status === 200);
    expect(served.length).toBeGreaterThan(0);
  });

  it('pulls a multi-arch index', async () => {
    const ref = `${registry.host}/team/multi:v1`;
    await containerd.pull(ref, { platform: 'linux/arm64' });
    expect(await containerd.imageDigest(ref)).toBe(indexDigest);
    expect(await directRequests()).toBe(0);
  });
});

describe('podman', () => {
  it('pulls an image with the vfs driver and records the primary’s digest', async () => {
    const podman = await createPodman();
    cleanup.add(() => podman.dispose());
    registry.clearRequests();
    const ref = `${outpost.host}/team/tool:v1`;
    await podman.pull(ref);
    expect(await podman.imageDigest(ref)).toBe(image.digest);
    expect(await directRequests()).toBe(0);
  });
});
