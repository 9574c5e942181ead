/**
 * A real HAProxy, running deploy/haproxy/haproxy.cfg (loopback binds and test
 * servers swapped in, faster checks), in front of two real Outpost nodes that
 * mirror the same distribution registry. Pulls run in a loop through HAProxy
 * while one node gets SIGTERM: HAProxy must see that node's /health fail and
 * take it out while it still serves, and no pull may fail.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { loopbackBind, renderHaproxyConfig, startHaproxy, type Haproxy } from '../support/haproxy.ts';
import { MEDIA_TYPES, makeImage, makeLayer, pushImage, sha256, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { dirManifestDigest, skopeoCopy } from '../support/skopeo.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';
import { waitFor } from '../support/wait.ts';

const deployConfig = join(import.meta.dirname, '../../deploy/haproxy/haproxy.cfg');
const repo = 'team/lb-app';
const tag = '1';
/** Checks fast enough for a test: the deployed config checks every second. */
const checkParams = 'inter 200ms fastinter 100ms downinter 200ms fall 1 rise 1';

const cleanup = createCleanupStack();
let registry: DistributionRegistry;
let image: Image;
let nodeA: OutpostNode;
let nodeB: OutpostNode;
let haproxy: Haproxy;
let lbUrl: string;
let lbHost: string;

beforeAll(async () => {
  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  image = makeImage({
    mediaTypes: 'oci',
    layers: [makeLayer({ sizeBytes: 2 * 1024 * 1024, files: 2 }), makeLayer({ sizeBytes: 256 * 1024 })],
  });
  await pushImage(registry.url, repo, tag, image);

  // Node A is the one stopped: it drains for 2 s, as a deployment would for longer.
  [nodeA, nodeB] = await Promise.all([
    startOutpost({ upstreamUrl: registry.url, workers: 2, env: { OUTPOST_DRAIN_SECONDS: '2' } }),
    startOutpost({ upstreamUrl: registry.url, workers: 2 }),
  ]);
  cleanup.add(() => nodeA.dispose());
  cleanup.add(() => nodeB.dispose());

  const deployed = await readFile(deployConfig, 'utf8');
  const front = await loopbackBind();
  const stats = await loopbackBind();
  haproxy = await startHaproxy({
    config: ({ socket, pidfile }) =>
      renderHaproxyConfig(deployed, {
        global: [`pidfile ${pidfile}`, `stats socket ${socket} mode 600 level admin`, 'stats timeout 30s', 'maxconn 2000', 'log stderr format short local0 info'],
        binds: { registry: front.bind, stats: stats.bind },
        servers: {
          outpost: [
            { name: 'node-a', address: nodeA.host, params: checkParams },
            { name: 'node-b', address: nodeB.host, params: checkParams },
          ],
        },
      }),
    waitForListeners: [front, stats],
  });
  cleanup.add(() => haproxy.dispose());
  lbUrl = `http://${front.bind}`;
  lbHost = front.bind;

  await waitFor(
    async () => {
      const rows = await Promise.all([haproxy.server('outpost', 'node-a'), haproxy.server('outpost', 'node-b')]);
      return rows.every((r) => r['status'] === 'UP' && r['check_status'] === 'L7OK');
    },
    { what: 'HAProxy to see both nodes UP with a passing /health check', timeoutMs: 10_000 },
  );
}, 120_000);
afterAll(() => cleanup.run());

const manifestAccept = [MEDIA_TYPES.oci.manifest, MEDIA_TYPES.oci.index, MEDIA_TYPES.docker.manifest, MEDIA_TYPES.docker.index].join(', ');

/** One pull over HTTP through the balancer: the tag's manifest, then every blob, each checked against its digest. */
async function pullOnce(): Promise<void> {
  const res = await fetch(`${lbUrl}/v2/${repo}/manifests/${tag}`, { headers: { accept: manifestAccept }, signal: AbortSignal.timeout(30_000) });
  const manifest = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) throw new Error(`manifest: HTTP ${res.status} ${manifest.toString('utf8').slice(0, 300)}`);
  if (sha256(manifest) !== image.digest) throw new Error(`manifest: got ${sha256(manifest)}, want ${image.digest}`);
  for (const blob of image.blobs) {
    const b = await fetch(`${lbUrl}/v2/${repo}/blobs/${blob.digest}`, { signal: AbortSignal.timeout(30_000) });
    const bytes = Buffer.from(await b.arrayBuffer());
    if (b.status !== 200) throw new Error(`blob ${blob.digest}: HTTP ${b.status} ${bytes.toString('utf8').slice(0, 300)}`);
    if (sha256(bytes) !== blob.digest) throw new Error(`blob ${blob.digest}: got ${bytes.length} bytes hashing to ${sha256(bytes)}`);
  }
}

