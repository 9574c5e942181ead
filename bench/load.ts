/**
 * Request-rate load with autocannon's programmatic API: a fixed number of
 * keep-alive connections cycling over a list of paths for a fixed time.
 * Every target gets exactly the same settings.
 */
import autocannon, { type AutocannonClient } from 'autocannon';

export interface LoadOptions {
  /** Base URL of the target, e.g. http://127.0.0.1:5000 */
  url: string;
  method: 'GET' | 'HEAD';
  /** Paths the connections cycle over (each connection walks the list in order). */
  paths: readonly string[];
  headers?: Record<string, string>;
  connections: number;
  durationS: number;
}

export interface LoadResult {
  /** 2xx responses per second over the run. */
  requestsPerSec: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  /** Response bytes (headers and bodies) per second. */
  bytesPerSec: number;
  durationS: number;
  statusCodes: Record<string, number>;
}

/**
 * autocannon's response parser (http-parser-js) is not told when a request
 * was a HEAD, so it waits for the Content-Length body that never comes. A
 * headers-complete callback that returns true tells the parser there is no
 * body; this wraps the callback autocannon installs on each connection.
 */
function headResponsesHaveNoBody(client: AutocannonClient): void {
  const parser = client.parser as Record<number, unknown> & { constructor: { kOnHeadersComplete: number } };
  const key = parser.constructor.kOnHeadersComplete;
  let wrapped: unknown;
  Object.defineProperty(parser, key, {
    configurable: true,
    get: () => wrapped,
    set: (fn: (...args: unknown[]) => unknown) => {
      wrapped = (...args: unknown[]) => {
        fn(...args);
        return true;
      };
    },
  });
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const result = await autocannon({
    url: options.url,
    connections: options.connections,
    duration: options.durationS,
    pipelining: 1,
    timeout: 10,
    requests: options.paths.map((path) => ({ method: options.method, path, headers: options.headers ?? {} })),
    ...(options.method === 'HEAD' ? { setupClient: headResponsesHaveNoBody } : {}),
  });
  const statusCodes: Record<string, number> = {};
  for (const [code, { count }] of Object.entries(result.statusCodeStats)) statusCodes[code] = count;
  return {
    requestsPerSec: result['2xx'] / result.duration,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    bytesPerSec: result.throughput.total / result.duration,
    durationS: result.duration,
    statusCodes,
  };
}
