/**
 * HTTPS certificate reload on SIGHUP (`systemctl reload outpost`), without
 * dropping a connection: the cluster primary checks the files once and, if
 * the pair is good, tells every worker to re-read them and swap its
 * server's secure context. Connections already open (in-flight transfers,
 * keep-alive) keep the context they were made with; new handshakes get the
 * new certificate. A bad pair is refused with a warning and the current one
 * stays in use; workers are never restarted for a reload.
 *
 *   primary → workers   {t:'tls.reload', reqId}
 *   worker  → primary   {t:'tls.reloaded', reqId, ok, serialNumber?, notAfter?, reason?}
 */
import type { Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Logger } from 'pino';
import { readTlsPair, type TlsPair, type TlsPairResult } from '../config/tls-pair.ts';

export type TlsReloadRequest = { t: 'tls.reload'; reqId: number };
export type TlsReloadResult =
  | { t: 'tls.reloaded'; reqId: number; ok: true; serialNumber: string; notAfter: string }
  | { t: 'tls.reloaded'; reqId: number; ok: false; reason: string };

export interface TlsFiles {
  tlsCert: string | undefined;
  tlsKey: string | undefined;
}

const describe = (pair: TlsPair): { subject: string; serialNumber: string; notAfter: string } => ({
  subject: pair.subject.replace(/\n/g, ', '),
  serialNumber: pair.serialNumber,
  notAfter: pair.notAfter.toISOString(),
});

function problemText(result: Extract<TlsPairResult, { ok: false }>): string {
  return `${result.problem.key} (${result.problem.file}) ${result.problem.reason}`;
}

export function parseTlsReloadRequest(message: unknown): TlsReloadRequest | undefined {
  const m = message as { t?: unknown; reqId?: unknown } | null;
  return m?.t === 'tls.reload' && typeof m.reqId === 'number' ? { t: 'tls.reload', reqId: m.reqId } : undefined;
}

export function parseTlsReloadResult(message: unknown): TlsReloadResult | undefined {
  const m = message as Record<string, unknown> | null;
  if (m?.t !== 'tls.reloaded' || typeof m.reqId !== 'number') return undefined;
  if (m.ok === true && typeof m.serialNumber === 'string' && typeof m.notAfter === 'string') {
    return { t: 'tls.reloaded', reqId: m.reqId, ok: true, serialNumber: m.serialNumber, notAfter: m.notAfter };
  }
  return { t: 'tls.reloaded', reqId: m.reqId, ok: false, reason: typeof m.reason === 'string' ? m.reason : 'unknown' };
}

/** Workers: SIGHUP is the primary's to act on (installed at start: Node's default for SIGHUP is to exit). */
export function ignoreSighup(): void {
  if (!process.listeners('SIGHUP').includes(ignore)) process.on('SIGHUP', ignore);
}
const ignore = (): void => undefined;

/**
 * Worker side: SIGHUP itself is ignored (a signal to the whole process group
 * must neither kill the worker, Node's default, nor reload it twice); the
 * primary's message re-reads the files and swaps the server's context.
 */
export function handleTlsReloads(options: {
  server: Server;
  files: TlsFiles;
  logger: Logger;
  onMessage: (listener: (message: unknown) => void) => void;
  send: (message: TlsReloadResult) => void;
}): void {
  ignoreSighup();
  const { server, files, logger } = options;
  options.onMessage((message) => {
    const request = parseTlsReloadRequest(message);
    if (!request) return;
    if (files.tlsCert === undefined || files.tlsKey === undefined || !('setSecureContext' in server)) {
      options.send({ t: 'tls.reloaded', reqId: request.reqId, ok: false, reason: 'this node serves HTTP' });
      return;
    }
    const read = readTlsPair(files.tlsCert, files.tlsKey);
    if (!read.ok) {
      logger.warn({ ...read.problem }, 'TLS reload refused: keeping the current certificate');
      options.send({ t: 'tls.reloaded', reqId: request.reqId, ok: false, reason: problemText(read) });
      return;
    }
    try {
      (server as unknown as HttpsServer).setSecureContext({ cert: read.pair.cert, key: read.pair.key });
    } catch (err) {
      logger.warn({ err: String((err as Error).message) }, 'TLS reload refused: keeping the current certificate');
      options.send({ t: 'tls.reloaded', reqId: request.reqId, ok: false, reason: String((err as Error).message) });
      return;
    }
    const shown = describe(read.pair);
    logger.info(shown, 'TLS certificate reloaded; new connections get it');
    options.send({ t: 'tls.reloaded', reqId: request.reqId, ok: true, serialNumber: shown.serialNumber, notAfter: shown.notAfter });
  });
}

/**
 * Primary side: on SIGHUP, checks the pair once (a bad one: one warning, no
 * worker touched), then asks every live worker and logs the outcome when all
 * have answered (or after a bound). Never forks nor kills a worker.
 */
export function reloadTlsOnSighup(options: {
  files: TlsFiles;
  logger: Logger;
  workers: () => Array<{ id: number; send: (message: TlsReloadRequest) => void }>;
  timeoutMs?: number;
  /** Every worker serves a new certificate. */
  onReloaded?: (pair: TlsPair) => void;
}): { handle: (workerId: number, message: unknown) => void } {
  const { files, logger } = options;
  let nextReqId = 1;
  const pending = new Map<number, { waiting: Set<number>; failed: Array<{ workerId: number; reason: string }>; done: () => void }>();
  process.on('SIGHUP', () => {
    if (files.tlsCert === undefined || files.tlsKey === undefined) {
      logger.info({}, 'SIGHUP: nothing to reload (HTTP; set OUTPOST_TLS_CERT and OUTPOST_TLS_KEY for HTTPS)');
      return;
    }
    logger.info({ tlsCert: files.tlsCert, tlsKey: files.tlsKey }, 'SIGHUP: reloading the TLS certificate');
    const read = readTlsPair(files.tlsCert, files.tlsKey);
    if (!read.ok) {
      logger.warn({ ...read.problem }, `TLS reload refused: ${problemText(read)}; keeping the current certificate`);
      return;
    }
    const reqId = nextReqId++;
    const workers = options.workers();
    const state = { waiting: new Set(workers.map((w) => w.id)), failed: [] as Array<{ workerId: number; reason: string }>, done: (): void => undefined };
    const timer = setTimeout(() => finish(), options.timeoutMs ?? 10_000);
    timer.unref();
    const finish = (): void => {
      if (!pending.delete(reqId)) return;
      clearTimeout(timer);
      const outcome = { ...describe(read.pair), workers: workers.length, failed: state.failed, unanswered: [...state.waiting] };
      if (state.failed.length === 0 && state.waiting.size === 0) {
        logger.info(outcome, 'TLS certificate reloaded by every worker');
        options.onReloaded?.(read.pair);
      } else logger.warn(outcome, 'TLS certificate reload incomplete: some workers keep the previous certificate');
    };
    state.done = finish;
    pending.set(reqId, state);
    for (const worker of workers) worker.send({ t: 'tls.reload', reqId });
    if (workers.length === 0) finish();
  });
  return {
    handle(workerId, message) {
      const result = parseTlsReloadResult(message);
      if (!result) return;
      const state = pending.get(result.reqId);
      if (!state || !state.waiting.delete(workerId)) return;
      if (!result.ok) state.failed.push({ workerId, reason: result.reason });
      if (state.waiting.size === 0) state.done();
    },
  };
}
