/**
 * Primary side of host-wide fill coordination: one MemoryFillCoordinator for
 * every worker of the host, bridged over cluster IPC. A worker that exits
 * fails the fills it was leading with LEADER_GONE — its followers take over
 * (one of them leads a new fill) instead of waiting or breaking — and its
 * partial files are discarded at once: readers that have one open keep
 * reading through their descriptor.
 */
import type { FillLease, FillWatch, Logger } from '../cache/ports.ts';
import { isFillMessage, type PrimaryToWorker, type WorkerToPrimary } from './ipc-messages.ts';
import { MemoryFillCoordinator } from './memory-fill-coordinator.ts';

export interface BrokerPeer {
  readonly id: number;
  send(message: PrimaryToWorker): void;
}

interface LedFill {
  lease: FillLease;
  /** The partial file, once the leader reported it. */
  partialPath?: string;
}

interface PeerState {
  leases: Map<number, LedFill>;
  watches: Map<number, FillWatch>;
}

export interface FillBrokerOptions {
  coordinator?: MemoryFillCoordinator;
  /** Removes the partial file of a fill whose leader exited. */
  discard?: (partialPath: string) => Promise<void>;
  logger?: Logger;
}

const silent: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

export class FillBroker {
  private readonly peers = new Map<number, PeerState>();
  private readonly coordinator: MemoryFillCoordinator;
  private readonly logger: Logger;

  constructor(private readonly options: FillBrokerOptions = {}) {
    this.coordinator = options.coordinator ?? new MemoryFillCoordinator();
    this.logger = options.logger ?? silent;
  }

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
          state.leases.set(msg.id, { lease: role.lease });
          peer.send({ t: 'fill.role', id: msg.id, role: 'leader', state: { status: 'pending' } });
        } else {
          state.watches.set(msg.id, role.watch);
          peer.send({ t: 'fill.role', id: msg.id, role: 'follower', state: role.watch.state() });
          this.relay(peer, msg.id, role.watch, state).catch((err: unknown) =>
            this.logger.error({ peer: peer.id, err: String((err as Error)?.message ?? err) }, 'relaying a fill to a worker failed'),
          );
        }
        return;
      }
      case 'fill.follow': {
        const watch = this.coordinator.followSync(msg.digest);
        if (!watch) {
          peer.send({ t: 'fill.role', id: msg.id, role: 'none', state: { status: 'pending' } });
          return;
        }
        state.watches.set(msg.id, watch);
        peer.send({ t: 'fill.role', id: msg.id, role: 'follower', state: watch.state() });
        this.relay(peer, msg.id, watch, state).catch((err: unknown) =>
          this.logger.error({ peer: peer.id, err: String((err as Error)?.message ?? err) }, 'relaying a fill to a worker failed'),
        );
        return;
      }
      case 'fill.update': {
        const led = state.leases.get(msg.id);
        if (!led) return;
        const { lease } = led;
        const next = msg.state;
        if (next.status === 'running') {
          led.partialPath = next.partialPath;
          lease.started(next.size, next.partialPath);
          lease.progress(next.bytes);
        } else if (next.status === 'done') {
          lease.succeed(next.size);
          state.leases.delete(msg.id);
        } else if (next.status === 'streaming') {
          lease.streaming(next.size, next.url);
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

  /** A worker exited: fail what it led (its followers take over), discard its partial files, forget what it followed. */
  peerGone(peerId: number): void {
    const state = this.peers.get(peerId);
    if (!state) return;
    this.peers.delete(peerId);
    for (const { lease, partialPath } of state.leases.values()) {
      lease.fail({ code: 'LEADER_GONE', message: 'the worker filling this blob exited' });
      if (partialPath !== undefined && this.options.discard) {
        this.options.discard(partialPath).catch((err: unknown) =>
          this.logger.warn({ partialPath, err: String((err as Error)?.message ?? err) }, 'could not remove the partial file of an exited worker'),
        );
      }
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
