import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { fetchManifest, makeImage, makeIndex, makeLayer, pushImage, pushIndex, sha256, type Image } from '../support/images.ts';
import { MissingBinaryError, requireBinary, startProcess } from '../support/process.ts';
import { SkopeoError, dirManifestDigest, ociLayoutManifestDigests, skopeoCopy, skopeoInspectRaw } from '../support/skopeo.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';
import { startTokenIssuer, type TokenIssuer } from '../support/token-issuer.ts';
import { waitFor } from '../support/wait.ts';

// These tests prove the integration-test harness itself against the real
// docker-registry (CNCF distribution) and skopeo binaries.

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const cleanup = createCleanupStack();
afterAll(() => cleanup.run());

async function tempDir(prefix: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  cleanup.add(() => removeTempDir(dir));
  return dir;
}

describe('harness: processes and waits', () => {
  it('waitFor names what it waited for when the condition never holds', async () => {
    await expect(waitFor(() => false, { what: 'the moon to turn blue', timeoutMs: 100, intervalMs: 10 })).rejects.toThrow(
      /Timed out after 100 ms .* waiting for the moon to turn blue/,
    );
  });

  it('requireBinary fails loudly with the Debian package to install, under CI too', () => {
    expect(() => requireBinary('outpost-no-such-binary')).toThrow(MissingBinaryError);
    vi.stubEnv('CI', 'true');
    try {
      expect(() => requireBinary('outpost-no-such-binary')).toThrow(/CI=true.*apt-get install -y outpost-no-such-binary/);
    } finally {
      vi.unstubAllEnvs();
    }
    expect(requireBinary('skopeo')).toMatch(/\/skopeo$/);
  });

  it('stops a process that ignores SIGTERM by escalating to SIGKILL', async () => {
    const proc = await startProcess(process.execPath, [
      '-e',
      "process.on('SIGTERM', () => console.log('ignoring SIGTERM')); console.log('ready'); setInterval(() => {}, 1000);",
    ]);
    await waitFor(() => proc.output().includes('ready'), { what: 'child to print ready' });
    expect(isAlive(proc.pid)).toBe(true);
    const info = await proc.stop({ graceMs: 300 });
    expect(info.signal).toBe('SIGKILL');
    expect(proc.output()).toContain('ignoring SIGTERM');
    expect(isAlive(proc.pid)).toBe(false);
  });
});

