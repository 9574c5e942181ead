/**
 * What a worker tells the cluster primary about its own end, so the primary
 * can log why it restarts a worker, or stop the node when it cannot serve.
 *
 *   worker → primary   {t:'worker.cannotListen', code, message}   listen failed for a reason a restart cannot fix
 *   worker → primary   {t:'worker.fatal', message}                an uncaught exception; the worker exits next
 */
export type WorkerReport =
  | { t: 'worker.cannotListen'; code: string; message: string }
  | { t: 'worker.fatal'; message: string };

/** Listen failures no restart will fix: the node cannot serve at all. */
const cannotListenReasons: Record<string, string> = {
  EADDRINUSE: 'the address is already in use (another process listens on it)',
  EACCES: 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)',
  EPERM: 'operation not permitted',
  EADDRNOTAVAIL: 'the address is not one of this host',
};

export function isCannotListen(code: unknown): code is string {
  return typeof code === 'string' && Object.hasOwn(cannotListenReasons, code);
}

/** One line for the operator: `cannot listen on 127.0.0.1:5000: the address is already in use (...) [EADDRINUSE]`. */
export function describeCannotListen(host: string, port: number, code: string): string {
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return `cannot listen on ${shownHost}:${port}: ${cannotListenReasons[code] ?? 'listen failed'} [${code}]`;
}

export function isWorkerReport(message: unknown): message is WorkerReport {
  const m = message as { t?: unknown; code?: unknown; message?: unknown } | null;
  if (m?.t === 'worker.cannotListen') return typeof m.code === 'string' && typeof m.message === 'string';
  if (m?.t === 'worker.fatal') return typeof m.message === 'string';
  return false;
}

/** Sends a report to the primary; resolves once it is on its way (or at once without an IPC channel). */
export function reportToPrimary(report: WorkerReport): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) {
      resolve();
      return;
    }
    const bound = setTimeout(resolve, 1_000);
    process.send(report, undefined, {}, () => {
      clearTimeout(bound);
      resolve();
    });
  });
}
