/**
 * Failure behaviour with a real distribution registry behind a fault-injecting
 * proxy: a lying or truncating primary never gets bytes cached or a client a
 * complete-looking wrong body; a stopped, hung, failing primary or a restart
 * during the outage still serves what is cached.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { makeImage, makeLayer, pushBlob, pushImage, pushManifest, sha256, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { pullOciDigests } from '../support/skopeo.ts';
import { waitFor } from '../support/wait.ts';

const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let proxy: FaultProxy;
let outpost: OutpostNode;
let image: Image;

async function pushRandomBlob(size: number): Promise<{ bytes: Buffer; digest: string }> {
  const bytes = randomBytes(size);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  await pushBlob(registry.url, 'team/blobs', { bytes, digest, size, mediaType: 'application/octet-stream' });
  return { bytes, digest };
}

/** GETs a blob through Outpost; resolves with what the client saw, including a broken connection. */
/**
 * GETs a blob; a broken connection is reported as `error`. When the fill fails
 * right after the headers were queued, the connection can close before they
 * reach the client: status 0, no bytes — broken all the same, never complete.
 */
async function getBlob(digest: string): Promise<{ status: number; cache: unknown; bytes: Buffer; error?: unknown }> {
  let res;
  try {
    res = await request(`${outpost.url}/v2/team/blobs/blobs/${digest}`);
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'UND_ERR_SOCKET') throw error;
    return { status: 0, cache: undefined, bytes: Buffer.alloc(0), error };
  }
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of res.body) chunks.push(chunk as Buffer);
  } catch (error) {
    return { status: res.statusCode, cache: res.headers['x-outpost-cache'], bytes: Buffer.concat(chunks), error };
  }
  return { status: res.statusCode, cache: res.headers['x-outpost-cache'], bytes: Buffer.concat(chunks) };
}

function pullImage(): Promise<string[]> {
  return pullOciDigests(`${outpost.host}/team/app:v1`, { timeoutMs: 60_000 });
}

function staleLogs(): number {
  return outpost.logs().filter((line) => line.msg === 'primary unavailable; serving last known tag answer').length;
}

beforeAll(async () => {
  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  proxy = await startFaultProxy({ target: registry.url });
  cleanup.add(() => proxy.stop());
  image = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 400_000, seed: 'resilience' })] });
  await pushImage(registry.url, 'team/app', 'v1', image);
  // TTL 0: every tag request revalidates, so each outage below is met head-on.
  // The circuit breaker and the 429 gate stay out of the way (a threshold and a cool-down no test reaches):
  // every request here must meet the fault itself; upstream-protection.test.ts covers them.
  outpost = await startOutpost({
    upstreamUrl: proxy.url,
    env: {
      OUTPOST_TAG_TTL: '0s',
      OUTPOST_TAG_REVALIDATE_TIMEOUT: '1s',
      OUTPOST_UPSTREAM_HEADERS_TIMEOUT: '2s',
      OUTPOST_UPSTREAM_BODY_TIMEOUT: '2s',
      OUTPOST_UPSTREAM_FAILURE_THRESHOLD: '1000',
      OUTPOST_UPSTREAM_COOLDOWN: '1ms',
      OUTPOST_UPSTREAM_NOT_FOUND_TTL: '0s',
    },
  });
  cleanup.add(() => outpost.dispose());
  expect(await pullImage()).toEqual([image.digest]); // warm-up
}, 120_000);

afterEach(async () => {
  proxy.clearFaults();
  proxy.releaseHung();
  await proxy.restore();
});

afterAll(() => cleanup.run());

describe('a primary that sends wrong or missing bytes', () => {
  it('breaks the client connection and caches nothing when the bytes do not match the digest', async () => {
    const { bytes, digest } = await pushRandomBlob(1024 * 1024);
    proxy.addFault({ mode: 'corruptBlob' }, { when: { kind: 'blob', pathIncludes: digest }, times: 1 });
    const bad = await getBlob(digest);
    expect([0, 200]).toContain(bad.status); // 0: cut before the headers got out
    expect(bad.error).toBeDefined();
    expect(bad.bytes.length).toBeLessThan(bytes.length);
    const good = await getBlob(digest);
    expect(good.error).toBeUndefined();
    expect(good.cache).toBe('miss'); // the corrupt attempt left nothing behind
    expect(good.bytes.equals(bytes)).toBe(true);
  });

  it('breaks the client connection and caches nothing when the body is truncated', async () => {
    const { bytes, digest } = await pushRandomBlob(1024 * 1024);
    proxy.addFault({ mode: 'truncateBlob' }, { when: { kind: 'blob', pathIncludes: digest }, times: 1 });
    const bad = await getBlob(digest);
    expect(bad.error).toBeDefined();
    expect(bad.bytes.length).toBeLessThan(bytes.length);
    expect(await readdir(path.join(outpost.cacheDir, 'ingest'))).toEqual([]);
    const good = await getBlob(digest);
    expect(good.cache).toBe('miss');
    expect(good.bytes.equals(bytes)).toBe(true);
  });
});

