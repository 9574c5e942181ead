/**
 * Worker side of host-wide fill coordination: asks the cluster primary's
 * broker (fill-broker.ts) who leads a digest. The leader's progress is sent
 * to the primary at most every `progressStepBytes`; followers are woken by
 * the primary's relayed states and read the bytes from the partial file.
 *
 * The followers of one digest in this worker share one relayed watch: a
 * follower that finds one running keeps it and tells the broker to stop
 * relaying its own, so a progress step costs one IPC message per worker,
 * not one per follower (200 clients of one cold blob on 2 workers: ~2,000
 * messages per 256 MiB instead of ~200,000).
 */
import type { FillCoordinator, FillLease, FillRole, FillWatch } from '../cache/ports.ts';
import { cellLease } from './memory-fill-coordinator.ts';
import { FillStateCell } from './fill-state-cell.ts';
import { isFillMessage, type PrimaryToWorker, type WorkerToPrimary } from './ipc-messages.ts';

export interface IpcChannel {
  send(message: WorkerToPrimary): void;
  onMessage(listener: (message: unknown) => void): void;
}

const progressStepBytes = 256 * 1024;
const progressTrailingMs = 20;

export class IpcFillCoordinator implements FillCoordinator {
  private nextId = 1;
  private readonly pending = new Map<number, (reply: Extract<PrimaryToWorker, { t: 'fill.role' }>, cell: FillStateCell | undefined) => void>();
  private readonly watching = new Map<number, FillStateCell>();
  /** The relayed watch of each digest this worker follows, and how many of its followers hold it. */
  private readonly shared = new Map<string, { id: number; cell: FillStateCell; holders: number }>();

  constructor(private readonly channel: IpcChannel) {
    channel.onMessage((message) => {
      if (!isFillMessage(message)) return;
      const msg = message as PrimaryToWorker;
      if (msg.t === 'fill.role') {
        const resolve = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        // A follower's cell is in place before the next message: a 'fill.state' right behind the role (a fill
        // that failed at once) must not arrive while the caller has yet to run, and be dropped.
        let cell: FillStateCell | undefined;
        if (msg.role === 'follower') {
          cell = new FillStateCell();
          cell.set(msg.state);
          if (!cell.finished) this.watching.set(msg.id, cell);
        }
        resolve?.(msg, cell);
      } else if (msg.t === 'fill.state') {
        const cell = this.watching.get(msg.id);
        if (!cell) return;
        cell.set(msg.state);
        if (!cell.finished) return;
        this.watching.delete(msg.id);
        for (const [digest, entry] of this.shared) if (entry.cell === cell) this.shared.delete(digest);
      }
    });
  }

  async acquire(digest: string): Promise<FillRole> {
    const id = this.nextId++;
    const { reply, cell } = await this.ask({ t: 'fill.acquire', id, digest });
    if (reply.role === 'follower') return { role: 'follower', watch: this.followerWatch(digest, id, cell!) };
    return { role: 'leader', lease: this.forwardingLease(id, new FillStateCell()) };
  }

  async follow(digest: string): Promise<FillWatch | undefined> {
    const id = this.nextId++;
    const { reply, cell } = await this.ask({ t: 'fill.follow', id, digest });
    return reply.role === 'follower' ? this.followerWatch(digest, id, cell!) : undefined;
  }

  private ask(
    message: Extract<WorkerToPrimary, { t: 'fill.acquire' | 'fill.follow' }>,
  ): Promise<{ reply: Extract<PrimaryToWorker, { t: 'fill.role' }>; cell: FillStateCell | undefined }> {
    return new Promise((resolve) => {
      this.pending.set(message.id, (reply, cell) => resolve({ reply, cell }));
      this.channel.send(message);
    });
  }

  /** A watch on the fill the broker answered `id` about: this worker's running watch of `digest` when it has one, else this one, shared from now on. */
  private followerWatch(digest: string, id: number, cell: FillStateCell): FillWatch {
    const unwatch = (watchId: number): void => {
      if (this.watching.delete(watchId)) this.channel.send({ t: 'fill.unwatch', id: watchId });
    };
    if (cell.finished) return cell.watch(); // over already: nothing is relayed
    let held = this.shared.get(digest);
    if (held !== undefined && !held.cell.finished) {
      // The same fill (a digest has one at a time on the host, and this one is not over): keep the relayed watch already here.
      unwatch(id);
    } else {
      held = { id, cell, holders: 0 };
      this.shared.set(digest, held);
    }
    held.holders += 1;
    let closed = false;
    return held.cell.watch(() => {
      if (closed) return;
      closed = true;
      held.holders -= 1;
      if (held.holders > 0) return;
      if (this.shared.get(digest) === held) this.shared.delete(digest);
      unwatch(held.id);
    });
  }

  private forwardingLease(id: number, cell: FillStateCell): FillLease {
    const local = cellLease(cell);
    let sentBytes = 0;
    let trailing: NodeJS.Timeout | undefined;
    const send = (): void => {
      if (trailing) {
        clearTimeout(trailing);
        trailing = undefined;
      }
      if (cell.state.status === 'running') sentBytes = cell.state.bytes;
      this.channel.send({ t: 'fill.update', id, state: cell.state });
    };
    return {
      started(size, partialPath) {
        local.started(size, partialPath);
        send();
      },
      progress(bytes) {
        local.progress(bytes);
        if (bytes - sentBytes >= progressStepBytes) send();
        // A slow primary still moves followers on other workers, a little later.
        else trailing ??= setTimeout(send, progressTrailingMs);
      },
      succeed(size) {
        local.succeed(size);
        send();
      },
      fail(error) {
        local.fail(error);
        send();
      },
      streaming(size, url) {
        local.streaming(size, url);
        send();
      },
      watch: () => cell.watch(),
    };
  }
}
