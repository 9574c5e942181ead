/**
 * The worker side of host-wide fill coordination, against a channel that
 * delivers several messages in one go, as real IPC does when they arrive in
 * one read: a follower must not miss a state that comes right behind its
 * role.
 */
import { describe, expect, it } from 'vitest';
import { IpcFillCoordinator } from '../../../src/coordination/ipc-fill-coordinator.ts';

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
