import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { writeHtpasswd, type Credentials } from './htpasswd.ts';
import { freePort } from './ports.ts';
import { requireBinary, startProcess, type ProcessHandle } from './process.ts';
import { matchesFilter, pathOnly, requestKind, type RequestFilter, type RequestKind } from './request-kind.ts';
import { makeTempDir, removeTempDir } from './temp.ts';
import { waitFor } from './wait.ts';

/**
 * A real CNCF distribution registry (`docker-registry serve`, Debian package
 * docker-registry, 2.8.x) on 127.0.0.1:PORT with its storage in a temp dir.
 *
 * Request accounting: distribution 2.8 prints one Apache "combined" access-log
 * line per handled request on **stdout** (gorilla CombinedLoggingHandler,
 * enabled by `log.accesslog.disabled: false`), e.g.
 *
 *   127.0.0.1 - - [22/Nov/2026:11:05:05 +0000] "GET /v2/ HTTP/1.1" 401 87 "" "curl/7.88.1"
 *
 * Its JSON application log on **stderr** is not a complete request log: it
 * writes `"msg":"response completed"` only for 2xx/3xx, `"response completed
 * with error"` only for errors raised by a route handler, and nothing of the
 * kind for a 401 challenge. So {@link DistributionRegistry.requests} is built
 * from the access-log lines; the JSON lines are kept in `jsonLog()`.
 *
 * The line is written after the response has been handed to the socket, so a
 * client can see the response a moment before its line appears: call
 * `flushLog()` before asserting exact counts.
 */

export type DistributionAuth = 'none' | 'htpasswd' | 'token';

export interface DistributionTokenAuth {
  realm: string;
  service: string;
  issuer: string;
  rootCertBundlePath: string;
}

export interface StartDistributionOptions {
  /** Default `'none'`. `'htpasswd'` needs `users`; `'token'` needs `token` (a started TokenIssuer fits). */
  auth?: DistributionAuth;
  users?: readonly Credentials[];
  token?: DistributionTokenAuth;
  /** Run as a pull-through cache of this registry (`proxy.remoteurl`). Pushes are then refused. */
  proxyRemoteUrl?: string;
  proxyCredentials?: Credentials;
  /** Fixed port; default a free one. */
  port?: number;
  /** Storage root; default a temp dir removed by `dispose()`. A given dir is never removed. */
  dataDir?: string;
  /** Bound for "GET /v2/ answers" after start. Default 20 000 ms. */
  startTimeoutMs?: number;
}

export interface RequestLogEntry {
  method: string;
  /** Request URI as received, query included. */
  uri: string;
  /** `uri` without the query. */
  path: string;
  kind: RequestKind;
  status: number;
  /** Response body bytes written (for HEAD: the Content-Length announced). */
  bytes: number | undefined;
  userAgent: string;
  remoteAddr: string;
  /** Access-log timestamp as printed ("22/Nov/2026:11:05:05 +0000"). */
  time: string;
}

export interface DistributionRegistry {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** `127.0.0.1:PORT` (what goes into image references). */
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly configPath: string;
  /** Everything every run of this registry printed (stdout and stderr), appended. */
  readonly logPath: string;
  /** PID of the running registry process; undefined while stopped. */
  readonly pid: number | undefined;
  isRunning(): boolean;
  /** (Re)starts on the same port and data dir; resolves when GET /v2/ answers 200 or 401. */
  start(): Promise<void>;
  /** SIGTERM by PID (SIGKILL after a bound); resolves when the process has exited. Data is kept. */
  stop(): Promise<void>;
  /** stop() and remove the temp dirs this registry created. */
  dispose(): Promise<void>;
  /** Every request in the access log since creation (across restarts) or the last `clearRequests()`. */
  requests(filter?: RequestFilter): RequestLogEntry[];
  countRequests(filter?: RequestFilter): number;
  clearRequests(): void;
  /** Makes a marker request and waits until it is logged, so earlier requests are logged too. */
  flushLog(timeoutMs?: number): Promise<void>;
  /** The JSON application-log lines (stderr) since creation. */
  jsonLog(): Array<Record<string, unknown>>;
  /** Everything the current (or last) process printed. */
  output(): string;
}

const SYNC_QUERY = 'outpost-harness-sync';

// host ident user [time] "METHOD URI PROTO" status bytes "referer" "user-agent"
const ACCESS_LINE =
  /^(\S+) \S+ \S+ \[([^\]]+)\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-)(?: "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)")?\s*$/;

/** Parses one access-log line; undefined for anything else. */
export function parseAccessLogLine(line: string): RequestLogEntry | undefined {
  const m = ACCESS_LINE.exec(line.trim());
  if (m === null) return undefined;
  const uri = m[4]!;
  const path = pathOnly(uri);
  return {
    remoteAddr: m[1]!,
    time: m[2]!,
    method: m[3]!,
    uri,
    path,
    kind: requestKind(path),
    status: Number(m[5]),
    bytes: m[6] === '-' ? undefined : Number(m[6]),
    userAgent: (m[8] ?? '').replace(/\\(.)/g, '$1'),
  };
}

