/** Wires N in-process IpcFillCoordinators to one FillBroker, the way cluster workers reach the primary. */
import type { FillCoordinator } from '../../src/cache/ports.ts';
import { FillBroker, type FillBrokerOptions } from '../../src/coordination/fill-broker.ts';
import { IpcFillCoordinator } from '../../src/coordination/ipc-fill-coordinator.ts';

export function ipcCoordinatorPair(
  workers: number,
  options: FillBrokerOptions = {},
): { coordinators: FillCoordinator[]; broker: FillBroker; close: () => void } {
  const broker = new FillBroker(options);
  const coordinators: FillCoordinator[] = [];
  for (let id = 1; id <= workers; id++) {
    const listeners: ((message: unknown) => void)[] = [];
    // Structured clone and a macrotask hop, like real IPC.
    const peer = { id, send: (message: object) => setImmediate(() => listeners.forEach((l) => l(structuredClone(message)))) };
    coordinators.push(
      new IpcFillCoordinator({
        send: (message) => setImmediate(() => broker.handle(peer, structuredClone(message))),
        onMessage: (listener) => listeners.push(listener),
      }),
    );
  }
  return { coordinators, broker, close: () => undefined };
}
