/**
 * Routing that works with every client out of the box: the default primary
 * is a distribution registry that mirrors Docker Hub, declared in the config
 * file (`aliases: [docker.io]`, `dockerHub: true`). containerd (hosts.toml
 * mirror, `?ns=docker.io`), a dockerd-style client (no `ns`, `library/`
 * spelled out), skopeo with a short name and podman's registries.conf mirror
 * all reach it and share one tag answer: the primary sees one manifest GET.
 * A second primary under `registries` is reached by `?ns=` and by a host
 * prefix, and its same-named repository never mixes with the default's.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startContainerd, type Containerd } from '../support/containerd.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { MEDIA_TYPES, makeImage, makeLayer, pushImage, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { createPodman } from '../support/podman.ts';
import { dirManifestDigest, skopeoCopy } from '../support/skopeo.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';
import { waitFor } from '../support/wait.ts';

const cleanup = createCleanupStack();
let hub: DistributionRegistry;
/** A second primary, configured under `registries` as registry.test, holding a different image under the same name. */
let other: DistributionRegistry;
let otherImage: Image;
let outpost: OutpostNode;
let containerd: Containerd;
let image: Image;

beforeAll(async () => {
  hub = await startDistribution();
  cleanup.add(() => hub.dispose());
  image = makeImage({ mediaTypes: 'docker', layers: [makeLayer({ sizeBytes: 200_000, files: 2, seed: 'routing-1' }), makeLayer({ sizeBytes: 10_000, seed: 'routing-2' })] });
  await pushImage(hub.url, 'library/alpine', '3.20', image);
  other = await startDistribution();
  cleanup.add(() => other.dispose());
  otherImage = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 30_000, seed: 'routing-other' })] });
  await pushImage(other.url, 'library/alpine', '3.20', otherImage);

  const dir = await makeTempDir('routing-config');
  cleanup.add(() => removeTempDir(dir));
  const configFile = path.join(dir, 'outpost.yaml');
  await writeFile(
    configFile,
    ['upstream:', `  url: "${hub.url}"`, '  aliases: [docker.io]', '  dockerHub: true', 'registries:', '  - host: registry.test', `    url: "${other.url}"`, ''].join('\n'),
  );
  // A tag answer trusted for the whole test: every client after the first is served it without the primary.
  outpost = await startOutpost({ upstreamUrl: hub.url, env: { OUTPOST_CONFIG: configFile, OUTPOST_TAG_TTL: '10m' } });
  cleanup.add(() => outpost.dispose());
  containerd = await startContainerd();
  cleanup.add(() => containerd.stop());
  await containerd.mirror('docker.io', outpost.url);
  await containerd.mirror('registry.test', outpost.url);
}, 120_000);
afterAll(() => cleanup.run());

function served(filter: (line: Record<string, unknown>) => boolean): Record<string, unknown>[] {
  return outpost.logs().filter((line) => line.msg === 'request' && line.repository !== undefined && filter(line));
}

describe('a default primary declared as a Docker Hub mirror', () => {
  it('serves containerd (?ns=docker.io), dockerd, skopeo and podman from one tag answer', async () => {
    hub.clearRequests();

    await containerd.pull('docker.io/library/alpine:3.20');
    expect(await containerd.imageDigest('docker.io/library/alpine:3.20')).toBe(image.digest);
    await waitFor(() => served((line) => line.ns === 'docker.io').length > 0, { what: 'access-log lines with ns=docker.io', timeoutMs: 5_000 });
    const fromContainerd = served((line) => line.ns === 'docker.io');
    expect(fromContainerd.length).toBeGreaterThan(0);
    expect(fromContainerd.every((line) => line.upstream === hub.host && line.status === 200)).toBe(true);

    // dockerd with registry-mirrors: no ns, library/ spelled out.
    const res = await fetch(`${outpost.url}/v2/library/alpine/manifests/3.20`, { headers: { accept: MEDIA_TYPES.docker.manifest } });
    await res.arrayBuffer();
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-content-digest')).toBe(image.digest);
    expect(res.headers.get('x-outpost-cache')).toBe('hit');

    // skopeo straight at the mirror, with Docker Hub's short name (dir: keeps the manifest bytes).
    const pulled = await makeTempDir('routing-skopeo');
    cleanup.add(() => removeTempDir(pulled));
    await skopeoCopy(`docker://${outpost.host}/alpine:3.20`, `dir:${pulled}`);
    expect(await dirManifestDigest(pulled)).toBe(image.digest);

    // podman / CRI-O: a registries.conf mirror for docker.io.
    const podman = await createPodman({ mirrors: [{ prefix: 'docker.io', location: 'registry-1.docker.io', mirror: outpost.host }] });
    cleanup.add(() => podman.dispose());
    await podman.pull('docker.io/library/alpine:3.20');
    expect(await podman.imageDigest('docker.io/library/alpine:3.20')).toBe(image.digest);

    await hub.flushLog();
    // One tag answer from the primary, under one cache key, for every client.
    expect(hub.countRequests({ kind: 'manifest', pathIncludes: '/v2/library/alpine/manifests/3.20' })).toBe(1);
    for (const blob of image.blobs) expect(hub.countRequests({ method: 'GET', kind: 'blob', pathIncludes: blob.digest })).toBe(1);
    expect(served((line) => line.reference === '3.20').every((line) => line.upstream === hub.host)).toBe(true);
  });

  it('answers an ns no primary answers to with NAME_UNKNOWN, in the access log and once as a warning', async () => {
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${outpost.url}/v2/org/app/manifests/v1?ns=quay.io`);
      expect(res.status).toBe(404);
      expect(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe('NAME_UNKNOWN');
    }
    // Log lines arrive through the node's output a moment after the responses.
    await waitFor(() => served((line) => line.ns === 'quay.io').length === 2, { what: 'two access-log lines for ns=quay.io', timeoutMs: 5_000 });
    const lines = served((line) => line.ns === 'quay.io');
    expect(lines.every((line) => line.code === 'NAME_UNKNOWN' && line.upstream === undefined)).toBe(true);
    // Once per ns and worker process.
    const warnings = outpost.logs().filter((line) => line.level === 40 && line.ns === 'quay.io');
    expect(warnings.length).toBeGreaterThanOrEqual(1);
    expect(warnings.length).toBeLessThanOrEqual(2);
    expect(String(warnings[0]!.config)).toContain('registries: [{host: quay.io');
  });

  it('sends ?ns= and a host prefix naming another primary there, never mixing same-named repositories', async () => {
    await containerd.pull('registry.test/library/alpine:3.20');
    expect(await containerd.imageDigest('registry.test/library/alpine:3.20')).toBe(otherImage.digest);
    await waitFor(() => served((line) => line.ns === 'registry.test').length > 0, { what: 'access-log lines with ns=registry.test', timeoutMs: 5_000 });
    expect(served((line) => line.ns === 'registry.test').every((line) => line.upstream === 'registry.test')).toBe(true);

    const pulled = await makeTempDir('routing-prefix');
    cleanup.add(() => removeTempDir(pulled));
    await skopeoCopy(`docker://${outpost.host}/registry.test/library/alpine:3.20`, `dir:${pulled}`);
    expect(await dirManifestDigest(pulled)).toBe(otherImage.digest);

    // The default primary's image of the same name is untouched.
    const res = await fetch(`${outpost.url}/v2/alpine/manifests/3.20`, { headers: { accept: MEDIA_TYPES.docker.manifest } });
    await res.arrayBuffer();
    expect(res.headers.get('docker-content-digest')).toBe(image.digest);
  });
});