export async function startDistribution(options: StartDistributionOptions = {}): Promise<DistributionRegistry> {
  const binary = requireBinary('docker-registry');
  const auth = options.auth ?? 'none';
  if (auth === 'htpasswd' && (options.users === undefined || options.users.length === 0)) {
    throw new Error("startDistribution: auth 'htpasswd' needs at least one user");
  }
  if (auth === 'token' && options.token === undefined) {
    throw new Error("startDistribution: auth 'token' needs the token options (e.g. a started TokenIssuer)");
  }

  const workDir = await makeTempDir('registry');
  const dataDir = options.dataDir ?? join(workDir, 'data');
  const configPath = join(workDir, 'config.yml');
  const htpasswdPath = join(workDir, 'htpasswd');
  const logPath = join(workDir, 'registry.log');
  if (auth === 'htpasswd') await writeHtpasswd(htpasswdPath, options.users!);
  const secret = randomBytes(16).toString('hex');

  const writeConfig = async (port: number): Promise<void> => {
    const config: Record<string, unknown> = {
      version: 0.1,
      log: { level: 'info', formatter: 'json', accesslog: { disabled: false } },
      storage: {
        filesystem: { rootdirectory: dataDir },
        delete: { enabled: true },
        maintenance: { uploadpurging: { enabled: false } },
      },
      // A fixed secret keeps upload URLs valid across restarts.
      http: { addr: `127.0.0.1:${port}`, secret },
    };
    if (auth === 'htpasswd') config['auth'] = { htpasswd: { realm: 'outpost-test', path: htpasswdPath } };
    if (auth === 'token') {
      const t = options.token!;
      config['auth'] = {
        token: { realm: t.realm, service: t.service, issuer: t.issuer, rootcertbundle: t.rootCertBundlePath },
      };
    }
    if (options.proxyRemoteUrl !== undefined) {
      config['proxy'] = {
        remoteurl: options.proxyRemoteUrl,
        ...(options.proxyCredentials === undefined
          ? {}
          : { username: options.proxyCredentials.username, password: options.proxyCredentials.password }),
      };
    }
    await writeFile(configPath, stringify(config));
  };

  let port = options.port ?? (await freePort());
  let proc: ProcessHandle | undefined;
  let entries: RequestLogEntry[] = [];
  const json: Array<Record<string, unknown>> = [];
  let syncCounter = 0;

  const launch = async (): Promise<void> => {
    await writeConfig(port);
    // Distribution overrides its config from REGISTRY_* variables: do not inherit any.
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REGISTRY_')) env[k] = v;
    const p = await startProcess(binary, ['serve', configPath], {
      env,
      inheritEnv: false,
      cwd: workDir,
      logFile: logPath,
      name: `docker-registry:${port}`,
    });
    proc = p;
    const partial = { stdout: '', stderr: '' };
    p.onOutput((text, stream) => {
      const lines = (partial[stream] + text).split('\n');
      partial[stream] = lines.pop()!;
      for (const line of lines) {
        if (stream === 'stdout') {
          const entry = parseAccessLogLine(line);
          if (entry !== undefined) entries.push(entry);
        } else if (line.startsWith('{')) {
          try {
            json.push(JSON.parse(line) as Record<string, unknown>);
          } catch {
            // not a JSON line
          }
        }
      }
    });

    const abort = new AbortController();
    const died = p.exited.then((info) => {
      abort.abort();
      return info;
    });
    try {
      await waitFor(
        async () => {
          const res = await fetch(`http://127.0.0.1:${port}/v2/?${SYNC_QUERY}=start`, { signal: AbortSignal.timeout(2_000) });
          await res.arrayBuffer();
          return res.status === 200 || res.status === 401;
        },
        { what: `docker-registry on 127.0.0.1:${port} to answer GET /v2/`, timeoutMs: options.startTimeoutMs ?? 20_000, intervalMs: 50, signal: abort.signal },
      );
    } catch (err) {
      if (p.isRunning()) await p.stop();
      const info = await died;
      throw new Error(
        `docker-registry did not become ready on 127.0.0.1:${port} (exit ${info.code ?? info.signal}): ${
          err instanceof Error ? err.message : String(err)
        }\n--- registry output ---\n${p.output()}`,
        { cause: err },
      );
    }
  };

  const start = async (): Promise<void> => {
    if (proc?.isRunning()) return;
    await launch();
  };

  // First start: a free port picked by us can (rarely) be taken before the registry binds it.
  for (let attempt = 1; ; attempt++) {
    try {
      await launch();
      break;
    } catch (err) {
      const taken = proc?.output().includes('address already in use') ?? false;
      if (!taken || options.port !== undefined || attempt >= 3) {
        await removeTempDir(workDir);
        throw err;
      }
      port = await freePort();
    }
  }

  const visible = (): RequestLogEntry[] => entries.filter((e) => !e.uri.includes(SYNC_QUERY));

  const registry: DistributionRegistry = {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    dataDir,
    configPath,
    logPath,
    get pid() {
      return proc?.isRunning() ? proc.pid : undefined;
    },
    isRunning: () => proc?.isRunning() ?? false,
    start,
    async stop() {
      if (proc?.isRunning()) await proc.stop();
    },
    async dispose() {
      await registry.stop();
      await removeTempDir(workDir);
    },
    requests: (filter = {}) => visible().filter((e) => matchesFilter(e, filter)),
    countRequests: (filter = {}) => visible().filter((e) => matchesFilter(e, filter)).length,
    clearRequests() {
      entries = [];
    },
    async flushLog(timeoutMs = 5_000) {
      const marker = `${SYNC_QUERY}=${++syncCounter}`;
      const res = await fetch(`http://127.0.0.1:${port}/v2/?${marker}`, { signal: AbortSignal.timeout(timeoutMs) });
      await res.arrayBuffer();
      await waitFor(() => entries.some((e) => e.uri.endsWith(marker)), {
        what: `registry access log line for ${marker}`,
        timeoutMs,
        intervalMs: 10,
      });
    },
    jsonLog: () => json.map((j) => ({ ...j })),
    output: () => proc?.output() ?? '',
  };
  return registry;
}
