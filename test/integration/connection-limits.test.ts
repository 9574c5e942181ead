/**
 * Clients cannot hold a node's connections and file descriptors forever:
 * slow request bodies are cut after the body timeout, clients that never
 * read a big blob after the send timeout (while a client that reads gets the
 * whole blob), and connections over the per-worker cap are closed as they
 * arrive. Each time, the workers' descriptors and the node's active
 * connections come back to where they were.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { pushBlob } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { parseResponse, rawExchange } from '../support/raw-http.ts';
import { waitFor } from '../support/wait.ts';

const bodyTimeoutMs = 2_000;
const sendTimeoutMs = 2_000;
const blobBytes = randomBytes(32 * 1024 * 1024);
const blobDigest = `sha256:${createHash('sha256').update(blobBytes).digest('hex')}`;
const blobPath = `/v2/team/big/blobs/${blobDigest}`;

const cleanup = createCleanupStack();
let registry: DistributionRegistry;

beforeAll(async () => {
  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  await pushBlob(registry.url, 'team/big', { bytes: blobBytes, digest: blobDigest, size: blobBytes.length, mediaType: 'application/octet-stream' });
}, 60_000);
afterAll(() => cleanup.run());

/** The node's processes: the primary and its workers that are alive. */
function nodePids(outpost: OutpostNode): number[] {
  const workers = outpost.logs().filter((l) => l.msg === 'worker listening').map((l) => l.pid as number);
  return [outpost.pid!, ...workers].filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
}

function openDescriptors(outpost: OutpostNode): number {
  return nodePids(outpost).reduce((sum, pid) => sum + readdirSync(`/proc/${pid}/fd`).length, 0);
}

/** `Active connections` of /nginx_status, asked on a connection of its own (counted: 1 means no other). */
async function activeConnections(outpost: OutpostNode): Promise<number> {
  const res = await rawExchange('127.0.0.1', outpost.port, `GET /nginx_status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, { untilResponse: true });
  const match = /Active connections: (\d+)/.exec(res.body);
  if (!match) throw new Error(`no nginx_status answer: ${res.status} ${res.body}`);
  return Number(match[1]);
}

interface Snapshot {
  /** Active connections, the status probe's own included. */
  active: number;
  descriptors: number;
}

async function snapshot(outpost: OutpostNode): Promise<Snapshot> {
  return { active: await activeConnections(outpost), descriptors: openDescriptors(outpost) };
}

/**
 * Waits until the node is back to `baseline` connections and descriptors
 * (or fewer: the harness's own idle keep-alive connections may expire
 * meanwhile) and returns its descriptor count then.
 */
async function settled(outpost: OutpostNode, baseline: Snapshot, what: string): Promise<number> {
  let now: Snapshot = baseline;
  await waitFor(
    async () => {
      now = await snapshot(outpost);
      return now.active <= baseline.active && now.descriptors <= baseline.descriptors;
    },
    { what: `${what}: back to ${JSON.stringify(baseline)}`, timeoutMs: 15_000, intervalMs: 100 },
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; last ${JSON.stringify(now)}`);
  });
  return now.descriptors;
}

