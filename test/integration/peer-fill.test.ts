/**
 * Peer fill in a replica set: three real Outpost nodes (two workers each)
 * with a real etcd, a real Redis and a real distribution registry as the
 * primary, behind a fault-injecting proxy that can slow blob bodies down.
 * The WAN — the primary — is crossed once per blob for the whole set,
 * counted in the registry's own access log.
 *
 * The tests run in order on one replica set; the last ones kill replicas.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signPeerRequest } from '../../src/cluster/peer-protocol.ts';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { startEtcd, type EtcdServer } from '../support/etcd.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { loopbackBind, renderHaproxyConfig, startHaproxy } from '../support/haproxy.ts';
import { MEDIA_TYPES, makeImage, makeLayer, pushImage, sha256, type Image, type ImageBlob } from '../support/images.ts';
import type { OutpostNode } from '../support/outpost.ts';
import { startRedis, type RedisServer } from '../support/redis.ts';
import { startReplicas } from '../support/replica-set.ts';
import { dirManifestDigest, skopeoCopy } from '../support/skopeo.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';
import { waitFor } from '../support/wait.ts';

const clusterName = 'peerfill';
const secret = 'peer-fill-test-secret-0123456789';
const adminToken = 'peer-fill-admin-token';
const ids = ['n1', 'n2', 'n3'] as const;
const accept = [MEDIA_TYPES.oci.manifest, MEDIA_TYPES.oci.index, MEDIA_TYPES.docker.manifest, MEDIA_TYPES.docker.index].join(', ');
const MiB = 1024 * 1024;

const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let proxy: FaultProxy;
let etcd: EtcdServer;
let redis: RedisServer;
const nodes = new Map<string, OutpostNode>();

beforeAll(async () => {
  [registry, etcd, redis] = await Promise.all([startDistribution(), startEtcd(), startRedis()]);
  cleanup.add(() => registry.dispose());
  cleanup.add(() => etcd.dispose());
  cleanup.add(() => redis.dispose());
  proxy = await startFaultProxy({ target: registry.url });
  cleanup.add(() => proxy.stop());
  for (const [id, node] of await startReplicas(ids, { upstreamUrl: proxy.url, etcdUrl: etcd.url, redisUrl: redis.url, cluster: clusterName, secret, adminToken }, cleanup.add)) {
    nodes.set(id, node);
  }

  // Every node has published its address: peers can be found.
  await waitFor(async () => (await Promise.all(ids.map((id) => redis.command(`EXISTS ${clusterName}:node:${id}`)))).every((r) => r.startsWith(':1')), {
    what: 'every node to publish its address in Redis',
    timeoutMs: 10_000,
  });
}, 120_000);
afterAll(() => cleanup.run());

const node = (id: string): OutpostNode => nodes.get(id)!;

async function pushFresh(repo: string, tag: string, layerBytes: number[]): Promise<Image> {
  const image = makeImage({ mediaTypes: 'oci', layers: layerBytes.map((sizeBytes) => makeLayer({ sizeBytes })) });
  await pushImage(registry.url, repo, tag, image);
  return image;
}

async function fetchBlob(n: OutpostNode, repo: string, blob: ImageBlob): Promise<Buffer> {
  const res = await fetch(`${n.url}/v2/${repo}/blobs/${blob.digest}`, { signal: AbortSignal.timeout(30_000) });
  const bytes = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) throw new Error(`blob ${blob.digest}: HTTP ${res.status} ${bytes.toString('utf8').slice(0, 300)}`);
  return bytes;
}

/** The tag's manifest, then every blob, each checked against its digest. */
async function pull(n: OutpostNode, repo: string, tag: string, image: Image): Promise<void> {
  const res = await fetch(`${n.url}/v2/${repo}/manifests/${tag}`, { headers: { accept }, signal: AbortSignal.timeout(30_000) });
  const manifest = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) throw new Error(`manifest: HTTP ${res.status} ${manifest.toString('utf8').slice(0, 300)}`);
  expect(sha256(manifest)).toBe(image.digest);
  for (const blob of image.blobs) expect(sha256(await fetchBlob(n, repo, blob))).toBe(blob.digest);
}