/** One pull with skopeo (a real registry client) through the balancer into a dir: layout. */
async function skopeoPullOnce(scratch: string, n: number): Promise<void> {
  const dest = join(scratch, `pull-${n}`);
  await skopeoCopy(`docker://${lbHost}/${repo}:${tag}`, `dir:${dest}`, { timeoutMs: 60_000 });
  const digest = await dirManifestDigest(dest);
  await removeTempDir(dest);
  if (digest !== image.digest) throw new Error(`skopeo pulled manifest ${digest}, want ${image.digest}`);
}

interface PullLoop {
  /** Pulls that completed and verified. */
  ok(): number;
  failures: string[];
  /** Stops starting new pulls and waits for the running ones. */
  stop(): Promise<void>;
}

/** `concurrency` HTTP pullers and one skopeo puller, each pulling again as soon as its pull ends. */
function startPullLoop(concurrency: number, scratch: string, deadline: number): PullLoop {
  let stopping = false;
  let ok = 0;
  const failures: string[] = [];
  const run = async (pull: (n: number) => Promise<void>, who: string): Promise<void> => {
    for (let n = 0; !stopping && Date.now() < deadline; n++) {
      try {
        await pull(n);
        ok += 1;
      } catch (err) {
        failures.push(`${who} pull ${n} at ${new Date().toISOString()}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  };
  const runners = [
    ...Array.from({ length: concurrency }, (_, i) => run(() => pullOnce(), `http#${i}`)),
    run((n) => skopeoPullOnce(scratch, n), 'skopeo'),
  ];
  return {
    ok: () => ok,
    failures,
    async stop() {
      stopping = true;
      await Promise.all(runners);
    },
  };
}

const served = (row: Record<string, string>): number => Number(row['hrsp_2xx'] ?? 0);

describe('HAProxy in front of two Outpost nodes', () => {
  it('takes a node that got SIGTERM out of rotation while it drains, and no pull fails', async () => {
    const scratch = await makeTempDir('lb-pulls');
    cleanup.add(() => removeTempDir(scratch));
    // Bound for the whole loop, so a wedged pull cannot hang the test.
    const loop = startPullLoop(3, scratch, Date.now() + 90_000);
    try {
      // Both nodes carry traffic before one is stopped.
      await waitFor(
        async () => {
          const [a, b] = await Promise.all([haproxy.server('outpost', 'node-a'), haproxy.server('outpost', 'node-b')]);
          return served(a) >= 10 && served(b) >= 10 && loop.ok() >= 4;
        },
        { what: 'pulls through HAProxy to reach both nodes', timeoutMs: 30_000 },
      );
      expect(loop.failures).toEqual([]);

      const exited = nodeA.exited();
      process.kill(nodeA.pid!, 'SIGTERM');

      // HAProxy sees /health fail and marks the node down while it still serves (2 s drain).
      await waitFor(async () => (await haproxy.server('outpost', 'node-a'))['status']?.startsWith('DOWN') ?? false, {
        what: 'HAProxy to mark the draining node DOWN',
        timeoutMs: 5_000,
        intervalMs: 20,
      });
      const markedDown = await haproxy.server('outpost', 'node-a');
      expect(markedDown['check_status']).toBe('L7STS'); // a 503 from /health, not a refused connection
      const stillServing = await fetch(`${nodeA.url}/v2/`, { signal: AbortSignal.timeout(5_000) });
      await stillServing.arrayBuffer();
      expect(stillServing.status).toBe(200);

      const exit = await Promise.race([
        exited,
        // Its own bound: drain (2 s) + shutdown timeout (30 s) + 10 s.
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('node A did not exit within 45 s of SIGTERM')), 45_000).unref()),
      ]);
      expect(exit, `node A's log:\n${nodeA.output().slice(-4000)}`).toEqual({ code: 0, signal: null });

      // Everything after the exit goes to node B.
      const aAfterExit = served(await haproxy.server('outpost', 'node-a'));
      const bAfterExit = served(await haproxy.server('outpost', 'node-b'));
      const okAfterExit = loop.ok();
      await waitFor(() => loop.ok() >= okAfterExit + 6, { what: 'more pulls after the node stopped', timeoutMs: 30_000 });
      await loop.stop();

      expect(loop.failures).toEqual([]);
      const [a, b] = await Promise.all([haproxy.server('outpost', 'node-a'), haproxy.server('outpost', 'node-b')]);
      expect(a['status']).toMatch(/^DOWN/);
      expect(served(a)).toBe(aAfterExit);
      expect(served(b)).toBeGreaterThan(bAfterExit);
      // The drain made retries unnecessary: HAProxy never had to resend a
      // request to the other node (retry-on / redispatch would hide a refused
      // connection from the client, but only after a wasted attempt).
      expect({ retries: a['wretr'], redispatches: a['wredis'] }).toEqual({ retries: '0', redispatches: '0' });
    } finally {
      await loop.stop();
    }
  }, 180_000);
});