describe('harness: distribution registry without auth', () => {
  let registry: DistributionRegistry;
  const layerA = makeLayer({ sizeBytes: 200_000, files: 3, seed: 'harness-a' });
  const layerB = makeLayer({ sizeBytes: 4_000, seed: 'harness-b' });

  beforeAll(async () => {
    registry = await startDistribution();
    cleanup.add(() => registry.dispose());
  });

  it('answers GET /v2/ on 127.0.0.1 and stops by pid', async () => {
    expect(registry.url).toBe(`http://127.0.0.1:${registry.port}`);
    const res = await fetch(`${registry.url}/v2/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    const pid = registry.pid!;
    expect(isAlive(pid)).toBe(true);
    await registry.stop();
    expect(registry.pid).toBeUndefined();
    expect(isAlive(pid)).toBe(false);
    await registry.start();
    expect(registry.pid).not.toBe(pid);
  });

  it('serves an OCI image that skopeo copies to an OCI layout with the pushed digest', async () => {
    const image = makeImage({ mediaTypes: 'oci', layers: [layerA, layerB] });
    await pushImage(registry.url, 'harness/oci', 'v1', image);
    const dir = await tempDir('oci-layout');
    await skopeoCopy(`docker://${registry.host}/harness/oci:v1`, `oci:${dir}`, { all: true });
    expect(await ociLayoutManifestDigests(dir)).toEqual([image.digest]);
    const raw = await skopeoInspectRaw(`docker://${registry.host}/harness/oci:v1`);
    expect(raw.bytes.equals(image.manifest)).toBe(true);
  });

  it('serves a Docker schema 2 image that skopeo copies byte-identically (dir: keeps Docker media types)', async () => {
    const image = makeImage({ mediaTypes: 'docker', layers: [layerA, layerB] });
    await pushImage(registry.url, 'harness/docker', 'v1', image);
    const dir = await tempDir('dir-layout');
    await skopeoCopy(`docker://${registry.host}/harness/docker:v1`, `dir:${dir}`, { all: true });
    expect(await dirManifestDigest(dir)).toBe(image.digest);
    const fetched = await fetchManifest(registry.url, 'harness/docker', 'v1');
    expect(fetched.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(fetched.digest).toBe(image.digest);
  });

  it('serves multi-arch OCI indexes and Docker manifest lists that skopeo --all copies with the pushed digest', async () => {
    for (const format of ['oci', 'docker'] as const) {
      const amd64 = makeImage({ mediaTypes: format, layers: [layerA], platform: { os: 'linux', architecture: 'amd64' } });
      const arm64 = makeImage({ mediaTypes: format, layers: [layerB], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
      const index = makeIndex([amd64, arm64], format);
      const repo = `harness/multi-${format}`;
      await pushIndex(registry.url, repo, 'v1', index, [amd64, arm64]);

      const dir = await tempDir('dir-layout');
      await skopeoCopy(`docker://${registry.host}/${repo}:v1`, `dir:${dir}`, { all: true });
      expect(await dirManifestDigest(dir)).toBe(index.digest);
      if (format === 'oci') {
        const layout = await tempDir('oci-layout');
        await skopeoCopy(`docker://${registry.host}/${repo}:v1`, `oci:${layout}`, { all: true });
        expect(await ociLayoutManifestDigests(layout)).toEqual([index.digest]);
      }
      const arm = await tempDir('oci-layout');
      await skopeoCopy(`docker://${registry.host}/${repo}:v1`, `oci:${arm}`, { overrideArch: 'arm64', overrideOs: 'linux' });
      if (format === 'oci') expect(await ociLayoutManifestDigests(arm)).toEqual([arm64.digest]);
    }
  });

  it('counts every request from the access log, including errors', async () => {
    const image = makeImage({ mediaTypes: 'oci', layers: [layerB], labels: { test: 'counting' } });
    await pushImage(registry.url, 'harness/count', 'v1', image);
    registry.clearRequests();

    const blob = await fetch(`${registry.url}/v2/harness/count/blobs/${layerB.digest}`);
    expect(sha256(Buffer.from(await blob.arrayBuffer()))).toBe(layerB.digest);
    const head = await fetch(`${registry.url}/v2/harness/count/manifests/v1`, { method: 'HEAD', headers: { accept: image.mediaType } });
    expect(head.status).toBe(200);
    const missing = await fetch(`${registry.url}/v2/harness/count/manifests/nope`);
    await missing.arrayBuffer();
    expect(missing.status).toBe(404);
    await registry.flushLog();

    expect(registry.countRequests({ method: 'GET', pathIncludes: `/blobs/${layerB.digest}` })).toBe(1);
    expect(registry.countRequests({ method: 'HEAD', kind: 'manifest' })).toBe(1);
    expect(registry.countRequests({ kind: 'manifest', status: 404 })).toBe(1);
    expect(registry.requests({ kind: 'blob' })[0]).toMatchObject({ method: 'GET', status: 200, bytes: layerB.size });

    registry.clearRequests();
    const dir = await tempDir('oci-layout');
    await skopeoCopy(`docker://${registry.host}/harness/count:v1`, `oci:${dir}`);
    await registry.flushLog();
    expect(registry.countRequests({ method: 'GET', kind: 'blob' })).toBe(image.blobs.length);
  });

  it('keeps its content across a restart on the same port', async () => {
    const image = makeImage({ mediaTypes: 'oci', layers: [layerB], labels: { test: 'restart' } });
    await pushImage(registry.url, 'harness/restart', 'v1', image);
    const port = registry.port;
    await registry.stop();
    await expect(fetch(`${registry.url}/v2/`)).rejects.toThrow();
    await registry.start();
    expect(registry.port).toBe(port);
    const fetched = await fetchManifest(registry.url, 'harness/restart', 'v1');
    expect(fetched.status).toBe(200);
    expect(fetched.digest).toBe(image.digest);
  });
});

describe('harness: distribution registry with htpasswd auth', () => {
  const alice = { username: 'alice', password: 'alice-secret' };
  let registry: DistributionRegistry;

  beforeAll(async () => {
    registry = await startDistribution({ auth: 'htpasswd', users: [alice] });
    cleanup.add(() => registry.dispose());
  });

  it('challenges anonymous clients with Basic and serves a user with bcrypt credentials', async () => {
    const anonymous = await fetch(`${registry.url}/v2/`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm=/);

    const image = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 2_000 })] });
    await pushImage(registry.url, 'private/app', 'v1', image, alice);

    const dir = await tempDir('oci-layout');
    await skopeoCopy(`docker://${registry.host}/private/app:v1`, `oci:${dir}`, { srcCreds: alice });
    expect(await ociLayoutManifestDigests(dir)).toEqual([image.digest]);

    const denied = await tempDir('oci-layout');
    const failure = skopeoCopy(`docker://${registry.host}/private/app:v1`, `oci:${denied}`, {
      srcCreds: { username: 'alice', password: 'wrong' },
    });
    await expect(failure).rejects.toBeInstanceOf(SkopeoError);
    await expect(failure).rejects.toThrow(/unauthorized|authentication required|401/i);
    await registry.flushLog();
    expect(registry.countRequests({ status: 401 })).toBeGreaterThan(0);
  });
});

