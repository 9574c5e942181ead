import { describe, expect, it } from 'vitest';
import { buildClusterStatus, type StatusInputs } from '../../../src/cluster/cluster-status.ts';
import { coordinationCheck } from '../../../src/cluster/coordination-state.ts';
import { signRecord, verifyRecord, parseMemberRecord, type MemberRecord } from '../../../src/cluster/member-record.ts';
import { hitRatio, pullStatsFromMetrics } from '../../../src/cluster/pull-stats.ts';

const now = Date.parse('2026-11-30T03:00:00Z');
const iso = (ms: number): string => new Date(ms).toISOString();

function record(id: string, overrides: Partial<MemberRecord> = {}): MemberRecord {
  return {
    node_id: id,
    instance: `${id}-instance`,
    advertise_url: `http://${id}.office:5000`,
    version: '0.2.0',
    started_at: iso(now - 8123_000),
    heartbeat_at: iso(now - 1_000),
    health: { status: 'ok', problems: [], draining: false, disk_failing: false, redis_up: true },
    cache_bytes: 1234,
    hit_ratio: 0.93,
    fills_in_flight: 0,
    ...overrides,
  };
}

function clustered(members: MemberRecord[], extra: Partial<NonNullable<StatusInputs['etcd']>> = {}, aggregate?: Record<string, number>): StatusInputs {
  return {
    now,
    self: record('n1'),
    staleAfterMs: 5_000,
    redis: { up: true, since: now - 60_000, error: undefined },
    etcd: {
      up: true,
      since: now - 60_000,
      error: undefined,
      joined: true,
      joinProblem: undefined,
      view: {
        readAt: now,
        members: members.map((m) => ({ id: m.node_id, record: { verified: true as const, value: m } })),
        leader: 'n1',
        aggregate: aggregate && {
          leader: 'n1',
          updated_at: iso(now),
          replicas: Object.fromEntries(
            Object.entries(aggregate).map(([id, last]) => [id, { advertise_url: `http://${id}.office:5000`, version: '0.2.0', started_at: iso(now - 9_000_000), last_heartbeat: iso(last) }]),
          ),
        },
        departed: new Set(),
      },
      ...extra,
    },
  };
}

