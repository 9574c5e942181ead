/**
 * A real HAProxy (Debian package haproxy, 2.6.x) for integration tests:
 * started in the foreground (`-db`) with its pidfile and admin stats socket in
 * a temp dir, stopped by PID.
 *
 * {@link renderHaproxyConfig} turns a deployment config (deploy/haproxy/
 * haproxy.cfg) into one that runs on a test machine: its `global` section is
 * replaced (no chroot, user or system paths), every `bind` of a frontend is
 * moved to a loopback address, and a backend's `server` lines are replaced by
 * the test's servers. `defaults`, timeouts, retries and health checks stay as
 * deployed, so the test exercises the shipped balancing behaviour.
 */
import { connect } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from './ports.ts';
import { requireBinary, runProcess, startProcess, type ProcessHandle } from './process.ts';
import { makeTempDir, removeTempDir } from './temp.ts';
import { waitFor } from './wait.ts';

export interface HaproxySection {
  /** `global`, `defaults`, `frontend`, `backend`, `listen`, `resolvers`, ... */
  keyword: string;
  /** The section's name (`frontend registry` → `registry`); undefined for `global`. */
  name: string | undefined;
  /** The header line as written. */
  header: string;
  /** Every line after the header up to the next section (comments included). */
  lines: string[];
}

/** Splits an HAProxy config into sections; lines before the first section (comments) are dropped. */
export function parseHaproxySections(text: string): HaproxySection[] {
  const sections: HaproxySection[] = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    const isHeader = trimmed !== '' && !trimmed.startsWith('#') && !/^\s/.test(line);
    if (isHeader) {
      const [keyword, name] = trimmed.split(/\s+/);
      sections.push({ keyword: keyword!, name, header: line, lines: [] });
    } else if (sections.length > 0) {
      sections[sections.length - 1]!.lines.push(line);
    }
  }
  return sections;
}

export interface TestServer {
  name: string;
  /** `127.0.0.1:PORT` */
  address: string;
  /** Extra server keywords (`inter 200ms fall 1 rise 1`); `check` is always added. */
  params?: string;
}

export interface RenderHaproxyOptions {
  /** The whole replacement `global` section body, one directive per entry. */
  global: readonly string[];
  /** New `bind` address per frontend/listen section name; a section missing here is dropped. */
  binds: Readonly<Record<string, string>>;
  /** Replacement `server` lines per backend name. */
  servers: Readonly<Record<string, readonly TestServer[]>>;
}

export function renderHaproxyConfig(text: string, options: RenderHaproxyOptions): string {
  const out: string[] = [];
  for (const section of parseHaproxySections(text)) {
    if (section.keyword === 'global') {
      out.push('global', ...options.global.map((d) => `    ${d}`), '');
      continue;
    }
    if (section.keyword === 'frontend' || section.keyword === 'listen') {
      const bind = section.name === undefined ? undefined : options.binds[section.name];
      if (bind === undefined) continue;
      const body = section.lines.filter((l) => !/^\s*bind\s/.test(l));
      out.push(section.header, `    bind ${bind}`, ...body);
      continue;
    }
    if (section.keyword === 'backend' && section.name !== undefined && options.servers[section.name] !== undefined) {
      const body = section.lines.filter((l) => !/^\s*server\s/.test(l));
      while (body.length > 0 && body[body.length - 1]!.trim() === '') body.pop();
      const servers = options.servers[section.name]!.map((s) => `    server ${s.name} ${s.address} check${s.params ? ` ${s.params}` : ''}`);
      out.push(section.header, ...body, ...servers, '');
      continue;
    }
    out.push(section.header, ...section.lines);
  }
  return `${out.join('\n').trimEnd()}\n`;
}

/** Result of `haproxy -c -f FILE`. */
export interface HaproxyCheck {
  ok: boolean;
  output: string;
  /** `[WARNING]` lines. */
  warnings: string[];
}

export async function checkHaproxyConfig(file: string): Promise<HaproxyCheck> {
  const haproxy = requireBinary('haproxy');
  const result = await runProcess(haproxy, ['-c', '-f', file], { timeoutMs: 30_000, name: 'haproxy -c' });
  return {
    ok: result.exitCode === 0 && !result.timedOut,
    output: result.output,
    warnings: result.output.split('\n').filter((l) => l.includes('[WARNING]')),
  };
}

/** One row of `show stat` (CSV columns by name: pxname, svname, status, check_status, hrsp_2xx, ...). */
export type HaproxyStatRow = Record<string, string>;

