import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, createWriteStream, type WriteStream } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { debianPackageFor } from './system-packages.ts';

export interface StartProcessOptions {
  /** Extra environment variables, merged over the parent's (see `inheritEnv`). */
  env?: NodeJS.ProcessEnv;
  /** Start from the parent's environment. Default true. */
  inheritEnv?: boolean;
  cwd?: string;
  /** Also append everything the process prints (stdout and stderr) to this file. */
  logFile?: string;
  /** Name used in error messages. Default: the command's base name. */
  name?: string;
  /** Keep at most this many bytes of each captured stream (oldest dropped). Default 64 MiB. */
  maxOutputBytes?: number;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StopOptions {
  /** How long to wait after SIGTERM before SIGKILL. Default 5 000 ms. */
  graceMs?: number;
  /** First signal. Default SIGTERM. */
  signal?: NodeJS.Signals;
}

export interface ProcessHandle {
  readonly pid: number;
  readonly name: string;
  /** Resolves once the process has exited and its output pipes are drained. Never rejects. */
  readonly exited: Promise<ExitInfo>;
  /** The exit status once exited, undefined while running. */
  exitInfo(): ExitInfo | undefined;
  isRunning(): boolean;
  /** stdout and stderr as text, interleaved in arrival order. */
  output(): string;
  /** stdout bytes exactly as printed. */
  stdout(): Buffer;
  /** stderr as text. */
  stderr(): string;
  /** Calls `listener` with each stdout/stderr chunk as text; returns an unsubscribe function. */
  onOutput(listener: (text: string, stream: 'stdout' | 'stderr') => void): () => void;
  /** SIGTERM (by PID), then SIGKILL after `graceMs`; resolves when the process has exited. */
  stop(options?: StopOptions): Promise<ExitInfo>;
}

/**
 * Every child started through this module, so that a test file that forgets
 * (or fails) to stop one does not leave it running: they are SIGKILLed when
 * the test process exits or is terminated by a signal.
 */
const liveChildren = new Set<ChildProcess>();
let safetyNetInstalled = false;

function killAllLiveChildren(): void {
  for (const child of liveChildren) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  liveChildren.clear();
}

function installSafetyNet(): void {
  if (safetyNetInstalled) return;
  safetyNetInstalled = true;
  process.on('exit', killAllLiveChildren);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAllLiveChildren();
      process.removeListener(sig, onSignal);
      // Keep the default behaviour (terminate) when nobody else handles the signal.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/** Starts a process with captured output; throws if it cannot be spawned (e.g. missing binary). */
export async function startProcess(
  cmd: string,
  args: readonly string[],
  options: StartProcessOptions = {},
): Promise<ProcessHandle> {
  installSafetyNet();
  const name = options.name ?? cmd.split('/').pop() ?? cmd;
  const maxBytes = options.maxOutputBytes ?? 64 * 1024 * 1024;
  const env = { ...(options.inheritEnv === false ? {} : process.env), ...options.env };

  const child = spawn(cmd, [...args], {
    cwd: options.cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (err) => reject(new Error(`Could not start ${name} (${cmd}): ${err.message}`, { cause: err })));
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`Could not start ${name} (${cmd}): no pid`);
  liveChildren.add(child);
  // Later errors (e.g. a failed kill) must not crash the test process; the exit status tells the story.
  child.on('error', () => undefined);

  let logStream: WriteStream | undefined;
  if (options.logFile !== undefined) {
    logStream = createWriteStream(options.logFile, { flags: 'a' });
    logStream.on('error', () => undefined);
  }

  const stdoutChunks: Buffer[] = [];
  let stdoutBytes = 0;
  let stderrText = '';
  let combined = '';
  const listeners = new Set<(text: string, stream: 'stdout' | 'stderr') => void>();

  const trimText = (text: string): string => (text.length > maxBytes ? text.slice(text.length - maxBytes) : text);

  child.stdout!.on('data', (chunk: Buffer) => {
    stdoutChunks.push(chunk);
    stdoutBytes += chunk.length;
    while (stdoutBytes > maxBytes && stdoutChunks.length > 1) stdoutBytes -= stdoutChunks.shift()!.length;
    const text = chunk.toString('utf8');
    combined = trimText(combined + text);
    logStream?.write(chunk);
    for (const l of listeners) l(text, 'stdout');
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    stderrText = trimText(stderrText + text);
    combined = trimText(combined + text);
    logStream?.write(chunk);
    for (const l of listeners) l(text, 'stderr');
  });

  let info: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('close', (code, signal) => {
      info = { code, signal };
      liveChildren.delete(child);
      if (logStream !== undefined) logStream.end(() => resolve(info!));
      else resolve(info);
    });
  });

