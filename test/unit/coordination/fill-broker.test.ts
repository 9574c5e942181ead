import { describe, expect, it } from 'vitest';
import { FillBroker } from '../../../src/coordination/fill-broker.ts';
import type { PrimaryToWorker } from '../../../src/coordination/ipc-messages.ts';

function peer(id: number) {
  const inbox: PrimaryToWorker[] = [];
  return { id, inbox, send: (message: PrimaryToWorker) => inbox.push(message) };
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setImmediate(r));
}

describe('FillBroker', () => {
  it('makes the first asker of a digest the leader and the others followers', () => {
    const broker = new FillBroker();
    const a = peer(1);
    const b = peer(2);
    broker.handle(a, { t: 'fill.acquire', id: 1, digest: 'sha256:x' });
    broker.handle(b, { t: 'fill.acquire', id: 7, digest: 'sha256:x' });
    expect(a.inbox[0]).toMatchObject({ t: 'fill.role', id: 1, role: 'leader' });
    expect(b.inbox[0]).toMatchObject({ t: 'fill.role', id: 7, role: 'follower', state: { status: 'pending' } });
  });

  it('relays the leader’s progress and outcome to followers on other workers', async () => {
    const broker = new FillBroker();
    const a = peer(1);
    const b = peer(2);
    broker.handle(a, { t: 'fill.acquire', id: 1, digest: 'sha256:x' });
    broker.handle(b, { t: 'fill.acquire', id: 2, digest: 'sha256:x' });
    broker.handle(a, { t: 'fill.update', id: 1, state: { status: 'running', size: 10, partialPath: '/p', bytes: 4 } });
    await until(() => b.inbox.length >= 2);
    expect(b.inbox[1]).toMatchObject({ t: 'fill.state', id: 2, state: { status: 'running', bytes: 4 } });
    broker.handle(a, { t: 'fill.update', id: 1, state: { status: 'done', size: 10, partialPath: '/p', bytes: 10 } });
    await until(() => b.inbox.some((m) => m.t === 'fill.state' && m.state.status === 'done'));
    expect(broker.inflight).toBe(0);
  });

  it('fails the fills of a worker that exits, so its followers do not wait forever', async () => {
    const broker = new FillBroker();
    const a = peer(1);
    const b = peer(2);
    broker.handle(a, { t: 'fill.acquire', id: 1, digest: 'sha256:x' });
    broker.handle(b, { t: 'fill.acquire', id: 2, digest: 'sha256:x' });
    broker.peerGone(1);
    await until(() => b.inbox.some((m) => m.t === 'fill.state'));
    expect(b.inbox.at(-1)).toMatchObject({ t: 'fill.state', state: { status: 'failed', error: { code: 'UPSTREAM_UNAVAILABLE' } } });
    // The next asker leads a fresh fill.
    const c = peer(3);
    broker.handle(c, { t: 'fill.acquire', id: 1, digest: 'sha256:x' });
    expect(c.inbox[0]).toMatchObject({ role: 'leader' });
  });
});