describe('harness: distribution registry with token auth', () => {
  const admin = { username: 'admin', password: 'admin-secret' };
  const reader = { username: 'reader', password: 'reader-secret' };
  let issuer: TokenIssuer;
  let registry: DistributionRegistry;

  beforeAll(async () => {
    issuer = await startTokenIssuer({
      users: [
        { ...admin, actions: ['pull', 'push', 'delete'] },
        { ...reader, actions: ['pull'] },
      ],
    });
    cleanup.add(() => issuer.stop());
    registry = await startDistribution({ auth: 'token', token: issuer });
    cleanup.add(() => registry.dispose());
  });

  it('challenges anonymous clients with Bearer pointing at the issuer', async () => {
    const res = await fetch(`${registry.url}/v2/`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(`Bearer realm="${issuer.realm}",service="${issuer.service}"`);
  });

  it('accepts issued tokens for push (admin) and pull (reader), and refuses push to a reader', async () => {
    const image = makeImage({ mediaTypes: 'docker', layers: [makeLayer({ sizeBytes: 3_000 })] });
    const before = issuer.requests();
    await pushImage(registry.url, 'team/app', 'v1', image, admin);
    expect(issuer.requests()).toBeGreaterThan(before);

    const dir = await tempDir('dir-layout');
    await skopeoCopy(`docker://${registry.host}/team/app:v1`, `dir:${dir}`, { srcCreds: reader });
    expect(await dirManifestDigest(dir)).toBe(image.digest);
    expect(issuer.requestLog().some((e) => e.user === 'reader' && e.granted.some((g) => g.actions.includes('pull')))).toBe(true);

    const other = makeImage({ mediaTypes: 'docker', layers: [makeLayer({ sizeBytes: 1_000 })] });
    await expect(pushImage(registry.url, 'team/app', 'v2', other, reader)).rejects.toThrow(/HTTP 401/);

    const anonymous = await tempDir('dir-layout');
    await expect(skopeoCopy(`docker://${registry.host}/team/app:v1`, `dir:${anonymous}`)).rejects.toThrow(SkopeoError);
  });

  it('answers 401 at the issuer for a wrong password', async () => {
    const url = new URL(issuer.realm);
    url.searchParams.set('service', issuer.service);
    url.searchParams.set('scope', 'repository:team/app:pull');
    const res = await fetch(url, { headers: { authorization: `Basic ${Buffer.from('reader:nope').toString('base64')}` } });
    expect(res.status).toBe(401);
    await res.arrayBuffer();
  });
});

describe('harness: distribution as a pull-through cache', () => {
  it('pulls from the primary through proxy.remoteurl', async () => {
    const primary = await startDistribution();
    cleanup.add(() => primary.dispose());
    const mirror = await startDistribution({ proxyRemoteUrl: primary.url });
    cleanup.add(() => mirror.dispose());
    const image = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 5_000 })] });
    await pushImage(primary.url, 'library/thing', 'v1', image);

    const dir = await tempDir('oci-layout');
    await skopeoCopy(`docker://${mirror.host}/library/thing:v1`, `oci:${dir}`);
    expect(await ociLayoutManifestDigests(dir)).toEqual([image.digest]);
    await primary.flushLog();
    expect(primary.countRequests({ method: 'GET', kind: 'blob' })).toBeGreaterThanOrEqual(1);
  });
});