/** Blob GETs the primary answered for these blobs (its own access log). */
async function primaryBlobGets(blobs: readonly ImageBlob[]): Promise<number[]> {
  await registry.flushLog();
  return blobs.map((blob) => registry.countRequests({ method: 'GET', kind: 'blob', pathIncludes: blob.digest }));
}

async function metrics(n: OutpostNode): Promise<string> {
  return (await fetch(`${n.url}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
}

/** Sum of a metric's samples whose labels contain `labels` (e.g. `result="ok"`). */
async function metric(n: OutpostNode, name: string, labels = ''): Promise<number> {
  let sum = 0;
  for (const line of (await metrics(n)).split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{')) continue;
    if (labels !== '' && !line.includes(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

describe('peer fill across three replicas', () => {
  it('fetches each blob from the primary once when the same image is pulled cold on every replica at once', async () => {
    const repo = 'peer/concurrent';
    const image = await pushFresh(repo, 'v1', [700_000, 300_000]);
    await Promise.all(ids.map((id) => pull(node(id), repo, 'v1', image)));
    expect(await primaryBlobGets(image.blobs)).toEqual(image.blobs.map(() => 1));
    const fromPeers = (await Promise.all(ids.map((id) => metric(node(id), 'outpost_peer_bytes_total')))).reduce((a, b) => a + b, 0);
    const layerBytes = image.blobs.reduce((n, b) => n + b.size, 0);
    console.info(`3 concurrent cold pulls: ${layerBytes} blob bytes, ${fromPeers} of them from peers, primary GETs per blob ${JSON.stringify(await primaryBlobGets(image.blobs))}`);
    expect(fromPeers).toBeGreaterThanOrEqual(layerBytes * 2 - 100_000);
  });

  it('pulls an image a replica already holds without asking the primary for a blob or the tag', async () => {
    const repo = 'peer/after';
    const image = await pushFresh(repo, 'v1', [1_500_000]);
    await pull(node('n1'), repo, 'v1', image);
    const before = await primaryBlobGets(image.blobs);
    const manifestsBefore = registry.countRequests({ kind: 'manifest', pathIncludes: repo });
    const okBefore = await metric(node('n2'), 'outpost_peer_fills_total', 'result="ok"');
    const started = performance.now();
    await pull(node('n2'), repo, 'v1', image);
    const ms = performance.now() - started;
    expect(await primaryBlobGets(image.blobs)).toEqual(before);
    // The tag answer n1 got is shared; the manifest bytes came from n1, verified.
    expect(registry.countRequests({ kind: 'manifest', pathIncludes: repo })).toBe(manifestsBefore);
    expect((await metric(node('n2'), 'outpost_peer_fills_total', 'result="ok"')) - okBefore).toBe(image.blobs.length + 1);
    const bytes = image.blobs.reduce((n, b) => n + b.size, 0) + image.size;
    console.info(`pull through n2 after n1: ${bytes} bytes from the peer in ${ms.toFixed(0)} ms, 0 requests to the primary`);
  });

  it('keeps the location index true: a purged blob is withdrawn, and nobody is sent to that replica for it', async () => {
    const repo = 'peer/purge';
    const image = await pushFresh(repo, 'v1', [100_000]);
    const layer = image.blobs[1]!;
    await fetchBlob(node('n1'), repo, layer);
    const holders = (): Promise<string> => redis.command(`SISMEMBER ${clusterName}:blob:${layer.digest} n1`);
    await waitFor(async () => (await holders()) === ':1\r\n', { what: 'n1 announced as a holder', timeoutMs: 5_000 });
    const res = await fetch(`${node('n1').url}/api/v0/cache/purge`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ digest: layer.digest }),
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    await waitFor(async () => (await holders()) === ':0\r\n', { what: 'n1 withdrawn after the purge', timeoutMs: 5_000 });
  });

  it('answers a peer request only with the peer secret, from this replica alone', async () => {
    const repo = 'peer/auth';
    const image = await pushFresh(repo, 'v1', [50_000]);
    const layer = image.blobs[1]!;
    await fetchBlob(node('n1'), repo, layer);
    const path = `/api/v0/peer/blobs/${layer.digest}`;
    const url = `${node('n1').url}${path}`;
    const anonymous = await fetch(url);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('UNAUTHORIZED');
    const wrong = await fetch(url, { headers: { 'x-outpost-peer': signPeerRequest('not-the-secret-0123456789', 'GET', path, 'n2', Date.now()) } });
    expect(wrong.status).toBe(401);
    await wrong.arrayBuffer();
    const signed = await fetch(url, { headers: { 'x-outpost-peer': signPeerRequest(secret, 'GET', path, 'n2', Date.now()) } });
    expect(signed.status).toBe(200);
    expect(sha256(Buffer.from(await signed.arrayBuffer()))).toBe(layer.digest);
    // A blob this replica does not hold is 404: never fetched for a peer.
    const other = image.blobs[0]!;
    const gets = (await primaryBlobGets([other]))[0];
    const otherPath = `/api/v0/peer/blobs/${other.digest}`;
    const missing = await fetch(`${node('n1').url}${otherPath}`, { headers: { 'x-outpost-peer': signPeerRequest(secret, 'GET', otherPath, 'n2', Date.now()) } });
    expect(missing.status).toBe(404);
    await missing.arrayBuffer();
    expect((await primaryBlobGets([other]))[0]).toBe(gets);
  });

  it('never completes a wrong body from a lying peer, drops it, and uses the primary', async () => {
    const repo = 'peer/liar';
    const image = await pushFresh(repo, 'v1', [400_000]);
    const layer = image.blobs[1]!;
    const lie = Buffer.from(layer.bytes);
    lie[1234] = lie[1234]! ^ 0xff;
    const liar: Server = createServer((req, res) => {
      if (req.headers['x-outpost-peer'] === undefined) return void res.writeHead(401).end();
      res.writeHead(200, { 'content-length': lie.length, 'content-type': 'application/octet-stream' });
      res.end(lie);
    });
    await new Promise<void>((resolve) => liar.listen(0, '127.0.0.1', resolve));
    cleanup.add(() => new Promise<void>((resolve) => liar.close(() => resolve())));
    await redis.command(`SET ${clusterName}:node:liar http://127.0.0.1:${(liar.address() as AddressInfo).port} PX 60000`);
    await redis.command(`SADD ${clusterName}:blob:${layer.digest} liar`);
    const first = await fetchBlob(node('n3'), repo, layer).catch((err: unknown) => err as Error);
    if (Buffer.isBuffer(first)) expect(sha256(first)).toBe(layer.digest);
    else console.info(`first pull from the lying peer broke off as it must: ${first.message}`);
    expect(sha256(await fetchBlob(node('n3'), repo, layer))).toBe(layer.digest);
    expect((await primaryBlobGets([layer]))[0]).toBeGreaterThanOrEqual(1);
    expect(await redis.command(`SISMEMBER ${clusterName}:blob:${layer.digest} liar`)).toBe(':0\r\n');
    expect(await metric(node('n3'), 'outpost_peer_fills_total', 'result="mismatch"')).toBeGreaterThanOrEqual(1);
  });

  it('costs a pull about a second when a holder stalls, then uses the primary and says why', async () => {
    const repo = 'peer/stall';
    const image = await pushFresh(repo, 'v1', [200_000]);
    const layer = image.blobs[1]!;
    const stalled: Server = createServer(() => undefined); // accepts, reads, never answers
    await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
    cleanup.add(
      () =>
        new Promise<void>((resolve) => {
          stalled.closeAllConnections();
          stalled.close(() => resolve());
        }),
    );
    await redis.command(`SET ${clusterName}:node:stalled http://127.0.0.1:${(stalled.address() as AddressInfo).port} PX 60000`);
    await redis.command(`SADD ${clusterName}:blob:${layer.digest} stalled`);
    const started = performance.now();
    expect(sha256(await fetchBlob(node('n2'), repo, layer))).toBe(layer.digest);
    const ms = performance.now() - started;
    console.info(`a stalled holder cost the pull ${ms.toFixed(0)} ms in all (primary included)`);
    expect(ms).toBeLessThan(2_500);
    expect((await primaryBlobGets([layer]))[0]).toBe(1);
    const logs = node('n2').logs();
    expect(logs.some((l) => l['msg'] === 'peer replica could not serve the blob; trying the next source' && l['peer'] === 'stalled' && l['result'] === 'timeout')).toBe(true);
  });

  it('keeps pulling while Redis is stopped and restarted, and heals: the other replicas find what was cached meanwhile', async () => {
    const repo = 'peer/redis';
    const image = await pushFresh(repo, 'v1', [1_200_000]);
    const cold = await pushFresh(repo, 'v2', [300_000]);
    const slow = proxy.addFault({ mode: 'slowBlob', bytesPerSecond: 2 * MiB }, { when: { pathIncludes: `/${repo}/blobs/` } });
    try {
      // Pulls in flight (fills holding the lock, a replica following another) when Redis goes away.
      const pulls = Promise.all([pull(node('n1'), repo, 'v1', image), pull(node('n2'), repo, 'v1', image)]);
      await waitFor(() => proxy.requests({ method: 'GET', kind: 'blob', pathIncludes: repo }).some((r) => r.bytesSent > 0 && !r.completed), {
        what: 'a fill in flight from the primary',
        timeoutMs: 10_000,
      });
      await redis.stop();
      try {
        await waitFor(async () => (await Promise.all(ids.map((id) => metric(node(id), 'outpost_redis_up')))).every((v) => v === 0), {
          what: 'every node to see Redis down',
          timeoutMs: 5_000,
        });
        // Cold and warm pulls without Redis: per-node behaviour.
        await Promise.all([pulls, pull(node('n3'), repo, 'v2', cold), pull(node('n1'), repo, 'v2', cold)]);
      } finally {
        await redis.start();
      }
    } finally {
      slow.remove();
    }
    await waitFor(async () => (await Promise.all(ids.map((id) => metric(node(id), 'outpost_redis_up')))).every((v) => v === 1), {
      what: 'every node to reconnect to Redis',
      timeoutMs: 10_000,
    });
    // Redis came back empty: the nodes announce their caches and addresses again by themselves.
    const layer = image.blobs[1]!;
    await waitFor(async () => (await redis.command(`SCARD ${clusterName}:blob:${layer.digest}`)) === ':2\r\n', {
      what: 'n1 and n2 to announce what they cached while Redis was down',
      timeoutMs: 10_000,
    });
    await waitFor(async () => (await redis.command(`EXISTS ${clusterName}:node:n1`)).startsWith(':1'), { what: 'n1 address back', timeoutMs: 5_000 });
    const before = await primaryBlobGets(image.blobs);
    await pull(node('n3'), repo, 'v1', image);
    expect(await primaryBlobGets(image.blobs)).toEqual(before);
  });

  it('fills from peers while etcd is stopped: peer fill needs only Redis', async () => {
    const repo = 'peer/etcd';
    const image = await pushFresh(repo, 'v1', [300_000]);
    await etcd.stop();
    try {
      await waitFor(async () => (await Promise.all(ids.map((id) => metric(node(id), 'outpost_etcd_up')))).every((v) => v === 0), {
        what: 'every node to see etcd down',
        timeoutMs: 10_000,
      });
      await pull(node('n1'), repo, 'v1', image);
      const before = await primaryBlobGets(image.blobs);
      await pull(node('n2'), repo, 'v1', image);
      expect(await primaryBlobGets(image.blobs)).toEqual(before);
    } finally {
      await etcd.start();
    }
    await waitFor(async () => (await Promise.all(ids.map((id) => metric(node(id), 'outpost_etcd_up')))).every((v) => v === 1), {
      what: 'every node back on etcd',
      timeoutMs: 15_000,
    });
  });

  it('gives a client correct bytes when the replica it follows is killed with SIGKILL mid-transfer', async () => {
    const repo = 'peer/kill';
    const image = await pushFresh(repo, 'v1', [3 * MiB]);
    const layer = image.blobs[1]!;
    const slow = proxy.addFault({ mode: 'slowBlob', bytesPerSecond: MiB }, { when: { pathIncludes: layer.digest } });
    try {
      const lockWaits = await metric(node('n2'), 'outpost_fill_lock_waits_total');
      const peerBytes = await metric(node('n2'), 'outpost_peer_bytes_total');
      const leading = fetchBlob(node('n1'), repo, layer).catch((err: unknown) => err);
      await waitFor(() => proxy.requests({ method: 'GET', pathIncludes: layer.digest }).some((r) => r.bytesSent > 0), {
        what: 'n1 to be filling from the slow primary',
        timeoutMs: 10_000,
      });
      const following = fetchBlob(node('n2'), repo, layer);
      await waitFor(async () => (await metric(node('n2'), 'outpost_peer_bytes_total')) > peerBytes + 64 * 1024, {
        what: 'n2 to be receiving the blob from n1',
        timeoutMs: 10_000,
        intervalMs: 100,
      });
      expect(await metric(node('n2'), 'outpost_fill_lock_waits_total')).toBe(lockWaits + 1);
      const killedAt = Date.now();
      await node('n1').crash();
      let resumedMs = 0;
      await waitFor(
        () => {
          resumedMs = Date.now() - killedAt;
          return proxy.requests({ method: 'GET', pathIncludes: layer.digest }).length === 2;
        },
        { what: 'n2 to resume from the primary', timeoutMs: 5_000, intervalMs: 10 },
      );
      const bytes = await following;
      console.info(`n1 killed mid peer transfer: n2 asked the primary for the rest ${resumedMs} ms later; its client finished after ${Date.now() - killedAt} ms`);
      expect(sha256(bytes)).toBe(layer.digest);
      expect(resumedMs).toBeLessThan(1_500);
      const logs = node('n2').logs();
      expect(logs.some((l) => l['msg'] === 'transfer from a peer replica broke off; resuming from another source' && l['peer'] === 'n1')).toBe(true);
      await leading;
      await registry.flushLog();
      const gets = registry.requests({ method: 'GET', kind: 'blob', pathIncludes: layer.digest });
      expect(gets.map((r) => r.status).sort()).toEqual([200, 206]);
      expect(await metric(node('n2'), 'outpost_peer_fills_total', 'result="broken"')).toBeGreaterThanOrEqual(1);
    } finally {
      slow.remove();
    }
    await node('n1').start();
  });

  it('survives SIGKILL of a replica mid-pull behind HAProxy: no client with retries sees a failed pull', async () => {
    const deployed = await readFile(join(import.meta.dirname, '../../deploy/haproxy/haproxy.cfg'), 'utf8');
    const front = await loopbackBind();
    const stats = await loopbackBind();
    const haproxy = await startHaproxy({
      config: ({ socket, pidfile }) =>
        renderHaproxyConfig(deployed, {
          global: [`pidfile ${pidfile}`, `stats socket ${socket} mode 600 level admin`, 'stats timeout 30s', 'maxconn 2000'],
          binds: { registry: front.bind, stats: stats.bind },
          servers: { outpost: ids.map((id) => ({ name: id, address: node(id).host, params: 'inter 200ms fastinter 100ms downinter 200ms fall 1 rise 1' })) },
          // Test only: a header naming the replica that answered, so the one in the middle of a download can be killed.
        }).replace(/^backend outpost$/m, 'backend outpost\n    http-response set-header x-served-by %s'),
      waitForListeners: [front, stats],
    });
    cleanup.add(() => haproxy.dispose());
    await waitFor(async () => (await Promise.all(ids.map((id) => haproxy.server('outpost', id)))).every((r) => r['status'] === 'UP'), {
      what: 'HAProxy to see the three replicas UP',
      timeoutMs: 10_000,
    });
    const repo = 'peer/lb';
    const images: Image[] = [];
    for (let i = 0; i < 6; i++) images.push(await pushFresh(repo, `t${i}`, [MiB + i * 1024, 100_000]));
    // Cold blobs cross a slow WAN, so pulls and peer transfers are in flight when the replica dies.
    const slow = proxy.addFault({ mode: 'slowBlob', bytesPerSecond: 2 * MiB }, { when: { pathIncludes: `/${repo}/blobs/` } });
    /** Blob downloads of the HTTP pullers that have their headers and not yet their whole body, by the replica serving them. */
    const inFlight = new Map<number, string>();
    let nextTransfer = 0;
    const scratch = await makeTempDir('peer-lb');
    cleanup.add(() => removeTempDir(scratch));
    const failures: string[] = [];
    let pulls = 0;
    let retries = 0;
    let stopping = false;
    /** A client that retries a failed request a few times, as registry clients do. */
    const withRetries = async <T>(what: string, attempt: () => Promise<T>): Promise<T> => {
      for (let i = 1; ; i++) {
        try {
          return await attempt();
        } catch (err) {
          if (i >= 4) throw new Error(`${what}: ${(err as Error).message}`);
          retries += 1;
          await new Promise((resolve) => setTimeout(resolve, 100 * i));
        }
      }
    };
    const httpPuller = async (offset: number): Promise<void> => {
      for (let i = offset; !stopping; i++) {
        const image = images[i % images.length]!;
        const tag = `t${i % images.length}`;
        try {
          await withRetries(`manifest ${tag}`, async () => {
            const res = await fetch(`http://${front.bind}/v2/${repo}/manifests/${tag}`, { headers: { accept }, signal: AbortSignal.timeout(30_000) });
            const body = Buffer.from(await res.arrayBuffer());
            if (res.status !== 200 || sha256(body) !== image.digest) throw new Error(`HTTP ${res.status}`);
          });
          for (const blob of image.blobs) {
            await withRetries(`blob ${blob.digest}`, async () => {
              const res = await fetch(`http://${front.bind}/v2/${repo}/blobs/${blob.digest}`, { signal: AbortSignal.timeout(30_000) });
              const transfer = nextTransfer++;
              inFlight.set(transfer, res.headers.get('x-served-by') ?? '');
              let body: Buffer;
              try {
                body = Buffer.from(await res.arrayBuffer());
              } finally {
                inFlight.delete(transfer);
              }
              if (res.status !== 200 || sha256(body) !== blob.digest) throw new Error(`HTTP ${res.status}, ${body.length} bytes`);
            });
          }
          pulls += 1;
        } catch (err) {
          failures.push(`http ${tag}: ${(err as Error).message}`);
        }
      }
    };
    const skopeoPuller = async (): Promise<void> => {
      for (let i = 0; !stopping; i++) {
        const tag = `t${(i * 5 + 3) % images.length}`;
        const dest = join(scratch, `pull-${i}`);
        try {
          await skopeoCopy(`docker://${front.bind}/${repo}:${tag}`, `dir:${dest}`, { timeoutMs: 60_000, extraArgs: ['--retry-times', '3'] });
          if ((await dirManifestDigest(dest)) !== images[(i * 5 + 3) % images.length]!.digest) failures.push(`skopeo ${tag}: wrong manifest`);
          pulls += 1;
        } catch (err) {
          failures.push(`skopeo ${tag}: ${(err as Error).message.slice(0, 500)}`);
        } finally {
          await removeTempDir(dest);
        }
      }
    };
    let victim = '';
    const loops = [httpPuller(0), httpPuller(3), skopeoPuller()];
    try {
      await waitFor(
        () => {
          victim = [...inFlight.values()].find((id) => ids.includes(id as (typeof ids)[number])) ?? '';
          return victim !== '';
        },
        { what: 'a blob download in flight', timeoutMs: 20_000, intervalMs: 5 },
      );
      const pullsAtKill = pulls;
      await node(victim).crash();
      await waitFor(() => pulls >= pullsAtKill + 6, { what: 'six more pulls after the kill', timeoutMs: 60_000, intervalMs: 100 });
    } finally {
      stopping = true;
      await Promise.all(loops);
      slow.remove();
    }
    console.info(`HAProxy pull loop: ${pulls} pulls, ${failures.length} failed, ${retries} HTTP requests retried, ${victim} killed mid-pull`);
    expect(failures).toEqual([]);
    expect(retries).toBeGreaterThanOrEqual(1); // the download in flight on the victim broke, and its retry succeeded
  }, 120_000);
});

