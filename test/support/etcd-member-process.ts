/**
 * A replica-set member alone in its own process, so a test can SIGKILL it:
 * `node --import tsx test/support/etcd-member-process.ts` with ETCD_URL,
 * CLUSTER, NODE_ID, SECRET and TTL_SECONDS in the environment. Prints
 * `joined` once it is a member, then one JSON line per state change.
 */
import { testEtcdMember } from './etcd-member.ts';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const nodeId = env('NODE_ID');
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const set = testEtcdMember({
  etcdUrl: env('ETCD_URL'),
  cluster: env('CLUSTER'),
  nodeId,
  secret: env('SECRET'),
  leaseTtlSeconds: Number(env('TTL_SECONDS')),
  heartbeatMs: 500,
  logger: quiet,
  onChange: (state) => process.stdout.write(`${JSON.stringify(state)}\n`),
});
await set.start();
process.stdout.write('joined\n');
process.on('SIGTERM', () => void set.stop().then(() => process.exit(0)));
