import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { reloadTlsOnSighup, type TlsReloadRequest } from '../../../src/process/tls-reload.ts';
import { issueServerCert, makeTestCa, type TestServerCert } from '../../support/tls.ts';
import { waitFor } from '../../support/wait.ts';

let dir: string;
let one: TestServerCert;
let two: TestServerCert;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'outpost-tls-reload-'));
  const ca = makeTestCa(dir);
  one = issueServerCert(ca, 'one');
  two = issueServerCert(ca, 'two');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const added: Array<(...args: unknown[]) => void> = [];
afterEach(() => {
  for (const listener of added.splice(0)) process.removeListener('SIGHUP', listener);
});

/** The primary side with fake workers; returns its log lines and what each worker was sent. */
function primary(files: { tlsCert: string; tlsKey: string }, workerIds: number[], timeoutMs = 5_000) {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  const sent = new Map<number, TlsReloadRequest[]>(workerIds.map((id) => [id, []]));
  const reloaded: string[] = [];
  const before = new Set(process.listeners('SIGHUP'));
  const side = reloadTlsOnSighup({
    files,
    logger,
    workers: () => workerIds.map((id) => ({ id, send: (message) => sent.get(id)!.push(message) })),
    timeoutMs,
    onReloaded: (pair) => reloaded.push(pair.serialNumber),
  });
  added.push(...(process.listeners('SIGHUP').filter((l) => !before.has(l)) as Array<(...args: unknown[]) => void>));
  // The listener this call added, run directly: a real SIGHUP would reach the test runner too.
  const hangUp = (): void => {
    for (const listener of process.listeners('SIGHUP')) if (!before.has(listener)) (listener as () => void)();
  };
  return { side, lines, sent, reloaded, hangUp };
}

describe('certificate reload, primary side', () => {
  it('asks every worker and logs success once all have swapped the certificate', () => {
    const p = primary({ tlsCert: one.cert, tlsKey: one.key }, [1, 2]);
    p.hangUp();
    const reqId = p.sent.get(1)![0]!.reqId;
    expect(p.sent.get(2)).toEqual([{ t: 'tls.reload', reqId }]);
    p.side.handle(1, { t: 'tls.reloaded', reqId, ok: true, serialNumber: 'x', notAfter: 'y' });
    expect(p.lines.some((l) => l.msg === 'TLS certificate reloaded by every worker')).toBe(false);
    p.side.handle(2, { t: 'tls.reloaded', reqId, ok: true, serialNumber: 'x', notAfter: 'y' });
    expect(p.lines.find((l) => l.msg === 'TLS certificate reloaded by every worker')).toMatchObject({ level: 30, workers: 2 });
    expect(p.reloaded).toHaveLength(1);
  });

  it('refuses a mismatched pair without asking any worker', () => {
    const p = primary({ tlsCert: one.cert, tlsKey: two.key }, [1]);
    p.hangUp();
    expect(p.sent.get(1)).toEqual([]);
    expect(p.lines.find((l) => String(l.msg).startsWith('TLS reload refused'))).toMatchObject({ level: 40, key: 'server.tlsKey', file: two.key });
    expect(p.reloaded).toEqual([]);
  });

  it('warns when a worker refuses or does not answer, naming it, and keeps the expiry as it was', async () => {
    const p = primary({ tlsCert: one.cert, tlsKey: one.key }, [1, 2, 3], 200);
    p.hangUp();
    const reqId = p.sent.get(1)![0]!.reqId;
    p.side.handle(1, { t: 'tls.reloaded', reqId, ok: true, serialNumber: 'x', notAfter: 'y' });
    p.side.handle(2, { t: 'tls.reloaded', reqId, ok: false, reason: 'server.tlsKey (/k) is not a PEM private key' });
    await waitFor(() => p.lines.some((l) => String(l.msg).startsWith('TLS certificate reload incomplete')), { what: 'the incomplete-reload warning' });
    expect(p.lines.find((l) => String(l.msg).startsWith('TLS certificate reload incomplete'))).toMatchObject({
      level: 40,
      failed: [{ workerId: 2, reason: 'server.tlsKey (/k) is not a PEM private key' }],
      unanswered: [3],
    });
    expect(p.reloaded).toEqual([]);
  });
});
