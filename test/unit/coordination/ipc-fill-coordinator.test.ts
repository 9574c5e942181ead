/**
 * The worker side of host-wide fill coordination, against a channel that
 * delivers several messages in one go, as real IPC does when they arrive in
 * one read: a follower must not miss a state that comes right behind its
 * role.
 */
import { describe, expect, it } from 'vitest';
import { FillBroker } from '../../../src/coordination/fill-broker.ts';
import { IpcFillCoordinator } from '../../../src/coordination/ipc-fill-coordinator.ts';
import { waitFor } from '../../support/wait.ts';

function channel() {
  const sent: { t: string; id: number }[] = [];
  const listeners: ((message: unknown) => void)[] = [];
  return {
    sent,
    deliver: (...messages: object[]) => {
      for (const message of messages) for (const listener of listeners) listener(message);
    },
    port: { send: (message: { t: string; id: number }) => sent.push(message), onMessage: (listener: (message: unknown) => void) => listeners.push(listener) },
  };
}

describe('IpcFillCoordinator', () => {
  it('keeps a fill failure that arrives right behind the follower role', async () => {
    const ipc = channel();
    const coordinator = new IpcFillCoordinator(ipc.port);
    const acquiring = coordinator.acquire('sha256:' + 'a'.repeat(64));
    const { id } = ipc.sent[0]!;
    ipc.deliver(
      { t: 'fill.role', id, role: 'follower', state: { status: 'pending' } },
      { t: 'fill.state', id, state: { status: 'failed', error: { code: 'PASSTHROUGH', message: 'streamed through uncached' } } },
    );
    const role = await acquiring;
    expect(role.role).toBe('follower');
    if (role.role !== 'follower') return;
    expect(role.watch.state()).toEqual({ status: 'failed', error: { code: 'PASSTHROUGH', message: 'streamed through uncached' } });
  });

  it('keeps progress that arrives right behind a follow answer', async () => {
    const ipc = channel();
    const coordinator = new IpcFillCoordinator(ipc.port);
    const following = coordinator.follow('sha256:' + 'b'.repeat(64));
    const { id } = ipc.sent[0]!;
    ipc.deliver(
      { t: 'fill.role', id, role: 'follower', state: { status: 'running', size: 10, partialPath: '/p', bytes: 0 } },
      { t: 'fill.state', id, state: { status: 'running', size: 10, partialPath: '/p', bytes: 7 } },
    );
    const watch = await following;
    expect(watch?.state()).toEqual({ status: 'running', size: 10, partialPath: '/p', bytes: 7 });
  });
});

describe('IpcFillCoordinator through the broker', () => {
  const digest = 'sha256:' + 'c'.repeat(64);
  const KiB = 1024;

  /** Two workers and the cluster primary's broker, over IPC-like channels; counts what the broker sends each worker. */
  function host() {
    const broker = new FillBroker();
    const received = new Map<number, string[]>();
    const worker = (id: number) => {
      const listeners: ((message: unknown) => void)[] = [];
      const inbox: string[] = [];
      received.set(id, inbox);
      const peer = {
        id,
        send: (message: { t: string }) =>
          setImmediate(() => {
            inbox.push(message.t);
            for (const listener of listeners) listener(structuredClone(message));
          }),
      };
      return new IpcFillCoordinator({ send: (message) => setImmediate(() => broker.handle(peer, structuredClone(message))), onMessage: (listener) => listeners.push(listener) });
    };
    return { broker, workers: [worker(1), worker(2)] as const, received: (id: number) => received.get(id)! };
  }

  it('relays a fill to a worker once per step, however many of its followers watch it', async () => {
    const { workers, received } = host();
    const [leaderRole, ...roles] = await Promise.all([workers[0].acquire(digest), ...Array.from({ length: 20 }, () => workers[1].acquire(digest))]);
    if (leaderRole?.role !== 'leader') throw new Error('expected the first worker to lead');
    const watches = roles.map((role) => (role.role === 'follower' ? role.watch : undefined));
    expect(watches.every((w) => w !== undefined)).toBe(true);
    const lease = leaderRole.lease;
    lease.started(10 * 256 * KiB, '/partial');
    for (let step = 1; step <= 10; step++) lease.progress(step * 256 * KiB);
    lease.succeed(10 * 256 * KiB);
    await waitFor(() => watches.every((w) => w!.state().status === 'done'), { what: 'every follower to see the fill done' });
    // The 20 followers' role answers, then the states of one relayed watch (the other 19 were unwatched at once).
    const states = received(2).filter((t) => t === 'fill.state').length;
    expect(states).toBeGreaterThan(0);
    expect(states).toBeLessThanOrEqual(12);
    for (const watch of watches) watch!.close();
  });

  it('keeps relaying while one follower still watches, stops when the last closes, and gives a later fill its own watch', async () => {
    const { broker, workers } = host();
    const leader = await workers[0].acquire(digest);
    if (leader.role !== 'leader') throw new Error('expected the first worker to lead');
    const [first, second] = await Promise.all([workers[1].acquire(digest), workers[1].acquire(digest)]);
    if (first?.role !== 'follower' || second?.role !== 'follower') throw new Error('expected followers');
    first.watch.close();
    leader.lease.started(1024, '/partial');
    leader.lease.progress(512);
    await waitFor(() => second.watch.state().status === 'running', { what: 'the remaining follower to see the fill start' });
    second.watch.close();
    leader.lease.fail({ code: 'UPSTREAM_NOT_FOUND', message: 'gone' });
    await waitFor(() => broker.inflight === 0, { what: 'the fill to end' });
    // A new fill of the same digest: its follower does not inherit the old, finished watch.
    const next = await workers[0].acquire(digest);
    const late = await workers[1].acquire(digest);
    expect(next.role).toBe('leader');
    if (late.role !== 'follower' || next.role !== 'leader') throw new Error('expected a follower of the new fill');
    expect(late.watch.state()).toEqual({ status: 'pending' });
    next.lease.succeed(10);
    await waitFor(() => late.watch.state().status === 'done', { what: 'the new fill to reach its follower' });
  });
});
