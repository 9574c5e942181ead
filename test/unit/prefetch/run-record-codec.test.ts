import { describe, expect, it } from 'vitest';
import { parseImageOutcome, parseImageRefs, parseRunHeader, parseRunRequest } from '../../../src/prefetch/run-record-codec.ts';

// Run records come back from etcd as untrusted input (another version, a hand edit): a record that
// does not parse is absent, never half-read.
describe('run records read back from etcd', () => {
  const header = { job: 'nightly', runId: 'r1', dueKey: 'start:1', reason: 'start', startedAt: 1_000, state: 'running' };

  it('reads what the store writes', () => {
    expect(parseRunHeader(JSON.stringify(header))).toEqual({ ...header, finishedAt: undefined, error: undefined });
    expect(parseImageRefs(JSON.stringify([{ upstream: 'r.example', repository: 'bars/app', reference: 'v1' }]))).toEqual([{ upstream: 'r.example', repository: 'bars/app', reference: 'v1' }]);
    const outcome = { index: 0, image: 'r.example/bars/app:v1', ok: true, skipped: false, blobs: 3, bytes: 10, replicas: ['n1'] };
    expect(parseImageOutcome(JSON.stringify(outcome))).toEqual({ ...outcome, error: undefined });
    expect(parseRunRequest(JSON.stringify({ job: 'nightly', runId: 'r2', at: 5 }))).toEqual({ job: 'nightly', runId: 'r2', at: 5 });
  });

  it.each([
    ['not JSON', '{"job":'],
    ['an array', '[]'],
    ['an unknown state', JSON.stringify({ ...header, state: 'done' })],
    ['an unknown reason', JSON.stringify({ ...header, reason: 'cron' })],
    ['a negative start', JSON.stringify({ ...header, startedAt: -1 })],
    ['a huge job name', JSON.stringify({ ...header, job: 'j'.repeat(201) })],
    ['a number as error', JSON.stringify({ ...header, error: 5 })],
  ])('drops a header with %s', (_what, text) => {
    expect(parseRunHeader(text)).toBeUndefined();
  });

  it('drops an image list with one bad entry, an outcome with a bad field, a request without a time', () => {
    expect(parseImageRefs(JSON.stringify([{ upstream: 'r.example', repository: 'a', reference: 'v1' }, { upstream: 'r.example', repository: 7, reference: 'v1' }]))).toBeUndefined();
    expect(parseImageRefs('{"upstream":"r"}')).toBeUndefined();
    expect(parseImageOutcome(JSON.stringify({ index: 0.5, image: 'x', ok: true, skipped: false, blobs: 1, bytes: 1, replicas: [] }))).toBeUndefined();
    expect(parseImageOutcome(JSON.stringify({ index: 0, image: 'x', ok: 'yes', skipped: false, blobs: 1, bytes: 1, replicas: [] }))).toBeUndefined();
    expect(parseImageOutcome(JSON.stringify({ index: 0, image: 'x', ok: true, skipped: false, blobs: 1, bytes: 1, replicas: [3] }))).toBeUndefined();
    expect(parseRunRequest(JSON.stringify({ job: 'nightly', runId: 'r2' }))).toBeUndefined();
  });
});
