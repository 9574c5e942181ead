/**
 * A real redis-server (Debian package redis-server) on a free 127.0.0.1 port,
 * without persistence, its working dir in a temp dir. Stopped and restarted
 * by PID on the same port.
 */
import { connect } from 'node:net';
import { freePort } from './ports.ts';
import { requireBinary, startProcess, type ProcessHandle } from './process.ts';
import { makeTempDir, removeTempDir } from './temp.ts';
import { waitFor } from './wait.ts';

export interface RedisServer {
  /** `redis://127.0.0.1:PORT` (what OUTPOST_REDIS_URL takes). */
  readonly url: string;
  readonly port: number;
  readonly pid: number | undefined;
  isRunning(): boolean;
  /** (Re)starts on the same port; resolves when it answers PING. */
  start(): Promise<void>;
  /** SIGTERM by PID (SIGKILL after a bound); resolves when the process has exited. */
  stop(): Promise<void>;
  /** Sends one inline command and returns the raw reply (e.g. `+PONG\r\n`). */
  command(line: string): Promise<string>;
  dispose(): Promise<void>;
  output(): string;
}

/** One inline command over a fresh connection; rejects on error or after `timeoutMs`. */
function inlineCommand(port: number, line: string, timeoutMs = 1_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (err?: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(reply);
    };
    const timer = setTimeout(() => done(new Error(`redis did not answer "${line}" within ${timeoutMs} ms`)), timeoutMs);
    socket.once('error', done);
    socket.once('connect', () => socket.write(`${line}\r\n`));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('utf8');
      if (reply.endsWith('\r\n')) done();
    });
  });
}

export async function startRedis(): Promise<RedisServer> {
  const binary = requireBinary('redis-server');
  const port = await freePort();
  const dir = await makeTempDir('redis');
  let proc: ProcessHandle | undefined;
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
  const server: RedisServer = {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return proc?.isRunning() ? proc.pid : undefined;
    },
    isRunning: () => proc?.isRunning() ?? false,
    output: () => proc?.output() ?? '',
    command: (line) => inlineCommand(port, line),
    async start() {
      if (proc?.isRunning()) return;
      proc = await startProcess(binary, args, { name: 'redis-server' });
      const started = proc;
      await waitFor(
        async () => {
          if (!started.isRunning()) throw new Error(`redis-server exited: ${started.output().slice(-2000)}`);
          return (await inlineCommand(port, 'PING', 500)).startsWith('+PONG');
        },
        { what: `redis-server on port ${port} to answer PING`, timeoutMs: 10_000, intervalMs: 50 },
      );
    },
    async stop() {
      await proc?.stop({ graceMs: 5_000 });
    },
    async dispose() {
      await server.stop();
      await removeTempDir(dir);
    },
  };
  await server.start();
  return server;
}
