/** Starts a real Outpost node (`node --import tsx src/main.ts serve`, node:cluster workers) on a free loopback port. */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.ts';
import { startProcess, type ProcessHandle } from './process.ts';
import { makeTempDir, removeTempDir } from './temp.ts';
import { waitFor } from './wait.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface OutpostNode {
  url: string;
  host: string;
  port: number;
  cacheDir: string;
  readonly pid: number | undefined;
  output(): string;
  /** Resolves with the exit of the current process. */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** JSON log lines of every process of the node. */
  logs(): Record<string, unknown>[];
  start(): Promise<void>;
  stop(): Promise<void>;
  /** kill -9 of the whole node, primary and workers at once (no clean shutdown); resolves when all are gone. */
  crash(): Promise<void>;
  dispose(): Promise<void>;
}

/** `pid`'s state letter from /proc (undefined when there is no such process). */
function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/** Direct children of `pid`, from /proc. */
export function childPids(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

export interface StartOutpostOptions {
  upstreamUrl: string;
  env?: Record<string, string>;
  workers?: number;
  cacheDir?: string;
  /** Fixed port (e.g. to put it in OUTPOST_ADVERTISE_URL); default a free one. */
  port?: number;
  /** Serve HTTPS with this certificate and key (OUTPOST_TLS_CERT / OUTPOST_TLS_KEY), checked against `ca` (PEM file). */
  tls?: { cert: string; key: string; ca: string };
  /** The tree to run `src/main.ts` from (default this repository; the bench's --compare runs another checkout). */
  root?: string;
}

export async function startOutpost(options: StartOutpostOptions): Promise<OutpostNode> {
  const port = options.port ?? (await freePort());
  const ownDir = options.cacheDir === undefined;
  const cacheDir = options.cacheDir ?? (await makeTempDir('outpost-cache'));
  let proc: ProcessHandle | undefined;
  let previousOutput = '';
  const env = {
    OUTPOST_HOST: '127.0.0.1',
    OUTPOST_PORT: String(port),
    OUTPOST_UPSTREAM_URL: options.upstreamUrl,
    OUTPOST_CACHE_DIR: cacheDir,
    OUTPOST_WORKERS: String(options.workers ?? 2),
    OUTPOST_DRAIN_SECONDS: '0',
    OUTPOST_SHUTDOWN_TIMEOUT: '5s',
    OUTPOST_LOG_LEVEL: 'info',
    OUTPOST_UPSTREAM_RETRIES: '0',
    OUTPOST_UPSTREAM_CONNECT_TIMEOUT: '2s',
    OUTPOST_UPSTREAM_HEADERS_TIMEOUT: '5s',
    OUTPOST_UPSTREAM_BODY_TIMEOUT: '5s',
    ...(options.tls === undefined ? {} : { OUTPOST_TLS_CERT: options.tls.cert, OUTPOST_TLS_KEY: options.tls.key }),
    ...options.env,
  };
  const url = `${options.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`;
  const dispatcher = options.tls === undefined ? undefined : new Agent({ connect: { ca: readFileSync(options.tls.ca) } });
  const node: OutpostNode = {
    url,
    host: `127.0.0.1:${port}`,
    port,
    cacheDir,
    get pid() {
      return proc?.pid;
    },
    output: () => previousOutput + (proc?.output() ?? ''),
    exited: () => proc!.exited,
    logs() {
      return node
        .output()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => {
          try {
            return JSON.parse(line) as Record<string, unknown>;
          } catch {
            return {};
          }
        });
    },
    async start() {
      if (proc?.isRunning()) return;
      if (proc) previousOutput += proc.output();
      proc = await startProcess(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve'], { cwd: options.root ?? repoRoot, env, name: 'outpost' });
      const started = proc;
      await waitFor(
        async () => {
          if (!started.isRunning()) {
            const exit = started.exitInfo();
            throw new Error(`outpost exited (code ${exit?.code ?? '?'}, signal ${exit?.signal ?? 'none'}): ${started.output().slice(-2000)}`);
          }
          const res = await undiciFetch(`${url}/health`, dispatcher === undefined ? {} : { dispatcher }).catch(() => undefined);
          if (res?.status !== 200) return false;
          const body = (await res.json()) as { checks?: { workers?: { status?: string } } };
          return body.checks?.workers?.status === 'ok'; // every worker listening
        
        },
        { what: 'outpost /health to answer 200 with all workers up', timeoutMs: 30_000, intervalMs: 100 },
      );
    },
    async stop() {
      await proc?.stop({ graceMs: 10_000 });
    },
    async crash() {
      if (!proc?.isRunning()) return;
      const primary = proc.pid;
      const pids = [primary, ...childPids(primary)];
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await proc.exited;
      // A zombie (Z) is dead: it only waits to be reaped by whoever inherited it.
      await waitFor(() => pids.every((pid) => procState(pid) === undefined || procState(pid) === 'Z'), {
        what: 'every process of the killed node to be gone',
        timeoutMs: 10_000,
      });
    },
    async dispose() {
      await node.stop();
      await dispatcher?.close();
      if (ownDir) await removeTempDir(cacheDir);
    },
  };
  await node.start();
  return node;
}