describe('a client that goes away mid-fill', () => {
  it('lets the fill complete, so the next client gets the blob from disk', async () => {
    const { bytes, digest } = await pushRandomBlob(2 * 1024 * 1024);
    proxy.addFault({ mode: 'slowBlob', bytesPerSecond: 4 * 1024 * 1024 }, { when: { kind: 'blob', pathIncludes: digest } });
    const res = await request(`${outpost.url}/v2/team/blobs/blobs/${digest}`);
    const iterator = res.body[Symbol.asyncIterator]();
    await iterator.next();
    res.body.destroy();
    await waitFor(() => proxy.requests({ kind: 'blob', pathIncludes: digest }).some((entry) => entry.completed), {
      what: 'the fill to finish reading from the primary',
      timeoutMs: 20_000,
    });
    await waitFor(
      async () => {
        const head = await request(`${outpost.url}/v2/team/blobs/blobs/${digest}`, { method: 'HEAD' });
        await head.body.dump();
        return head.headers['x-outpost-cache'] === 'hit';
      },
      { what: 'the blob to be cached', timeoutMs: 10_000 },
    );
    const again = await getBlob(digest);
    expect(again.cache).toBe('hit');
    expect(again.bytes.equals(bytes)).toBe(true);
    expect(proxy.countRequests({ method: 'GET', kind: 'blob', pathIncludes: digest })).toBe(1);
  });
});

describe('a worker killed while it leads a fill', () => {
  /** A GET whose progress the test can watch while it runs. */
  function startGet(digest: string) {
    let received = 0;
    const done = (async () => {
      const res = await request(`${outpost.url}/v2/team/blobs/blobs/${digest}`);
      const chunks: Buffer[] = [];
      try {
        for await (const chunk of res.body) {
          chunks.push(chunk as Buffer);
          received += (chunk as Buffer).length;
        }
      } catch (error) {
        return { status: res.statusCode, cache: res.headers['x-outpost-cache'], bytes: Buffer.concat(chunks), error };
      }
      return { status: res.statusCode, cache: res.headers['x-outpost-cache'], bytes: Buffer.concat(chunks), error: undefined };
    })();
    return { received: () => received, done };
  }

  it('gives clients on the other worker correct bytes or a broken connection, never wrong ones, and a retry succeeds', async () => {
    const { bytes, digest } = await pushRandomBlob(8 * 1024 * 1024);
    // Slow enough to kill the leader mid-transfer; the stall timeout (headers 2 s + connect 2 s + body 2 s) is never what ends a request here.
    proxy.addFault({ mode: 'slowBlob', bytesPerSecond: 2 * 1024 * 1024 }, { when: { kind: 'blob', pathIncludes: digest } });
    const started = Date.now();
    const first = startGet(digest);
    let leaderPid: number | undefined;
    await waitFor(
      () => {
        leaderPid = outpost.logs().find((line) => line.msg === 'blob fill started' && line.digest === digest)?.pid as number | undefined;
        return leaderPid !== undefined;
      },
      { what: 'a worker to start the fill', timeoutMs: 10_000 },
    );
    // Separate connections: the cluster hands them to the workers in turn, so some land on the worker that survives.
    const followers = [0, 1, 2, 3].map(() => startGet(digest));
    await waitFor(() => followers.every((f) => f.received() >= 512 * 1024), { what: 'every follower to receive bytes', timeoutMs: 15_000 });
    const partials = await readdir(path.join(outpost.cacheDir, 'ingest'));
    expect(partials).toHaveLength(1);
    process.kill(leaderPid!, 'SIGKILL');
    // The dead worker's partial file goes at once, not at the next restart.
    await waitFor(async () => !(await readdir(path.join(outpost.cacheDir, 'ingest'))).includes(partials[0]!), {
      what: 'the dead leader’s partial file to be removed',
      timeoutMs: 5_000,
    });
    const results = await Promise.all([first, ...followers].map((client) => client.done));
    for (const result of results) {
      expect(result.status).toBe(200);
      if (result.error === undefined) expect(result.bytes.equals(bytes)).toBe(true);
      else expect(result.bytes.length).toBeLessThan(bytes.length);
    }
    // The followers on the surviving worker took the fill over.
    expect(results.filter((r) => r.error === undefined).length).toBeGreaterThan(0);
    expect(Date.now() - started).toBeLessThan(30_000);
    const retry = await getBlob(digest);
    expect(retry.error).toBeUndefined();
    expect(retry.bytes.equals(bytes)).toBe(true);
    expect(outpost.logs().some((line) => line.msg === 'taking over a fill whose leader went away' && line.digest === digest)).toBe(true);
  }, 60_000);
});

