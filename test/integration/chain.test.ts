/**
 * Chaining: an Outpost node is another Outpost's primary (office → region →
 * a distribution registry as the source of truth). skopeo pulls through the
 * office; both nodes cache, digests are the primary's, and the second pull
 * through the office costs the region nothing. Manifest and blob headers,
 * tags/list (with pagination) and referrers answer through the chain as
 * they do from the primary.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { MEDIA_TYPES, makeImage, makeLayer, pushBlob, pushImage, sha256, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { pushManifestWithSubject } from '../support/referrers-push.ts';
import { dirManifestDigest, skopeoCopy } from '../support/skopeo.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';
import { waitFor } from '../support/wait.ts';

const cleanup = createCleanupStack();
let primary: DistributionRegistry;
let region: OutpostNode;
let office: OutpostNode;
let image: Image;
let signature: { digest: string; size: number; artifactType: string };

const artifactType = 'application/vnd.example.signature.v1+json';

beforeAll(async () => {
  primary = await startDistribution();
  cleanup.add(() => primary.dispose());
  image = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 300_000, files: 3, seed: 'chain-1' }), makeLayer({ sizeBytes: 20_000, seed: 'chain-2' })] });
  await pushImage(primary.url, 'team/app', 'v1', image);
  await pushImage(primary.url, 'team/app', 'v2', image);
  // A signature of v1: an OCI artifact whose subject is the image (referrers tag schema on distribution 2.8).
  const empty = Buffer.from('{}');
  const payload = Buffer.from('signed: team/app v1');
  await pushBlob(primary.url, 'team/app', { bytes: empty, digest: sha256(empty), size: empty.length, mediaType: 'application/vnd.oci.empty.v1+json' });
  await pushBlob(primary.url, 'team/app', { bytes: payload, digest: sha256(payload), size: payload.length, mediaType: artifactType });
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.oci.manifest,
      artifactType,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: empty.length },
      layers: [{ mediaType: artifactType, digest: sha256(payload), size: payload.length }],
      subject: { mediaType: image.mediaType, digest: image.digest, size: image.size },
    }),
  );
  const put = await pushManifestWithSubject(primary.url, 'team/app', sha256(body), body, MEDIA_TYPES.oci.manifest, image.digest);
  expect(put.status).toBe(201);
  signature = { digest: sha256(body), size: body.length, artifactType };

  region = await startOutpost({ upstreamUrl: primary.url, workers: 1, env: { OUTPOST_TAG_TTL: '10m' } });
  cleanup.add(() => region.dispose());
  office = await startOutpost({ upstreamUrl: region.url, workers: 1, env: { OUTPOST_TAG_TTL: '10m' } });
  cleanup.add(() => office.dispose());
}, 120_000);
afterAll(() => cleanup.run());

/** Access-log lines of a node's registry requests. */
function requests(node: OutpostNode): Record<string, unknown>[] {
  return node.logs().filter((line) => line.msg === 'request' && line.route !== undefined && line.route !== 'base');
}

async function pullThrough(node: OutpostNode, reference: string): Promise<string> {
  const dir = await makeTempDir('chain-pull');
  try {
    await skopeoCopy(`docker://${node.host}/team/app:${reference}`, `dir:${dir}`);
    return await dirManifestDigest(dir);
  } finally {
    await removeTempDir(dir);
  }
}

describe('an Outpost whose primary is another Outpost', () => {
  it('pulls through both with the primary’s digests, and a second pull costs the region nothing', async () => {
    expect(await pullThrough(office, 'v1')).toBe(image.digest);
    // Both nodes filled their cache: the region from the primary, the office from the region.
    await waitFor(() => requests(region).filter((line) => line.route === 'blob').length >= image.blobs.length, {
      what: 'the region to log the blobs it served the office',
      timeoutMs: 5_000,
    });
    for (const blob of image.blobs) {
      expect(requests(office).some((line) => line.reference === blob.digest && line.cache !== 'hit')).toBe(true);
      expect(requests(region).some((line) => line.reference === blob.digest && line.cache !== 'hit')).toBe(true);
    }

    const regionBefore = requests(region).length;
    primary.clearRequests();
    expect(await pullThrough(office, 'v1')).toBe(image.digest);
    await waitFor(() => requests(office).filter((line) => line.cache === 'hit').length >= image.blobs.length + 1, {
      what: 'the office to log the second pull as hits',
      timeoutMs: 5_000,
    });
    expect(requests(region).length).toBe(regionBefore);
    await primary.flushLog();
    expect(primary.countRequests()).toBe(0);

    // The region kept what it fetched: pulled from it directly, the primary is not asked either.
    expect(await pullThrough(region, 'v1')).toBe(image.digest);
    await primary.flushLog();
    expect(primary.countRequests()).toBe(0);
  });

  it('answers HEAD and GET of manifests and blobs with the primary’s headers', async () => {
    const accept = { accept: `${MEDIA_TYPES.oci.manifest}, ${MEDIA_TYPES.oci.index}` };
    for (const method of ['HEAD', 'GET'] as const) {
      const res = await fetch(`${office.url}/v2/team/app/manifests/v1`, { method, headers: accept });
      const body = Buffer.from(await res.arrayBuffer());
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe(MEDIA_TYPES.oci.manifest);
      expect(res.headers.get('docker-content-digest')).toBe(image.digest);
      expect(res.headers.get('content-length')).toBe(String(image.size));
      expect(res.headers.get('etag')).toBe(`"${image.digest}"`);
      if (method === 'GET') expect(body.equals(image.manifest)).toBe(true);
    }
    const layer = image.layers[0]!;
    const head = await fetch(`${office.url}/v2/team/app/blobs/${layer.digest}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(layer.size));
    expect(head.headers.get('docker-content-digest')).toBe(layer.digest);
    expect(head.headers.get('accept-ranges')).toBe('bytes');
    const range = await fetch(`${office.url}/v2/team/app/blobs/${layer.digest}`, { headers: { range: 'bytes=10-19' } });
    const slice = Buffer.from(await range.arrayBuffer());
    expect(range.status).toBe(206);
    expect(range.headers.get('content-range')).toBe(`bytes 10-19/${layer.size}`);
    expect(slice.equals(layer.bytes.subarray(10, 20))).toBe(true);
  });

  it('lists tags through the chain, paginated', async () => {
    const all = await fetch(`${office.url}/v2/team/app/tags/list`);
    const tags = ((await all.json()) as { tags: string[] }).tags;
    // The referrers tag schema's tag is a tag of the repository too.
    expect(tags).toEqual(expect.arrayContaining(['v1', 'v2']));
    const page = await fetch(`${office.url}/v2/team/app/tags/list?n=1`);
    expect(((await page.json()) as { tags: string[] }).tags).toEqual([tags[0]]);
    expect(page.headers.get('link')).toContain('rel="next"');
  });

  it('answers referrers through the chain', async () => {
    const res = await fetch(`${office.url}/v2/team/app/referrers/${image.digest}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(MEDIA_TYPES.oci.index);
    const index = (await res.json()) as { manifests: Array<{ digest: string; artifactType?: string; size: number }> };
    expect(index.manifests).toEqual([expect.objectContaining({ digest: signature.digest, size: signature.size, artifactType: signature.artifactType })]);
    const filtered = await fetch(`${office.url}/v2/team/app/referrers/${image.digest}?artifactType=${encodeURIComponent('application/x-other')}`);
    expect(((await filtered.json()) as { manifests: unknown[] }).manifests).toEqual([]);
    expect(filtered.headers.get('oci-filters-applied')).toBe('artifactType');
  });
});
