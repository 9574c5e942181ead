/** The RunStore contract on the memory adapter and on a real etcd (Debian etcd-server) with real leader fencing. */
import { afterAll, afterEach, beforeAll, describe } from 'vitest';
import { createEtcdClient } from '../../../src/coordination/etcd-client.ts';
import type { EtcdReplicaSet } from '../../../src/coordination/etcd-replica-set.ts';
import { EtcdRunStore } from '../../../src/coordination/etcd-run-store.ts';
import { MemoryRunStore } from '../../../src/prefetch/run-store.ts';
import { createCleanupStack } from '../../support/cleanup.ts';
import { startEtcd, type EtcdServer } from '../../support/etcd.ts';
import { testEtcdMember } from '../../support/etcd-member.ts';
import { waitFor } from '../../support/wait.ts';
import { recordingLogger } from './fakes.ts';
import { runStoreContract } from './run-store-contract.ts';

describe('MemoryRunStore', () => {
  runStoreContract({
    stores: async () => {
      const leader = new MemoryRunStore(() => true);
      return { leader, follower: new MemoryRunStore(() => false, leader.records) };
    },
  });
});

describe('EtcdRunStore', () => {
  const secret = 'unit-test-peer-secret-0123456789';
  let etcd: EtcdServer;
  const cleanup = createCleanupStack();
  let clusterSeq = 0;
  beforeAll(async () => {
    etcd = await startEtcd();
  }, 30_000);
  afterAll(() => etcd?.dispose());
  afterEach(() => cleanup.run());

  function member(cluster: string, nodeId: string): EtcdReplicaSet {
    const set = testEtcdMember({ etcdUrl: etcd.url, cluster, nodeId, secret, logger: recordingLogger() });
    cleanup.add(() => set.stop());
    return set;
  }

  runStoreContract({
    stores: async () => {
      const cluster = `runstore-${process.pid}-${++clusterSeq}`;
      const a = member(cluster, 'a');
      await a.start();
      await waitFor(() => a.state().leader, { what: 'a to lead', timeoutMs: 10_000 });
      const b = member(cluster, 'b');
      await b.start();
      const client = createEtcdClient({ endpoints: [etcd.url], callTimeoutMs: 1_000 });
      cleanup.add(() => client.close());
      return {
        leader: new EtcdRunStore({ client, clusterName: cluster, ifLeader: (ops, ...conditions) => a.ifLeader(ops, ...conditions) }),
        follower: new EtcdRunStore({ client, clusterName: cluster, ifLeader: (ops, ...conditions) => b.ifLeader(ops, ...conditions) }),
      };
    },
  });
});
