/**
 * A real single-member etcd (Debian package etcd-server) on free 127.0.0.1
 * client and peer ports with its data in a temp dir. Stopped and restarted
 * by PID on the same ports and data dir, so leases and keys survive a
 * restart the way they do in production.
 */
import { freePort } from './ports.ts';
import { requireBinary, startProcess, type ProcessHandle } from './process.ts';
import { makeTempDir, removeTempDir } from './temp.ts';
import { waitFor } from './wait.ts';

export interface EtcdServer {
  /** `http://127.0.0.1:PORT`, the client URL (what OUTPOST_ETCD_ENDPOINTS takes). */
  readonly url: string;
  readonly clientPort: number;
  readonly dataDir: string;
  readonly pid: number | undefined;
  isRunning(): boolean;
  /** (Re)starts on the same ports and data dir; resolves when `/health` says healthy. */
  start(): Promise<void>;
  /** SIGTERM by PID (SIGKILL after a bound); resolves when the process has exited. Data is kept. */
  stop(): Promise<void>;
  /** SIGKILL by PID: etcd dies without a goodbye, as on a host crash. */
  kill(): Promise<void>;
  /** stop() and remove the data dir. */
  dispose(): Promise<void>;
  /** Everything the current (or last) process printed. */
  output(): string;
}

export interface StartEtcdOptions {
  /** Bound for "/health answers healthy" after a start. Default 20 000 ms. */
  startTimeoutMs?: number;
}

export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdServer> {
  const binary = requireBinary('etcd');
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const dataDir = await makeTempDir('etcd');
  const url = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  let proc: ProcessHandle | undefined;
  const args = [
    '--name', 'outpost-test',
    '--data-dir', `${dataDir}/data`,
    '--listen-client-urls', url,
    '--advertise-client-urls', url,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `outpost-test=${peerUrl}`,
    '--logger', 'zap',
    '--log-level', 'warn',
  ];

  const server: EtcdServer = {
    url,
    clientPort,
    dataDir,
    get pid() {
      return proc?.isRunning() ? proc.pid : undefined;
    },
    isRunning: () => proc?.isRunning() ?? false,
    output: () => proc?.output() ?? '',
    async start() {
      if (proc?.isRunning()) return;
      proc = await startProcess(binary, args, { name: 'etcd' });
      const started = proc;
      await waitFor(
        async () => {
          if (!started.isRunning()) throw new Error(`etcd exited: ${started.output().slice(-2000)}`);
          const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) }).catch(() => undefined);
          if (res?.status !== 200) return false;
          return ((await res.json()) as { health?: string }).health === 'true';
        },
        { what: `etcd on ${url} to report healthy`, timeoutMs: options.startTimeoutMs ?? 20_000, intervalMs: 50 },
      );
    },
    async stop() {
      await proc?.stop({ graceMs: 5_000 });
    },
    async kill() {
      await proc?.stop({ signal: 'SIGKILL' });
    },
    async dispose() {
      await server.stop();
      await removeTempDir(dataDir);
    },
  };
  await server.start();
  return server;
}