describe('cluster_status', () => {
  it('matches the documented shape for a replica that stopped heartbeating', () => {
    const status = buildClusterStatus(clustered([record('n1')], {}, { n1: now - 1_000, n2: now - 7_000 }));
    expect(status).toEqual({
      replica_health: { n1: 'OK', n2: 'unreachable: no heartbeat for 7s' },
      current_issues: [{ critical: false, description: 'replica n2 has no heartbeat for 7s' }],
      leader: 'n1',
      replicas: {
        n1: {
          advertise_url: 'http://n1.office:5000',
          version: '0.2.0',
          uptime_seconds: 8123,
          cache_bytes: 1234,
          hit_ratio: 0.93,
          last_heartbeat: '2026-11-30T02:59:59Z',
        },
      },
    });
  });

  it('lists a standalone node alone, as its own leader', () => {
    const status = buildClusterStatus({ now, self: record('solo'), staleAfterMs: 5_000 });
    expect(status.leader).toBe('solo');
    expect(status.replica_health).toEqual({ solo: 'OK' });
    expect(Object.keys(status.replicas)).toEqual(['solo']);
    expect(status.current_issues).toEqual([]);
  });

  it('does not report a replica that left gracefully', () => {
    const inputs = clustered([record('n1')], {}, { n1: now, n2: now - 3_000 });
    (inputs.etcd!.view!.departed as Set<string>).add('n2');
    expect(buildClusterStatus(inputs).replica_health).toEqual({ n1: 'OK' });
  });

  it('reports a failing disk, a draining replica, a stale one and a replica without Redis', () => {
    const status = buildClusterStatus(
      clustered([
        record('n1'),
        record('n2', { health: { status: 'degraded', problems: ['cache writes failing; streaming through uncached'], draining: false, disk_failing: true, redis_up: false } }),
        record('n5', { health: { status: 'ok', problems: [], draining: false, disk_failing: false, redis_up: false } }),
        record('n3', { health: { status: 'degraded', problems: [], draining: true, disk_failing: false } }),
        record('n4', { heartbeat_at: iso(now - 12_000) }),
      ]),
    );
    expect(status.replica_health).toEqual({
      n1: 'OK',
      n2: 'degraded: cache writes failing; streaming through uncached; Redis unreachable',
      n3: 'degraded: draining (shutting down)',
      n4: 'degraded: no status update for 12s',
      n5: 'degraded: Redis unreachable',
    });
    expect(status.current_issues).toEqual([
      { critical: false, description: "replica n2's disk is failing: cache writes failing; streaming through uncached" },
      { critical: false, description: 'replica n2 cannot reach Redis' },
      { critical: false, description: 'replica n4 has not updated its status for 12s' },
      { critical: false, description: 'replica n5 cannot reach Redis' },
    ]);
  });

  it('says when etcd is unreachable from this node, shows no leader, and does not pretend to know the others', () => {
    const inputs = clustered([record('n1'), record('n2')], { up: false, since: now - 4_000, error: 'GRPCUnavailableError: No connection established' });
    const status = buildClusterStatus(inputs);
    expect(status.leader).toBeNull();
    expect(status.current_issues[0]).toEqual({
      critical: true,
      description:
        'etcd unreachable from n1 since 2026-11-30T02:59:56Z (GRPCUnavailableError: No connection established): no leader duties; replicas as last seen 2026-11-30T03:00:00Z',
    });
    expect(status.replica_health['n1']).toBe('OK');
    expect(status.replica_health['n2']).toMatch(/^unknown: etcd unreachable from n1 \(OK as of /);
  });

  it('reports no leader, an unverifiable record, Redis down here and a duplicate id as issues', () => {
    const inputs = clustered([record('n1')], { joinProblem: 'node id "n1" is already used by a live replica' });
    inputs.etcd!.view = { ...inputs.etcd!.view!, leader: undefined, members: [...inputs.etcd!.view!.members, { id: 'rogue', record: { verified: false, reason: 'signature does not verify (a different OUTPOST_PEER_SECRET?)' } }] };
    inputs.redis = { up: false, since: now - 2_000, error: 'connection closed' };
    const status = buildClusterStatus(inputs);
    expect(status.current_issues.map((i) => [i.critical, i.description])).toEqual([
      [true, 'no leader elected'],
      [true, 'n1 is not a member of the replica set: node id "n1" is already used by a live replica'],
      [false, 'Redis unreachable from n1 since 2026-11-30T02:59:58Z (connection closed): per-node behaviour until it answers'],
      [true, "replica rogue's membership record does not verify: signature does not verify (a different OUTPOST_PEER_SECRET?)"],
    ]);
    expect(status.replica_health['rogue']).toBe('degraded: membership record signature does not verify (a different OUTPOST_PEER_SECRET?)');
    expect(status.replicas['rogue']).toBeUndefined();
  });
});

describe('member records', () => {
  it('verify with the secret they were signed with, and only with it', () => {
    const signed = signRecord('secret-one-0123456789', record('n1'));
    expect(verifyRecord('secret-one-0123456789', signed, parseMemberRecord)).toEqual({ verified: true, value: record('n1') });
    const other = verifyRecord('secret-two-0123456789', signed, parseMemberRecord);
    expect(other.verified).toBe(false);
    const tampered = signed.replace('"cache_bytes":1234', '"cache_bytes":9999');
    expect(verifyRecord('secret-one-0123456789', tampered, parseMemberRecord).verified).toBe(false);
    expect(verifyRecord('secret-one-0123456789', '{"node_id":1}', parseMemberRecord)).toMatchObject({ verified: false });
    expect(verifyRecord('secret-one-0123456789', 'not json', parseMemberRecord)).toEqual({ verified: false, reason: 'not JSON' });
  });
});

describe('the /health cluster check', () => {
  it('is ok with the leader named, degraded (never failing) when etcd or Redis is away', () => {
    const etcd = { up: true, since: now, error: undefined, joined: true, joinProblem: undefined, leader: 'n2', leading: false, members: 3 };
    const redis = { up: true, since: now, error: undefined };
    expect(coordinationCheck(() => ({ etcd, redis }))()).toEqual({ status: 'ok', detail: '3 members, leader n2; Redis reachable' });
    expect(coordinationCheck(() => ({ etcd: { ...etcd, up: false, error: 'refused' }, redis }))()).toMatchObject({ status: 'degraded', detail: expect.stringContaining('etcd unreachable since') });
    expect(coordinationCheck(() => ({ etcd, redis: { ...redis, up: false } }))()).toMatchObject({ status: 'degraded', detail: expect.stringContaining('Redis unreachable') });
    expect(coordinationCheck(() => ({ etcd: { ...etcd, leader: undefined }, redis }))()).toEqual({ status: 'degraded', detail: 'no leader elected' });
  });
});

describe('pull statistics', () => {
  it('are read from the aggregated worker metrics', () => {
    const stats = pullStatsFromMetrics(
      [
        '# HELP outpost_cache_requests_total x',
        'outpost_cache_requests_total{kind="blob",result="hit"} 93',
        'outpost_cache_requests_total{kind="blob",result="miss"} 5',
        'outpost_cache_requests_total{kind="blob",result="coalesced"} 2',
        'outpost_cache_requests_total{kind="manifest",result="hit"} 400',
        'outpost_served_bytes_total{source="cache"} 1000',
        'outpost_served_bytes_total{source="fill"} 10',
        'outpost_upstream_fetched_bytes_total 10',
      ].join('\n'),
    );
    expect(stats).toEqual({ blobHits: 93, blobLookups: 100, servedFromCache: 1000, servedFromFill: 10, fetchedUpstream: 10 });
    expect(hitRatio(stats)).toBe(0.93);
    expect(hitRatio(pullStatsFromMetrics(''))).toBe(0);
  });
});