export interface Haproxy {
  readonly pid: number;
  /** Path of the admin stats socket. */
  readonly socket: string;
  /** The config HAProxy runs. */
  readonly config: string;
  output(): string;
  /** Sends one command on the stats socket and returns the answer. */
  command(line: string): Promise<string>;
  showStat(): Promise<HaproxyStatRow[]>;
  /** The `show stat` row of one server. */
  server(backend: string, name: string): Promise<HaproxyStatRow>;
  stop(): Promise<void>;
  dispose(): Promise<void>;
}

export interface StartHaproxyOptions {
  /** Makes the config text from the temp dir's stats socket and pidfile paths. */
  config: (paths: { socket: string; pidfile: string }) => string;
  /** Addresses that must accept connections before the start counts as done (the frontends). */
  waitForListeners?: ReadonlyArray<{ host: string; port: number }>;
}

/** Sends one command to an HAProxy stats socket (non-interactive: HAProxy answers and closes). */
export function haproxySocketCommand(socket: string, line: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const conn = connect(socket);
    let answer = '';
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`HAProxy stats socket ${socket}: no answer to "${line}" within ${timeoutMs} ms`));
    }, timeoutMs);
    conn.setEncoding('utf8');
    conn.on('connect', () => conn.write(`${line}\n`));
    conn.on('data', (chunk: string) => {
      answer += chunk;
    });
    conn.on('close', () => {
      clearTimeout(timer);
      resolve(answer);
    });
    conn.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export function parseShowStat(csv: string): HaproxyStatRow[] {
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const header = lines.shift();
  if (header === undefined || !header.startsWith('# ')) throw new Error(`not a "show stat" answer: ${csv.slice(0, 200)}`);
  const columns = header.slice(2).split(',');
  return lines.map((line) => {
    const values = line.split(',');
    return Object.fromEntries(columns.map((c, i) => [c, values[i] ?? '']));
  });
}

export async function startHaproxy(options: StartHaproxyOptions): Promise<Haproxy> {
  const binary = requireBinary('haproxy');
  const dir = await makeTempDir('haproxy');
  const socket = join(dir, 'admin.sock');
  const pidfile = join(dir, 'haproxy.pid');
  const configPath = join(dir, 'haproxy.cfg');
  const config = options.config({ socket, pidfile });
  await writeFile(configPath, config);

  let proc: ProcessHandle;
  try {
    proc = await startProcess(binary, ['-db', '-f', configPath], { cwd: dir, name: 'haproxy' });
  } catch (err) {
    await removeTempDir(dir);
    throw err;
  }
  const command = (line: string): Promise<string> => haproxySocketCommand(socket, line);
  try {
    await waitFor(
      async () => {
        if (!proc.isRunning()) throw new Error(`haproxy exited: ${proc.output().slice(-2000)}`);
        if (!(await command('show info')).includes('Name: HAProxy')) return false;
        for (const { host, port } of options.waitForListeners ?? []) {
          await new Promise<void>((resolve, reject) => {
            const c = connect({ host, port }, () => {
              c.destroy();
              resolve();
            });
            c.on('error', reject);
          });
        }
        return true;
      },
      { what: 'haproxy to answer on its stats socket and listen', timeoutMs: 15_000, intervalMs: 50 },
    );
  } catch (err) {
    await proc.stop({ graceMs: 2_000 });
    await removeTempDir(dir);
    throw new Error(`${(err as Error).message}\n--- haproxy output ---\n${proc.output()}\n--- config ---\n${config}`, { cause: err });
  }

  const haproxy: Haproxy = {
    pid: proc.pid,
    socket,
    config,
    output: () => proc.output(),
    command,
    async showStat() {
      return parseShowStat(await command('show stat'));
    },
    async server(backend, name) {
      const row = (await haproxy.showStat()).find((r) => r['pxname'] === backend && r['svname'] === name);
      if (row === undefined) throw new Error(`HAProxy has no server ${backend}/${name}`);
      return row;
    },
    async stop() {
      // SIGUSR1 would be a soft stop; SIGTERM stops at once, which is what a test wants.
      await proc.stop({ graceMs: 5_000 });
    },
    async dispose() {
      await haproxy.stop();
      await removeTempDir(dir);
    },
  };
  return haproxy;
}

/** A free loopback port and its `bind` address. */
export async function loopbackBind(): Promise<{ host: string; port: number; bind: string }> {
  const port = await freePort();
  return { host: '127.0.0.1', port, bind: `127.0.0.1:${port}` };
}
