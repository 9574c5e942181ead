/**
 * Real clients through a real Outpost node (2 cluster workers) in front of a
 * real CNCF distribution registry: digests, headers, the warm-tag fast path,
 * and one upstream GET for many concurrent cold requests.
 */
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { makeImage, makeIndex, makeLayer, pushBlob, pushImage, pushIndex, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { dirManifestDigest, ociLayoutManifestDigests, skopeoCopy } from '../support/skopeo.ts';
import { rawRequest } from '../support/raw-http.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';

const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let outpost: OutpostNode;
let ociImage: Image;
let dockerImage: Image;
let ociIndexDigest: string;
let dockerListDigest: string;

async function tempDir(): Promise<string> {
  const dir = await makeTempDir('pull');
  cleanup.add(() => removeTempDir(dir));
  return dir;
}

const accept = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

beforeAll(async () => {
  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  ociImage = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 300_000, files: 3, seed: 'oci-1' }), makeLayer({ sizeBytes: 50_000, seed: 'oci-2' })] });
  dockerImage = makeImage({ mediaTypes: 'docker', layers: [makeLayer({ sizeBytes: 200_000, seed: 'docker-1' })] });
  await pushImage(registry.url, 'team/oci-app', 'v1', ociImage);
  await pushImage(registry.url, 'team/docker-app', 'v1', dockerImage);
  const amd64 = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 80_000, seed: 'amd64' })], platform: { os: 'linux', architecture: 'amd64' } });
  const arm64 = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 80_000, seed: 'arm64' })], platform: { os: 'linux', architecture: 'arm64' } });
  ociIndexDigest = (await pushIndex(registry.url, 'team/multi', 'v1', makeIndex([amd64, arm64], 'oci'), [amd64, arm64])).digest;
  const damd64 = makeImage({ mediaTypes: 'docker', layers: [makeLayer({ sizeBytes: 60_000, seed: 'd-amd64' })], platform: { os: 'linux', architecture: 'amd64' } });
  const darm = makeImage({ mediaTypes: 'docker', layers: [makeLayer({ sizeBytes: 60_000, seed: 'd-arm' })], platform: { os: 'linux', architecture: 'arm', variant: 'v7' } });
  dockerListDigest = (await pushIndex(registry.url, 'team/multi-docker', 'v1', makeIndex([damd64, darm], 'docker'), [damd64, darm])).digest;
  outpost = await startOutpost({ upstreamUrl: registry.url, env: { OUTPOST_TAG_TTL: '1h' } });
  cleanup.add(() => outpost.dispose());
}, 120_000);

afterAll(() => cleanup.run());

describe('pulling real images with skopeo through Outpost', () => {
  it('gives the primary’s digest for an OCI image', async () => {
    const dir = await tempDir();
    await skopeoCopy(`docker://${outpost.host}/team/oci-app:v1`, `oci:${dir}:v1`);
    expect(await ociLayoutManifestDigests(dir)).toEqual([ociImage.digest]);
  });

  it('gives the primary’s digest for a Docker schema 2 image', async () => {
    const dir = await tempDir();
    await skopeoCopy(`docker://${outpost.host}/team/docker-app:v1`, `dir:${dir}`);
    expect(await dirManifestDigest(dir)).toBe(dockerImage.digest);
  });

  it('gives the primary’s digest for a multi-arch OCI index, every platform included', async () => {
    const dir = await tempDir();
    await skopeoCopy(`docker://${outpost.host}/team/multi:v1`, `oci:${dir}:v1`, { all: true });
    expect(await ociLayoutManifestDigests(dir)).toEqual([ociIndexDigest]);
  });

  it('gives the primary’s digest for a Docker manifest list', async () => {
    const dir = await tempDir();
    await skopeoCopy(`docker://${outpost.host}/team/multi-docker:v1`, `dir:${dir}`, { all: true });
    expect(await dirManifestDigest(dir)).toBe(dockerListDigest);
  });

  it('pulls a warm tag within its TTL without a single upstream request', async () => {
    await skopeoCopy(`docker://${outpost.host}/team/oci-app:v1`, `oci:${await tempDir()}:v1`);
    await registry.flushLog();
    registry.clearRequests();
    const dir = await tempDir();
    await skopeoCopy(`docker://${outpost.host}/team/oci-app:v1`, `oci:${dir}:v1`);
    expect(await ociLayoutManifestDigests(dir)).toEqual([ociImage.digest]);
    await registry.flushLog();
    expect(registry.requests()).toEqual([]);
  });
});