describe('harness: fault proxy in front of a real registry', () => {
  let registry: DistributionRegistry;
  let proxy: FaultProxy;
  let image: Image;
  const bigLayer = makeLayer({ sizeBytes: 96 * 1024, seed: 'harness-big' });

  beforeAll(async () => {
    registry = await startDistribution();
    cleanup.add(() => registry.dispose());
    proxy = await startFaultProxy({ target: registry.url });
    cleanup.add(() => proxy.stop());
    image = makeImage({ mediaTypes: 'oci', layers: [bigLayer, makeLayer({ sizeBytes: 1_000, seed: 'harness-small' })] });
    await pushImage(registry.url, 'faults/app', 'v1', image);
  });

  it('passes a skopeo pull through untouched in pass mode', async () => {
    proxy.clearFaults();
    proxy.clearRequests();
    registry.clearRequests();
    const dir = await tempDir('oci-layout');
    await skopeoCopy(`docker://${proxy.host}/faults/app:v1`, `oci:${dir}`);
    expect(await ociLayoutManifestDigests(dir)).toEqual([image.digest]);
    await registry.flushLog();
    expect(proxy.countRequests({ method: 'GET', kind: 'blob' })).toBe(image.blobs.length);
    expect(registry.countRequests({ method: 'GET', kind: 'blob' })).toBe(image.blobs.length);
  });

  it('makes skopeo fail its digest check when blobs are corrupted', async () => {
    proxy.setFault({ mode: 'corruptBlob' }, { when: { kind: 'blob' } });
    const dir = await tempDir('oci-layout');
    await expect(skopeoCopy(`docker://${proxy.host}/faults/app:v1`, `oci:${dir}`)).rejects.toThrow(/digest/i);
    expect(proxy.requests({ kind: 'blob' }).some((e) => e.fault === 'corruptBlob')).toBe(true);
    proxy.clearFaults();
  });

  it('sends the real Content-Length then half the blob and breaks the connection when truncating', async () => {
    proxy.setFault({ mode: 'truncateBlob' }, { when: { kind: 'blob' } });
    const res = await fetch(`${proxy.url}/v2/faults/app/blobs/${bigLayer.digest}`);
    expect(res.status).toBe(200);
    expect(Number(res.headers.get('content-length'))).toBe(bigLayer.size);
    await expect(res.arrayBuffer()).rejects.toThrow();
    const entry = proxy.requests({ kind: 'blob' }).at(-1)!;
    expect(entry).toMatchObject({ fault: 'truncateBlob', aborted: true, bytesSent: Math.floor(bigLayer.size / 2) });
    proxy.clearFaults();
  });

  it('answers a chosen status without asking the registry, for matching requests only and as many times as asked', async () => {
    proxy.setFault({ mode: 'status', status: 503 }, { when: { kind: 'manifest' }, times: 1 });
    registry.clearRequests();
    const first = await fetch(`${proxy.url}/v2/faults/app/manifests/v1`, { headers: { accept: image.mediaType } });
    expect(first.status).toBe(503);
    expect(await first.json()).toMatchObject({ errors: [{ code: 'UNAVAILABLE' }] });
    const base = await fetch(`${proxy.url}/v2/`);
    expect(base.status).toBe(200);
    const second = await fetch(`${proxy.url}/v2/faults/app/manifests/v1`, { headers: { accept: image.mediaType } });
    expect(second.status).toBe(200);
    expect(sha256(Buffer.from(await second.arrayBuffer()))).toBe(image.digest);
    await registry.flushLog();
    expect(registry.countRequests({ kind: 'manifest' })).toBe(1);
    proxy.clearFaults();
  });

  it('holds a hung request open until released', async () => {
    proxy.setFault({ mode: 'hang' }, { when: { kind: 'manifest' } });
    const pending = fetch(`${proxy.url}/v2/faults/app/manifests/v1`);
    const settled = pending.then(
      () => 'answered',
      () => 'failed',
    );
    await waitFor(() => proxy.requests({ kind: 'manifest' }).some((e) => e.fault === 'hang' && !e.aborted), {
      what: 'the hung manifest request to reach the proxy',
    });
    expect(proxy.releaseHung()).toBe(1);
    expect(await settled).toBe('failed');
    proxy.clearFaults();
  });

  it('refuses connections after refuse() and serves again after restore()', async () => {
    await proxy.refuse();
    const refused = await fetch(`${proxy.url}/v2/`).then(
      () => undefined,
      (err: Error) => err,
    );
    expect((refused?.cause as NodeJS.ErrnoException | undefined)?.code).toBe('ECONNREFUSED');
    await proxy.restore();
    const res = await fetch(`${proxy.url}/v2/`);
    expect(res.status).toBe(200);
  });

  it('throttles blob bodies so a test can act mid-transfer', async () => {
    proxy.setFault({ mode: 'slowBlob', bytesPerSecond: 64 * 1024 }, { when: { kind: 'blob' } });
    const res = await fetch(`${proxy.url}/v2/faults/app/blobs/${bigLayer.digest}`);
    const body = res.arrayBuffer();
    await waitFor(
      () => proxy.requests({ kind: 'blob' }).some((e) => e.fault === 'slowBlob' && e.bytesSent > 0 && !e.completed),
      { what: 'a throttled blob to be mid-transfer' },
    );
    const midway = proxy.requests({ kind: 'blob' }).at(-1)!;
    expect(midway.bytesSent).toBeLessThan(bigLayer.size);
    const bytes = Buffer.from(await body);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(bigLayer.digest.slice('sha256:'.length));
    proxy.clearFaults();
  });
});