describe('a blob too big for any replica to cache', () => {
  const small = new Map<string, OutpostNode>();

  beforeAll(async () => {
    // Their own replica set: a budget of 4 MiB, so a 24 MiB layer streams through everywhere.
    const started = await startReplicas(
      ['s1', 's2'],
      { upstreamUrl: proxy.url, etcdUrl: etcd.url, redisUrl: redis.url, cluster: 'peerfill-small', secret, adminToken, env: { OUTPOST_CACHE_MAX_BYTES: '4MiB' } },
      cleanup.add,
    );
    for (const [id, n] of started) small.set(id, n);
    await waitFor(async () => (await Promise.all(['s1', 's2'].map((id) => redis.command(`EXISTS peerfill-small:node:${id}`)))).every((r) => r.startsWith(':1')), {
      what: 'both small replicas to publish their address',
      timeoutMs: 10_000,
    });
  }, 120_000);

  it('is fetched from the primary once for concurrent clients on both replicas and all their workers, every body correct', async () => {
    const repo = 'peer/huge';
    const image = await pushFresh(repo, 'v1', [24 * MiB]);
    const layer = image.blobs.find((b) => b.size >= 24 * MiB)!;
    // At 4 MiB/s the streaming worker's window (4 MiB) holds the first byte for about a second.
    const slow = proxy.addFault({ mode: 'slowBlob', bytesPerSecond: 4 * MiB }, { when: { pathIncludes: layer.digest } });
    try {
      const first = Array.from({ length: 6 }, () => fetchBlob(small.get('s1')!, repo, layer));
      // s2's clients come once s1's transfer from the primary is under way (its headers are long in): s2 follows s1, the fill lock holder.
      await waitFor(() => proxy.requests({ method: 'GET', kind: 'blob', pathIncludes: layer.digest }).some((r) => r.bytesSent >= MiB), {
        what: 'the transfer from the primary to pass 1 MiB',
      });
      const second = Array.from({ length: 6 }, () => fetchBlob(small.get('s2')!, repo, layer));
      for (const body of await Promise.all([...first, ...second])) expect(sha256(body)).toBe(layer.digest);
    } finally {
      slow.remove();
    }
    expect(proxy.countRequests({ method: 'GET', kind: 'blob', pathIncludes: layer.digest })).toBe(1);
    // One replica followed the other (the cluster fill lock holder) through its peer endpoint; nothing was cached.
    await waitFor(() => [...small.values()].flatMap((n) => n.logs()).some((l) => l['msg'] === 'request' && l['route'] === 'peer' && l['module'] === 'http' && l['status'] === 200), {
      what: 'a peer transfer between the two replicas in the access log',
    });
    for (const n of small.values()) {
      expect(await readdir(join(n.cacheDir, 'blobs'), { recursive: true }).catch(() => [])).not.toContainEqual(expect.stringContaining(layer.digest.slice(7)));
    }
  }, 60_000);
});