async function fetchBlob(outpost: OutpostNode): Promise<string> {
  const res = await request(`${outpost.url}${blobPath}`, { reset: true });
  expect(res.statusCode).toBe(200);
  const hash = createHash('sha256');
  for await (const chunk of res.body) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** A keep-alive HTTP/1.1 connection driven by hand. */
class RawConnection {
  private received = Buffer.alloc(0);
  private onChange: (() => void) | undefined;
  closed = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.onChange?.();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.onChange?.();
    });
  }

  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends a GET and resolves with the status, or undefined when the connection ends first. */
  get(path: string, timeoutMs = 5_000): Promise<number | undefined> {
    this.received = Buffer.alloc(0);
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      const finish = (status: number | undefined): void => {
        clearTimeout(timer);
        this.onChange = undefined;
        resolve(status);
      };
      this.onChange = () => {
        const response = parseResponse(this.received, false);
        if (response.complete) finish(response.status);
        else if (this.closed) finish(undefined);
      };
      if (this.closed) finish(undefined);
      else this.socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

describe('bounded connections', () => {
  let outpost: OutpostNode;

  beforeAll(async () => {
    outpost = await startOutpost({
      upstreamUrl: registry.url,
      workers: 2,
      env: { OUTPOST_HEADERS_TIMEOUT: '1s', OUTPOST_BODY_TIMEOUT: `${bodyTimeoutMs}ms`, OUTPOST_SEND_TIMEOUT: `${sendTimeoutMs}ms` },
    });
    cleanup.add(() => outpost.dispose());
    expect(await fetchBlob(outpost)).toBe(blobDigest); // cached: later GETs are served from disk
  }, 60_000);

  it('closes slow request bodies after the body timeout, and descriptors come back', async ({ annotate }) => {
    const before = await snapshot(outpost);
    const baseline = before.descriptors;
    const count = 30;
    const paths = ['/api/v0/cache/purge', '/v2/team/big/blobs/uploads/', '/health'];
    const slow = Array.from({ length: count }, (_, i) =>
      rawExchange('127.0.0.1', outpost.port, `POST ${paths[i % paths.length]} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n`, {
        drip: { bytes: 'x', everyMs: 1_000 }, // 1 byte/s
        timeoutMs: bodyTimeoutMs + 10_000,
      }),
    );
    let peak = 0;
    await waitFor(
      async () => {
        peak = await activeConnections(outpost);
        return peak >= before.active + count;
      },
      { what: 'the slow clients to be connected', timeoutMs: 5_000 },
    );
    const descriptorsHeld = openDescriptors(outpost);
    // The baseline may still count the status probe's own socket (and a keep-alive upstream one): allow those two.
    expect(descriptorsHeld).toBeGreaterThanOrEqual(baseline + count - 2);
    const results = await Promise.all(slow);
    for (const result of results) {
      expect(result.closedByServer).toBe(true);
      expect(result.ms).toBeLessThan(bodyTimeoutMs + 3_000);
      expect(result.status ?? 408).toBeLessThan(500);
    }
    const after = await settled(outpost, before, 'after the slow bodies');
    await annotate(
      `descriptors ${baseline} → ${descriptorsHeld} → ${after}; active connections peaked at ${peak}; ` +
        `closed after ${Math.min(...results.map((r) => r.ms))}–${Math.max(...results.map((r) => r.ms))} ms`,
    );
  });

  it('cuts clients that never read a big blob after the send timeout, while a client that reads gets all of it', async ({ annotate }) => {
    const before = await snapshot(outpost);
    const baseline = before.descriptors;
    const stuckCount = 20;
    const stuck = await Promise.all(
      Array.from({ length: stuckCount }, async () => {
        const socket = connect(outpost.port, '127.0.0.1');
        await new Promise((resolve) => socket.once('connect', resolve));
        socket.pause(); // never reads
        socket.on('error', () => undefined);
        socket.write(`GET ${blobPath} HTTP/1.1\r\nHost: x\r\n\r\n`);
        return socket;
      }),
    );
    const started = Date.now();
    // A reading client of the same blob, at the same time.
    expect(await fetchBlob(outpost)).toBe(blobDigest);
    let descriptorsHeld = 0;
    await waitFor(
      () => {
        descriptorsHeld = openDescriptors(outpost);
        return descriptorsHeld >= baseline + stuckCount;
      },
      { what: 'the stuck clients to be served', timeoutMs: 5_000 },
    );
    await waitFor(() => outpost.logs().filter((l) => l.msg === 'client took no bytes within the send timeout; connection closed').length === stuckCount, {
      what: 'every stuck client to be cut',
      timeoutMs: sendTimeoutMs + 10_000,
      intervalMs: 100,
    });
    const cutAfterMs = Date.now() - started;
    const after = await settled(outpost, before, 'after the stuck clients');
    // Each stuck client, reading now, gets what the kernel buffered and then the end: never the whole blob.
    const received = await Promise.all(
      stuck.map(
        (socket) =>
          new Promise<number>((resolve) => {
            let bytes = 0;
            socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
            socket.on('close', () => resolve(bytes));
            socket.resume();
          }),
      ),
    );
    for (const bytes of received) expect(bytes).toBeLessThan(blobBytes.length);
    await annotate(
      `descriptors ${baseline} → ${descriptorsHeld} → ${after}; all ${stuckCount} cut ${cutAfterMs} ms after they asked; ` +
        `each had received ${Math.round(Math.min(...received) / 1024)}–${Math.round(Math.max(...received) / 1024)} KiB of ${blobBytes.length / 1024} KiB`,
    );
  });
});

describe('the connection cap', () => {
  it('closes connections over the cap as they arrive while existing ones keep working', async ({ annotate }) => {
    const cap = 5;
    const outpost = await startOutpost({ upstreamUrl: registry.url, workers: 1, env: { OUTPOST_MAX_CONNECTIONS_PER_WORKER: String(cap) } });
    cleanup.add(() => outpost.dispose());
    const before = await snapshot(outpost);
    const baseline = before.descriptors;
    const held: RawConnection[] = [];
    // The harness's fetch may still hold idle keep-alive connections: they count against the cap.
    for (let i = 0; i < cap - (before.active - 1); i++) {
      // The status probe's own connection may take a moment to be released: retry a connection refused for that.
      let status: number | undefined;
      for (let attempt = 0; attempt < 20 && status === undefined; attempt++) {
        const connection = await RawConnection.open(outpost.port);
        status = await connection.get('/v2/');
        if (status === 200) held.push(connection);
        else await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(status).toBe(200);
    }
    const refused = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const connection = await RawConnection.open(outpost.port).catch(() => undefined);
        return connection ? connection.get('/v2/', 3_000) : undefined;
      }),
    );
    expect(refused).toEqual([undefined, undefined, undefined, undefined, undefined]);
    // The connections already held still work.
    for (const connection of held) expect(await connection.get('/v2/')).toBe(200);
    expect(outpost.logs().some((l) => l.msg === 'connection cap reached; closing new connections')).toBe(true);
    // One leaves, one more gets in.
    held.pop()!.close();
    let replacement: number | undefined;
    await waitFor(
      async () => {
        const connection = await RawConnection.open(outpost.port);
        replacement = await connection.get('/v2/', 2_000);
        if (replacement === 200) held.push(connection);
        return replacement === 200;
      },
      { what: 'a new connection to be accepted once one closed', timeoutMs: 5_000, intervalMs: 100 },
    );
    for (const connection of held) connection.close();
    const after = await settled(outpost, before, 'after the capped connections');
    await annotate(`cap ${cap}: ${cap} held, 5 more closed unanswered, held ones still served; descriptors ${baseline} → ${after}`);
  });
});
