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

  it('fails the fills of a worker that exits so its followers take over, and removes its partial file at once', async () => {
    const discarded: string[] = [];
    const broker = new FillBroker({ discard: async (partialPath) => void discarded.push(partialPath) });
    const a = peer(1);
    const b = peer(2);
    broker.handle(a, { t: 'fill.acquire', id: 1, digest: 'sha256:x' });
    broker.handle(b, { t: 'fill.acquire', id: 2, digest: 'sha256:x' });
    broker.handle(a, { t: 'fill.update', id: 1, state: { status: 'running', size: 10, partialPath: '/cache/ingest/x.partial', bytes: 4 } });
    broker.peerGone(1);
    await until(() => b.inbox.some((m) => m.t === 'fill.state' && m.state.status === 'failed'));
    expect(b.inbox.at(-1)).toMatchObject({ t: 'fill.state', state: { status: 'failed', error: { code: 'LEADER_GONE' } } });
    expect(discarded).toEqual(['/cache/ingest/x.partial']);
    // The next asker leads a fresh fill.
    const c = peer(3);
    broker.handle(c, { t: 'fill.acquire', id: 1, digest: 'sha256:x' });
    expect(c.inbox[0]).toMatchObject({ role: 'leader' });
  });

  it('logs, and does not throw, when removing a dead worker’s partial file fails', async () => {
    const errors: string[] = [];
    const logger = { debug() {}, info() {}, warn: (_: object, msg: string) => void errors.push(msg), error: (_: object, msg: string) => void errors.push(msg) };
    const broker = new FillBroker({ logger, discard: () => Promise.reject(Object.assign(new Error('read-only'), { code: 'EROFS' })) });
    const a = peer(1);
    broker.handle(a, { t: 'fill.acquire', id: 1, digest: 'sha256:x' });
    broker.handle(a, { t: 'fill.update', id: 1, state: { status: 'running', size: 10, partialPath: '/cache/ingest/x.partial', bytes: 4 } });
    broker.peerGone(1);
    await until(() => errors.length > 0);
    expect(errors).toEqual(['could not remove the partial file of an exited worker']);
  });
});
