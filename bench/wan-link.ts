/**
 * The simulated WAN link as a scenario uses it: bench/wan-relay.ts in its
 * own process in front of the primary, with its byte counters, and a way to
 * wait until the link has gone quiet (a mirror may still be fetching after
 * its client is served: distribution's proxy stores a blob with a second,
 * background GET).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/support/ports.ts';
import { startProcess, type ProcessHandle } from '../test/support/process.ts';
import { waitFor } from '../test/support/wait.ts';
import type { WanLinkCounters } from './wan-relay.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface WanLink {
  /** `127.0.0.1:PORT` of the relay (the primary as seen from the office). */
  host: string;
  url: string;
  pid: number;
  counters(): Promise<WanLinkCounters>;
  /**
   * Resolves with the counters once no byte has crossed the link for `quietMs`
   * (bounded by `timeoutMs`): everything the last step caused has been delivered.
   */
  quiet(options?: { quietMs?: number; timeoutMs?: number }): Promise<WanLinkCounters>;
  stop(): Promise<void>;
}

export async function startWanLink(primaryHost: string, link: { latencyMs: number; mbit: number }): Promise<WanLink> {
  const [port, statsPort] = [await freePort(), await freePort()];
  const relay: ProcessHandle = await startProcess(
    process.execPath,
    [
      '--import', 'tsx', 'bench/wan-relay.ts',
      '--port', String(port),
      '--target', primaryHost,
      '--latency-ms', String(link.latencyMs),
      '--mbit', String(link.mbit),
      '--stats-port', String(statsPort),
    ],
    { cwd: repoRoot, name: 'wan-relay' },
  );
  const stop = async (): Promise<void> => {
    await relay.stop();
  };
  try {
    await waitFor(
      () => {
        if (!relay.isRunning()) throw new Error(`wan-relay exited: ${relay.output().slice(-2000)}`);
        return relay.output().includes('listening');
      },
      { what: 'wan-relay to listen', timeoutMs: 20_000 },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const counters = async (): Promise<WanLinkCounters> => {
    const res = await fetch(`http://127.0.0.1:${statsPort}/`, { signal: AbortSignal.timeout(5_000) });
    if (res.status !== 200) throw new Error(`wan-relay stats answered ${res.status}`);
    return (await res.json()) as WanLinkCounters;
  };
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    pid: relay.pid,
    counters,
    async quiet({ quietMs = 1_000, timeoutMs = 180_000 } = {}) {
      let last = await counters();
      let since = Date.now();
      await waitFor(
        async () => {
          const now = await counters();
          if (now.down !== last.down || now.up !== last.up) {
            last = now;
            since = Date.now();
            return false;
          }
          return Date.now() - since >= quietMs;
        },
        { what: `the WAN link to carry no byte for ${quietMs} ms`, timeoutMs, intervalMs: 100 },
      );
      return last;
    },
    stop,
  };
}
