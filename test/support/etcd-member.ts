/**
 * A replica-set member on a real etcd for tests: its membership record (a
 * healthy node that holds nothing) and the EtcdReplicaSet that publishes it.
 */
import { systemClock, type Logger } from '../../src/cache/ports.ts';
import type { MemberRecord } from '../../src/cluster/member-record.ts';
import { createEtcdClient } from '../../src/coordination/etcd-client.ts';
import { EtcdReplicaSet, type EtcdReplicaSetOptions } from '../../src/coordination/etcd-replica-set.ts';

/** The record a test member publishes: healthy, at `http://<nodeId>.test:5000`. */
export function testMemberRecord(nodeId: string, overrides: Partial<MemberRecord> = {}): Omit<MemberRecord, 'heartbeat_at' | 'instance'> {
  return {
    node_id: nodeId,
    advertise_url: `http://${nodeId}.test:5000`,
    version: '0.0.0-test',
    started_at: new Date().toISOString(),
    health: { status: 'ok', problems: [], draining: false, disk_failing: false },
    cache_bytes: 0,
    hit_ratio: 0,
    fills_in_flight: 0,
    ...overrides,
  };
}

export interface TestEtcdMemberOptions {
  etcdUrl: string;
  cluster: string;
  nodeId: string;
  secret: string;
  logger: Logger;
  leaseTtlSeconds?: number;
  heartbeatMs?: number;
  onChange?: EtcdReplicaSetOptions['onChange'];
}

/** A member (not started) of `cluster` publishing {@link testMemberRecord}; 2 s lease and 300 ms heartbeat unless said. */
export function testEtcdMember(options: TestEtcdMemberOptions): EtcdReplicaSet {
  return new EtcdReplicaSet({
    client: createEtcdClient({ endpoints: [options.etcdUrl], callTimeoutMs: 1_000 }),
    clusterName: options.cluster,
    nodeId: options.nodeId,
    leaseTtlSeconds: options.leaseTtlSeconds ?? 2,
    peerSecret: options.secret,
    heartbeatMs: options.heartbeatMs ?? 300,
    record: () => testMemberRecord(options.nodeId),
    logger: options.logger,
    clock: systemClock,
    onChange: options.onChange,
  });
}
