/**
 * Primary side of host-wide fill coordination: one MemoryFillCoordinator for
 * every worker of the host, bridged over cluster IPC. A worker that exits
 * fails the fills it was leading, so its followers break their connections
 * instead of waiting.
 */
import type { FillLease, FillWatch } from '../cache/ports.ts';
import { isFillMessage, type PrimaryToWorker, type WorkerToPrimary } from './ipc-messages.ts';
import { MemoryFillCoordinator } from './memory-fill-coordinator.ts';

export interface BrokerPeer {
  readonly id: number;
  send(message: PrimaryToWorker): void;
}

interface PeerState {
  leases: Map<number, FillLease>;
  watches: Map<number, FillWatch>;
}

export class FillBroker {
  private readonly peers = new Map<number, PeerState>();

  constructor(private readonly coordinator: MemoryFillCoordinator = new MemoryFillCoordinator()) {}

  get inflight(): number {
    return this.coordinator.inflight;
  }

  handle(peer: BrokerPeer, message: unknown): void {
    if (!isFillMessage(message)) return;
    const msg = message as WorkerToPrimary;
    const state = this.peerState(peer.id);
    switch (msg.t) {
      case 'fill.acquire': {
        const role = this.coordinator.acquireSync(msg.digest);
        if (role.role === 'leader') {
          state.leases.set(msg.id, role.lease);
          peer.send({ t: 'fill.role', id: msg.id, role: 'leader', state: { status: 'pending' } });
        } else {
          state.watches.set(msg.id, role.watch);
          peer.send({ t: 'fill.role', id: msg.id, role: 'follower', state: role.watch.state() });
          void this.relay(peer, msg.id, role.watch, state);
        }
        return;
      }
      case 'fill.update': {
        const lease = state.leases.get(msg.id);
        if (!lease) return;
        const next = msg.state;
        if (next.status === 'running') {
          lease.started(next.size, next.partialPath);
          lease.progress(next.bytes);
        } else if (next.status === 'done') {
          lease.succeed(next.size);
          state.leases.delete(msg.id);
        } else if (next.status === 'failed') {
          lease.fail(next.error);
          state.leases.delete(msg.id);
        }
        return;
      }
      case 'fill.unwatch':
        state.watches.delete(msg.id);
        return;
    }
  }

  /** A worker exited: fail what it led, forget what it followed. */
  peerGone(peerId: number): void {
    const state = this.peers.get(peerId);
    if (!state) return;
    this.peers.delete(peerId);
    for (const lease of state.leases.values()) {
      lease.fail({ code: 'UPSTREAM_UNAVAILABLE', message: 'the worker filling this blob exited' });
    }
    state.watches.clear();
  }

  private peerState(id: number): PeerState {
    let state = this.peers.get(id);
    if (!state) {
      state = { leases: new Map(), watches: new Map() };
      this.peers.set(id, state);
    }
    return state;
  }

  private async relay(peer: BrokerPeer, id: number, watch: FillWatch, state: PeerState): Promise<void> {
    let last = watch.state();
    for (;;) {
      await watch.changed(5_000);
      if (!state.watches.has(id) || !this.peers.has(peer.id)) return;
      const current = watch.state();
      if (current !== last) {
        last = current;
        try {
          peer.send({ t: 'fill.state', id, state: current });
        } catch {
          return;
        }
      }
      if (current.status === 'done' || current.status === 'failed') {
        state.watches.delete(id);
        return;
      }
    }
  }
}
