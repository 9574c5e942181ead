/**
 * A simulated WAN link in front of the primary: a TCP relay that adds a
 * one-way delay in each direction and caps each direction's bandwidth,
 * shared by every connection (one link, as between an office and a data
 * centre), with a connect delay of one round trip (the TCP handshake).
 *
 * Flow control: a connection whose bytes are queued on the link beyond
 * `windowBytes` stops reading from its source until the queue drains, like
 * a TCP window, so the relay never buffers a whole blob.
 *
 * Counts the bytes it delivers in each direction (what the link carried):
 * with `--stats-port`, `GET /` on that port answers them as JSON
 * (`{"down":N,"up":N,"connections":N,"open":N}`; down = towards the clients).
 *
 * Runs as its own process so that the bench's load generation does not
 * delay its timers:
 *
 *   node --import tsx bench/wan-relay.ts --port 7000 --target 127.0.0.1:5000 --latency-ms 20 --mbit 200 [--stats-port 7001]
 */
import { createServer as createHttpServer } from 'node:http';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

export interface WanLinkOptions {
  /** Added one-way delay, each direction. */
  latencyMs: number;
  /** Bandwidth of each direction, megabits per second. */
  mbit: number;
  /** Bytes a connection may have queued on the link before it stops reading. Default: 4 × bandwidth-delay product, at least 1 MiB. */
  windowBytes?: number;
}

/** Bytes delivered across the link so far (down: primary → clients; up: clients → primary). */
export interface WanLinkCounters {
  down: number;
  up: number;
  /** Connections accepted, and those still open. */
  connections: number;
  open: number;
}

/** One direction of the link: serialises chunks at the line rate, then delays them. */
class LinkDirection {
  private freeAt = 0;
  /** Bytes handed to the far end. */
  delivered = 0;
  private readonly bytesPerMs: number;
  constructor(
    mbit: number,
    private readonly latencyMs: number,
  ) {
    this.bytesPerMs = (mbit * 1e6) / 8 / 1000;
  }
  /** When a chunk of `bytes` handed over now arrives at the far end. */
  arrival(bytes: number): number {
    const start = Math.max(performance.now(), this.freeAt);
    this.freeAt = start + bytes / this.bytesPerMs;
    return this.freeAt + this.latencyMs;
  }
}

/** Moves bytes from `src` to `dst` across one link direction, in order. */
function pipeAcross(src: Socket, dst: Socket, link: LinkDirection, windowBytes: number): void {
  const queue: Array<{ chunk: Buffer; at: number }> = [];
  let queued = 0;
  let timer: NodeJS.Timeout | undefined;
  let ended = false;
  let waitingDrain = false;

  const deliver = (): void => {
    timer = undefined;
    if (waitingDrain || dst.destroyed) return;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.at <= now + 0.5) {
      const { chunk } = queue.shift()!;
      queued -= chunk.length;
      link.delivered += chunk.length;
      if (!dst.write(chunk)) {
        waitingDrain = true;
        dst.once('drain', () => {
          waitingDrain = false;
          deliver();
        });
        break;
      }
    }
    if (queued < windowBytes / 2 && src.isPaused()) src.resume();
    if (queue.length === 0) {
      if (ended) dst.end();
      return;
    }
    if (!waitingDrain) timer = setTimeout(deliver, Math.max(0, queue[0]!.at - performance.now()));
  };

  src.on('data', (chunk: Buffer) => {
    queue.push({ chunk, at: link.arrival(chunk.length) });
    queued += chunk.length;
    if (queued > windowBytes) src.pause();
    if (timer === undefined && !waitingDrain) timer = setTimeout(deliver, Math.max(0, queue[0]!.at - performance.now()));
  });
  src.on('end', () => {
    ended = true;
    if (queue.length === 0 && timer === undefined && !waitingDrain) dst.end();
  });
  src.on('close', () => {
    if (timer !== undefined && queue.length === 0) clearTimeout(timer);
  });
}

export interface WanRelay {
  server: Server;
  counters(): WanLinkCounters;
}

export function createWanRelay(target: { host: string; port: number }, options: WanLinkOptions): WanRelay {
  const up = new LinkDirection(options.mbit, options.latencyMs);
  const down = new LinkDirection(options.mbit, options.latencyMs);
  const bdp = ((options.mbit * 1e6) / 8) * (options.latencyMs / 1000) * 2;
  const windowBytes = options.windowBytes ?? Math.max(1024 * 1024, Math.round(bdp * 4));
  let connections = 0;
  let open = 0;
  const server = createServer({ pauseOnConnect: true }, (client) => {
    connections += 1;
    open += 1;
    client.once('close', () => {
      open -= 1;
    });
    client.setNoDelay(true);
    // The TCP handshake costs a round trip before the first request byte can leave.
    setTimeout(() => {
      const server = connect({ host: target.host, port: target.port });
      server.setNoDelay(true);
      const fail = (): void => {
        client.destroy();
        server.destroy();
      };
      client.on('error', fail);
      server.on('error', fail);
      // A client that is gone needs nothing more from upstream. An upstream that closes still has
      // bytes on the link: the down direction ends the client once they are delivered.
      client.on('close', () => server.destroy());
      server.once('connect', () => {
        pipeAcross(client, server, up, windowBytes);
        pipeAcross(server, client, down, windowBytes);
        client.resume();
      });
    }, options.latencyMs * 2);
  });
  return { server, counters: () => ({ down: down.delivered, up: up.delivered, connections, open }) };
}

interface RelayArgs {
  port: number;
  target: { host: string; port: number };
  latencyMs: number;
  mbit: number;
  statsPort: number | undefined;
}

function parseArgs(argv: readonly string[]): RelayArgs {
  const find = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const get = (name: string): string => {
    const value = find(name);
    if (value === undefined) throw new Error(`wan-relay: --${name} is required`);
    return value;
  };
  const [host, port] = get('target').split(':');
  const statsPort = find('stats-port');
  return {
    port: Number(get('port')),
    target: { host: host!, port: Number(port) },
    latencyMs: Number(get('latency-ms')),
    mbit: Number(get('mbit')),
    statsPort: statsPort === undefined ? undefined : Number(statsPort),
  };
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = parseArgs(process.argv.slice(2));
  const relay = createWanRelay(args.target, { latencyMs: args.latencyMs, mbit: args.mbit });
  const listening = new Promise<void>((resolve) => relay.server.listen(args.port, '127.0.0.1', resolve));
  const statsListening =
    args.statsPort === undefined
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          const stats = createHttpServer((_req, res) => {
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(JSON.stringify(relay.counters()));
          });
          stats.listen(args.statsPort, '127.0.0.1', resolve);
        });
  void Promise.all([listening, statsListening]).then(() => {
    const stats = args.statsPort === undefined ? '' : `, stats on 127.0.0.1:${args.statsPort}`;
    process.stdout.write(`wan-relay listening on 127.0.0.1:${args.port} → ${args.target.host}:${args.target.port} (+${args.latencyMs} ms each way, ${args.mbit} Mbit/s${stats})\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
}
