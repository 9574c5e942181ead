/**
 * An etcd3 client whose every call is bounded, so a dead etcd costs a node a
 * short timeout, never a hung request or startup.
 *
 * etcd3's defaults are built for patience: calls without deadline, three
 * retries, a per-host circuit breaker that stays open 5 s after etcd is back,
 * and watch reconnects backing off to 30 s. Here: a deadline on every unary
 * call, no library-level retry (the replica set's own loop retries with
 * backoff), a breaker that only skips a failing endpoint for a second, and
 * watch reconnects within a second of etcd's return.
 *
 * Error contract: every call rejects with an etcd3 error (`GRPCUnavailableError`,
 * `GRPCDeadlineExceededError`, ...) within `callTimeoutMs` when etcd does not
 * answer; nothing is queued while it is down.
 */
import { ConsecutiveBreaker, ExponentialBackoff, circuitBreaker, handleWhen, noop } from 'cockatiel';
import { Etcd3, isRecoverableError } from 'etcd3';

export interface EtcdClientOptions {
  /** `http(s)://[user:password@]host:port` URLs; credentials in the first URL that has them authenticate. */
  endpoints: readonly string[];
  callTimeoutMs: number;
}

export function createEtcdClient(options: EtcdClientOptions): Etcd3 {
  let auth: { username: string; password: string } | undefined;
  const hosts = options.endpoints.map((endpoint) => {
    const url = new URL(endpoint);
    if (auth === undefined && url.username !== '') {
      auth = { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
    }
    return `${url.protocol}//${url.host}`;
  });
  return new Etcd3({
    hosts,
    ...(auth === undefined ? {} : { auth: { ...auth, callOptions: () => ({ deadline: Date.now() + options.callTimeoutMs }) } }),
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + options.callTimeoutMs }),
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1_000,
    },
    faultHandling: {
      global: noop,
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1_000, breaker: new ConsecutiveBreaker(3) }),
      // etcd3 calls next() on this for each first delay, so a first step of the factory serves.
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1_000 }).next(),
    },
  });
}
