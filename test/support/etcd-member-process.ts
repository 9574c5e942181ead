/**
 * A replica-set member alone in its own process, so a test can SIGKILL it:
 * `node --import tsx test/support/etcd-member-process.ts` with ETCD_URL,
 * CLUSTER, NODE_ID, SECRET and TTL_SECONDS in the environment. Prints
 * `joined` once it is a member, then one JSON line per state change.
 */
import { systemClock } from '../../src/cache/ports.ts';
import { createEtcdClient } from '../../src/coordination/etcd-client.ts';
import { EtcdReplicaSet } from '../../src/coordination/etcd-replica-set.ts';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const nodeId = env('NODE_ID');
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const set = new EtcdReplicaSet({
  client: createEtcdClient({ endpoints: [env('ETCD_URL')], callTimeoutMs: 1_000 }),
  clusterName: env('CLUSTER'),
  nodeId,
  leaseTtlSeconds: Number(env('TTL_SECONDS')),
  peerSecret: env('SECRET'),
  heartbeatMs: 500,
  record: () => ({
    node_id: nodeId,
    advertise_url: `http://${nodeId}.test:5000`,
    version: '0.0.0-test',
    started_at: new Date().toISOString(),
    health: { status: 'ok', problems: [], draining: false, disk_failing: false },
    cache_bytes: 0,
    hit_ratio: 0,
    fills_in_flight: 0,
  }),
  logger: quiet,
  clock: systemClock,
  onChange: (state) => process.stdout.write(`${JSON.stringify(state)}\n`),
});
await set.start();
process.stdout.write('joined\n');
process.on('SIGTERM', () => void set.stop().then(() => process.exit(0)));
