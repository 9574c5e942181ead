/**
 * The configuration a worker runs, sent by the cluster primary over IPC
 * right after the fork: every worker, a restarted one too, runs what the
 * primary validated at start, even if the config file or the environment
 * changed since (an edited file takes effect when the node restarts, on
 * every worker at once). Workers so never load the config loader (convict,
 * yaml) either.
 *
 *   primary → worker   {t:'worker.config', config}   once, first
 *
 * The config travels as JSON: unset settings (`undefined`) arrive absent,
 * which every reader treats alike.
 */
import type { Config } from '../config/types.ts';

export interface WorkerConfigMessage {
  t: 'worker.config';
  config: Config;
}

export function workerConfigMessage(config: Config): WorkerConfigMessage {
  return { t: 'worker.config', config };
}

export function isWorkerConfigMessage(message: unknown): message is WorkerConfigMessage {
  const m = message as { t?: unknown; config?: unknown } | null;
  return m?.t === 'worker.config' && typeof m.config === 'object' && m.config !== null;
}

/** Where the messages come from: the worker's `process`. */
export interface MessageChannel {
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

/**
 * Resolves with the configuration the primary sends; rejects after
 * `timeoutMs` without one (a primary that cannot send it is not one this
 * worker can serve for).
 */
export function receiveWorkerConfig(timeoutMs: number, channel: MessageChannel = process): Promise<Config> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      channel.off('message', onMessage);
      reject(new Error(`the cluster primary sent no configuration within ${timeoutMs} ms`));
    }, timeoutMs);
    function onMessage(message: unknown): void {
      if (!isWorkerConfigMessage(message)) return;
      clearTimeout(timer);
      channel.off('message', onMessage);
      resolve(message.config);
    }
    channel.on('message', onMessage);
  });
}