  const handle: ProcessHandle = {
    pid,
    name,
    exited,
    exitInfo: () => info,
    isRunning: () => info === undefined,
    output: () => combined,
    stdout: () => Buffer.concat(stdoutChunks),
    stderr: () => stderrText,
    onOutput(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async stop(stopOptions = {}) {
      if (info !== undefined) return info;
      const graceMs = stopOptions.graceMs ?? 5_000;
      signalPid(pid, stopOptions.signal ?? 'SIGTERM');
      const graceful = await Promise.race([exited, delay(graceMs).then(() => undefined)]);
      if (graceful !== undefined) return graceful;
      signalPid(pid, 'SIGKILL');
      const killed = await Promise.race([exited, delay(10_000).then(() => undefined)]);
      if (killed === undefined) throw new Error(`${name} (pid ${pid}) did not exit 10 s after SIGKILL`);
      return killed;
    },
  };
  return handle;
}

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Thrown by {@link requireBinary}; `debianPackage` names what to install. */
export class MissingBinaryError extends Error {
  readonly code = 'MISSING_BINARY';
  constructor(
    readonly binary: string,
    readonly debianPackage: string,
    message: string,
  ) {
    super(message);
    this.name = 'MissingBinaryError';
  }
}

/**
 * Returns the absolute path of `name` found on PATH. When it is missing this
 * always throws — integration tests must fail loudly, never skip silently —
 * with the Debian package to install (and under CI=true says that CI needs it).
 */
export function requireBinary(name: string): string {
  const found = findOnPath(name);
  if (found !== undefined) return found;
  const pkg = debianPackageFor(name);
  const where = process.env['CI'] === 'true' ? 'CI=true: the integration tests need' : 'The integration tests need';
  throw new MissingBinaryError(
    name,
    pkg,
    `${where} the "${name}" binary, which is not on PATH (${process.env['PATH'] ?? ''}). ` +
      `Install it with: apt-get update && apt-get install -y ${pkg}`,
  );
}

function findOnPath(name: string): string | undefined {
  const candidates = isAbsolute(name) || name.includes('/')
    ? [name]
    : (process.env['PATH'] ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

export interface RunProcessOptions extends StartProcessOptions {
  /** Upper bound for the whole run; the process is stopped (SIGTERM, then SIGKILL) when it passes. Default 60 000 ms. */
  timeoutMs?: number;
}

export interface RunResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** True when the run was stopped because it exceeded `timeoutMs`. */
  timedOut: boolean;
  stdout: Buffer;
  stderr: string;
  /** stdout and stderr interleaved, as text. */
  output: string;
  durationMs: number;
}

/** Runs a command to completion with a bounded time; never throws for a non-zero exit (check `exitCode`). */
export async function runProcess(
  cmd: string,
  args: readonly string[],
  options: RunProcessOptions = {},
): Promise<RunResult> {
  const started = Date.now();
  const timeoutMs = options.timeoutMs ?? 60_000;
  const proc = await startProcess(cmd, args, options);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void proc.stop({ graceMs: 2_000 });
  }, timeoutMs);
  const info = await proc.exited;
  clearTimeout(timer);
  return {
    exitCode: info.code,
    signal: info.signal,
    timedOut,
    stdout: proc.stdout(),
    stderr: proc.stderr(),
    output: proc.output(),
    durationMs: Date.now() - started,
  };
}
