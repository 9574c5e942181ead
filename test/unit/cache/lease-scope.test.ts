import { describe, expect, it } from 'vitest';
import { runLeased } from '../../../src/cache/lease-scope.ts';
import { MemoryFillCoordinator } from '../../../src/coordination/memory-fill-coordinator.ts';
import { RegistryError } from '../../../src/registry/errors.ts';

const silent = { debug() {}, info() {}, warn() {}, error() {} };

function lead() {
  const coordinator = new MemoryFillCoordinator();
  const role = coordinator.acquireSync('sha256:x');
  if (role.role !== 'leader') throw new Error('expected to lead');
  const follower = coordinator.acquireSync('sha256:x');
  if (follower.role !== 'follower') throw new Error('expected to follow');
  return { lease: role.lease, watch: follower.watch, coordinator };
}

describe('runLeased', () => {
  it('fails the lease with LEADER_GONE when the fill throws something other than the primary’s answer', async () => {
    const { lease, watch, coordinator } = lead();
    await runLeased(lease, silent, {}, async () => {
      throw Object.assign(new Error('too many open files'), { code: 'EMFILE' });
    });
    expect(watch.state()).toMatchObject({ status: 'failed', error: { code: 'LEADER_GONE' } });
    expect(coordinator.inflight).toBe(0);
  });

  it('fails the lease with the primary’s answer when the fill throws a RegistryError', async () => {
    const { lease, watch } = lead();
    await runLeased(lease, silent, {}, async () => {
      throw new RegistryError('BLOB_UNKNOWN');
    });
    expect(watch.state()).toMatchObject({ status: 'failed', error: { code: 'BLOB_UNKNOWN' } });
  });

  it('fails the lease when the fill returns without settling it', async () => {
    const { lease, watch } = lead();
    await runLeased(lease, silent, {}, async (scoped) => {
      scoped.started(10, '/ingest/x.partial');
    });
    expect(watch.state()).toMatchObject({ status: 'failed', error: { code: 'LEADER_GONE' } });
  });

  it('leaves a settled lease as the fill settled it, even if the fill throws afterwards', async () => {
    const { lease, watch } = lead();
    await runLeased(lease, silent, {}, async (scoped) => {
      scoped.started(10, '/ingest/x.partial');
      scoped.succeed(10);
      throw new Error('late');
    });
    expect(watch.state()).toMatchObject({ status: 'done', size: 10 });
  });
});