describe('registry API details', () => {
  it('answers HEAD and GET of a manifest with the same headers', async () => {
    const url = `${outpost.url}/v2/team/oci-app/manifests/v1`;
    const head = await request(url, { method: 'HEAD', headers: { accept } });
    const get = await request(url, { headers: { accept } });
    const body = Buffer.from(await get.body.arrayBuffer());
    for (const res of [head, get]) {
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('application/vnd.oci.image.manifest.v1+json');
      expect(res.headers['docker-content-digest']).toBe(ociImage.digest);
      expect(res.headers['etag']).toBe(`"${ociImage.digest}"`);
      expect(Number(res.headers['content-length'])).toBe(ociImage.manifest.length);
    }
    expect(body.equals(ociImage.manifest)).toBe(true);
  });

  it('hands a client that cannot take an index the linux/amd64 manifest', async () => {
    const res = await request(`${outpost.url}/v2/team/multi/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    const body = JSON.parse(await res.body.text());
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(body.layers).toHaveLength(1);
  });

  it('serves byte ranges of a cached blob with 206 and refuses unsatisfiable ones with 416', async () => {
    const layer = ociImage.layers[0]!;
    const url = `${outpost.url}/v2/team/oci-app/blobs/${layer.digest}`;
    await (await request(url)).body.arrayBuffer(); // warm
    const partial = await request(url, { headers: { range: 'bytes=100-199' } });
    expect(partial.statusCode).toBe(206);
    expect(partial.headers['content-range']).toBe(`bytes 100-199/${layer.size}`);
    expect(Buffer.from(await partial.body.arrayBuffer()).equals(layer.bytes.subarray(100, 200))).toBe(true);
    const bad = await request(url, { headers: { range: `bytes=${layer.size}-` } });
    expect(bad.statusCode).toBe(416);
    expect(JSON.parse(await bad.body.text()).errors[0].code).toBe('RANGE_INVALID');
    const head = await request(url, { method: 'HEAD' });
    expect(head.headers['accept-ranges']).toBe('bytes');
    expect(head.headers['docker-content-digest']).toBe(layer.digest);
    expect(Number(head.headers['content-length'])).toBe(layer.size);
    await head.body.dump();
  });

  it('honours Range past the end, If-Range and If-None-Match lists on blobs', async () => {
    const layer = ociImage.layers[1]!;
    const url = `${outpost.url}/v2/team/oci-app/blobs/${layer.digest}`;
    await (await request(url)).body.arrayBuffer(); // warm: ranges apply to cached blobs
    for (const range of [`bytes=0-${layer.size + 10}`, 'bytes=0-99999999999999999999999']) {
      const toEnd = await request(url, { headers: { range } });
      expect(toEnd.statusCode, range).toBe(206);
      expect(toEnd.headers['content-range']).toBe(`bytes 0-${layer.size - 1}/${layer.size}`);
      expect(Buffer.from(await toEnd.body.arrayBuffer()).equals(layer.bytes)).toBe(true);
    }
    const matching = await request(url, { headers: { range: 'bytes=10-19', 'if-range': `"${layer.digest}"` } });
    expect(matching.statusCode).toBe(206);
    await matching.body.dump();
    for (const ifRange of [`"sha256:${'0'.repeat(64)}"`, `W/"${layer.digest}"`, 'Wed, 21 Oct 2015 07:28:00 GMT']) {
      const whole = await request(url, { headers: { range: 'bytes=10-19', 'if-range': ifRange } });
      expect(whole.statusCode, ifRange).toBe(200);
      expect(Buffer.from(await whole.body.arrayBuffer()).equals(layer.bytes)).toBe(true);
    }
    for (const [ifNoneMatch, status] of [[`"a", "${layer.digest}"`, 304], ['*', 304], ['"a", "b"', 200]] as const) {
      for (const method of ['GET', 'HEAD'] as const) {
        const res = await request(url, { method, headers: { 'if-none-match': ifNoneMatch } });
        await res.body.dump();
        expect(res.statusCode, `${method} If-None-Match: ${ifNoneMatch}`).toBe(status);
      }
    }
    const absent = await request(`${outpost.url}/v2/team/oci-app/blobs/sha256:${'0'.repeat(64)}`, { headers: { 'if-none-match': '*' } });
    await absent.body.dump();
    expect(absent.statusCode).toBe(404);
  });

  it('answers 304 to If-None-Match lists and * on manifests', async () => {
    const url = `${outpost.url}/v2/team/oci-app/manifests/v1`;
    for (const [ifNoneMatch, status] of [[`"x", "${ociImage.digest}"`, 304], ['*', 304], [`W/"${ociImage.digest}"`, 304], ['"x"', 200]] as const) {
      for (const method of ['GET', 'HEAD'] as const) {
        const res = await request(url, { method, headers: { accept, 'if-none-match': ifNoneMatch } });
        await res.body.dump();
        expect(res.statusCode, `${method} If-None-Match: ${ifNoneMatch}`).toBe(status);
        expect(res.headers['etag']).toBe(`"${ociImage.digest}"`);
      }
    }
  });

  it('paginates tags/list with n and last', async () => {
    for (const tag of ['v2', 'v3']) await pushImage(registry.url, 'team/oci-app', tag, ociImage);
    const first = await request(`${outpost.url}/v2/team/oci-app/tags/list?n=2`);
    expect(JSON.parse(await first.body.text())).toEqual({ name: 'team/oci-app', tags: ['v1', 'v2'] });
    expect(first.headers['link']).toContain('last=v2');
    const second = await request(`${outpost.url}/v2/team/oci-app/tags/list?n=2&last=v2`);
    expect(JSON.parse(await second.body.text())).toEqual({ name: 'team/oci-app', tags: ['v3'] });
  });

  it('lists the cached repositories in the catalog', async () => {
    const res = await request(`${outpost.url}/v2/_catalog`);
    const { repositories } = JSON.parse(await res.body.text()) as { repositories: string[] };
    expect(repositories).toEqual(expect.arrayContaining(['team/docker-app', 'team/multi', 'team/oci-app']));
    const page = await request(`${outpost.url}/v2/_catalog?n=1`);
    expect(JSON.parse(await page.body.text()).repositories).toHaveLength(1);
  });

  it.each([
    ['PUT', '/v2/team/oci-app/manifests/v9', 405, 'UNSUPPORTED'],
    ['DELETE', `/v2/team/oci-app/manifests/sha256:${'a'.repeat(64)}`, 405, 'UNSUPPORTED'],
    ['POST', '/v2/team/oci-app/blobs/uploads/', 405, 'UNSUPPORTED'],
    ['PATCH', '/v2/team/oci-app/blobs/uploads/abc', 405, 'UNSUPPORTED'],
    ['GET', '/v2/team%2Foci-app/manifests/v1', 400, 'NAME_INVALID'],
    ['GET', '/v2/Team/App/manifests/v1', 400, 'NAME_INVALID'],
    ['GET', '/v2/team/oci-app/blobs/sha256:1234', 400, 'DIGEST_INVALID'],
    ['GET', '/v2/team/oci-app/manifests/-bad-tag', 404, 'MANIFEST_UNKNOWN'],
    ['GET', '/v2/team/oci-app/manifests/sha256:totallywrong', 400, 'DIGEST_INVALID'],
    ['GET', '/v2/team/oci-app/manifests/nope', 404, 'MANIFEST_UNKNOWN'],
    ['GET', `/v2/team/oci-app/blobs/sha256:${'0'.repeat(64)}`, 404, 'BLOB_UNKNOWN'],
    ['GET', '/v2/team/oci-app/tags/list?n=-1', 400, 'PAGINATION_NUMBER_INVALID'],
  ])('%s %s answers %i %s in the OCI error envelope', async (method, path, status, code) => {
    const res = await request(`${outpost.url}${path}`, { method: method as 'GET' });
    const text = await res.body.text();
    expect(res.statusCode).toBe(status);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(text)).toEqual({ errors: [expect.objectContaining({ code, message: expect.any(String) })] });
    expect(text).not.toMatch(/at .*\.ts|\/tmp\//);
  });
});

describe('path tricks sent byte for byte', () => {
  it.each([
    ['/v2/team/../etc/manifests/v1', 'NAME_INVALID'],
    ['/v2/../../etc/passwd/blobs/sha256:' + 'a'.repeat(64), 'NAME_INVALID'],
    ['/v2/team/%2e%2e/app/manifests/v1', 'NAME_INVALID'],
    ['/v2/team/app/manifests/..%2f..%2fx', 'NAME_INVALID'],
    ['/v2/team/app/blobs/sha256:..%2f' + 'a'.repeat(60), 'NAME_INVALID'],
  ])('GET %s answers 400 %s', async (path, code) => {
    const res = await rawRequest('127.0.0.1', outpost.port, 'GET', path);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).errors[0].code).toBe(code);
  });
});

describe('one upstream fetch per blob', () => {
  it('16 concurrent cold GETs of a 64 MiB blob cause one upstream GET and all get correct bytes', async () => {
    const bytes = randomBytes(64 * 1024 * 1024);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    await pushBlob(registry.url, 'team/big', { bytes, digest, size: bytes.length, mediaType: 'application/octet-stream' });
    await registry.flushLog();
    registry.clearRequests();
    const results = await Promise.all(
      Array.from({ length: 16 }, async () => {
        const res = await request(`${outpost.url}/v2/team/big/blobs/${digest}`);
        const hash = createHash('sha256');
        let size = 0;
        for await (const chunk of res.body) {
          hash.update(chunk as Buffer);
          size += (chunk as Buffer).length;
        }
        return { status: res.statusCode, size, digest: `sha256:${hash.digest('hex')}`, cache: res.headers['x-outpost-cache'] };
      }),
    );
    for (const result of results) expect(result).toMatchObject({ status: 200, size: bytes.length, digest });
    expect(results.filter((r) => r.cache === 'miss')).toHaveLength(1);
    await registry.flushLog();
    expect(registry.countRequests({ method: 'GET', kind: 'blob', pathIncludes: digest })).toBe(1);
  });
});