describe('referrers', () => {
  it('relays the primary’s referrers index and serves it while the primary is down', async () => {
    const subject = image.digest;
    const listed = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'5'.repeat(64)}`, size: 512, artifactType: 'application/spdx+json' };
    const index = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [listed] });
    // distribution 2.8 has no referrers API, so the proxy answers for it as a newer primary would.
    proxy.addFault(
      { mode: 'status', status: 200, headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' }, body: index },
      { when: { pathIncludes: `/referrers/${subject}` } },
    );
    const first = await request(`${outpost.url}/v2/team/app/referrers/${subject}`);
    expect(first.statusCode).toBe(200);
    expect(first.headers['content-type']).toBe('application/vnd.oci.image.index.v1+json');
    expect(first.headers['oci-filters-applied']).toBeUndefined();
    expect(JSON.parse(await first.body.text())).toEqual(JSON.parse(index));
    const filtered = await request(`${outpost.url}/v2/team/app/referrers/${subject}?artifactType=application/vnd.example.other`);
    expect(filtered.headers['oci-filters-applied']).toBe('artifactType');
    expect(JSON.parse(await filtered.body.text()).manifests).toEqual([]);
    await proxy.refuse();
    const stale = await request(`${outpost.url}/v2/team/app/referrers/${subject}`);
    expect(stale.statusCode).toBe(200);
    expect(stale.headers['x-outpost-cache']).toBe('stale');
    expect(JSON.parse(await stale.body.text())).toEqual(JSON.parse(index));
  });

  it('answers an empty index when the primary has neither the referrers API nor a referrers tag', async () => {
    const res = await request(`${outpost.url}/v2/team/app/referrers/sha256:${'6'.repeat(64)}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/vnd.oci.image.index.v1+json');
    expect(JSON.parse(await res.body.text())).toEqual({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] });
  });

  it('builds referrers from the referrers tag schema and serves them while the primary is down', async () => {
    const signature = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        artifactType: 'application/vnd.example.signature',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(Buffer.from('{}')), size: 2 },
        layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(Buffer.from('{}')), size: 2 }],
        subject: { mediaType: image.mediaType, digest: image.digest, size: image.size },
        annotations: { 'org.example.signed-by': 'ci' },
      }),
    );
    await pushBlob(registry.url, 'team/app', { bytes: Buffer.from('{}'), digest: sha256(Buffer.from('{}')), size: 2, mediaType: 'application/vnd.oci.empty.v1+json' });
    const signatureDigest = await pushManifest(registry.url, 'team/app', sha256(signature), signature, 'application/vnd.oci.image.manifest.v1+json');
    const descriptor = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: signatureDigest, size: signature.length, artifactType: 'application/vnd.example.signature', annotations: { 'org.example.signed-by': 'ci' } };
    const fallback = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [descriptor] }));
    await pushManifest(registry.url, 'team/app', `sha256-${image.digest.slice('sha256:'.length)}`, fallback, 'application/vnd.oci.image.index.v1+json');

    const url = `${outpost.url}/v2/team/app/referrers/${image.digest}`;
    const first = await request(url);
    expect(first.statusCode).toBe(200);
    expect(JSON.parse(await first.body.text()).manifests).toEqual([descriptor]);
    await proxy.refuse();
    const stale = await request(`${url}?artifactType=application/vnd.example.signature`);
    expect(stale.statusCode).toBe(200);
    expect(stale.headers['x-outpost-cache']).toBe('stale');
    expect(stale.headers['oci-filters-applied']).toBe('artifactType');
    expect(JSON.parse(await stale.body.text()).manifests).toEqual([descriptor]);
  });
});

describe('an unavailable primary', () => {
  it('still pulls cached images when the primary refuses connections', async () => {
    await proxy.refuse();
    const before = staleLogs();
    expect(await pullImage()).toEqual([image.digest]);
    expect(staleLogs()).toBeGreaterThan(before);
  });

  it.each([503, 429])('still pulls cached images when the primary answers %i', async (status) => {
    proxy.setFault({ mode: 'status', status }, { when: { kind: 'manifest' } });
    expect(await pullImage()).toEqual([image.digest]);
  });

  it('answers a tag request within the revalidate bound when the primary hangs', async () => {
    proxy.setFault({ mode: 'hang' });
    const started = Date.now();
    const res = await request(`${outpost.url}/v2/team/app/manifests/v1`, { method: 'HEAD' });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    expect(res.headers['docker-content-digest']).toBe(image.digest);
    expect(res.headers['x-outpost-cache']).toBe('stale');
    // Revalidate timeout is 1 s; undici's timers are coarse, so allow generous slack — the point is "not hung".
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(await pullImage()).toEqual([image.digest]);
  });

  it('answers 502 for uncached content when the primary is down, and 504 when it hangs', async () => {
    await proxy.refuse();
    const down = await request(`${outpost.url}/v2/team/never-pulled/manifests/v1`);
    expect(down.statusCode).toBe(502);
    expect(JSON.parse(await down.body.text()).errors[0].code).toBe('UPSTREAM_UNAVAILABLE');
    await proxy.restore();
    proxy.setFault({ mode: 'hang' });
    const hung = await request(`${outpost.url}/v2/team/blobs/blobs/sha256:${'1'.repeat(64)}`);
    expect(hung.statusCode).toBe(504);
    expect(JSON.parse(await hung.body.text()).errors[0].code).toBe('UPSTREAM_TIMEOUT');
  });

  it('starts and serves its cache when restarted while the primary is down', async () => {
    await proxy.refuse();
    await outpost.stop();
    await outpost.start();
    expect(await pullImage()).toEqual([image.digest]);
  });
});
