/**
 * Big-blob clients: N concurrent keep-alive connections (undici Pool), each
 * doing GETs one after another and either discarding the bytes (throughput
 * runs) or hashing them (correctness of cold, coalesced transfers).
 */
import { createHash } from 'node:crypto';
import { Pool } from 'undici';

export interface GetOutcome {
  status: number;
  bytes: number;
  /** `sha256:<hex>` of the body when hashing was asked for. */
  digest: string | undefined;
  ms: number;
  error: string | undefined;
}

export interface ParallelGetsResult {
  wallMs: number;
  bytes: number;
  outcomes: GetOutcome[];
}

async function getOnce(pool: Pool, path: string, hash: boolean): Promise<GetOutcome> {
  const started = performance.now();
  try {
    const { statusCode, body } = await pool.request({ method: 'GET', path });
    const hasher = hash ? createHash('sha256') : undefined;
    let bytes = 0;
    await new Promise<void>((resolve, reject) => {
      body.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hasher?.update(chunk);
      });
      body.once('end', resolve);
      body.once('error', reject);
    });
    return { status: statusCode, bytes, digest: hasher ? `sha256:${hasher.digest('hex')}` : undefined, ms: performance.now() - started, error: undefined };
  } catch (err) {
    return { status: 0, bytes: 0, digest: undefined, ms: performance.now() - started, error: (err as Error).message };
  }
}

/** `clients` connections start together; each does `getsPerClient` sequential GETs of `path`. */
export async function parallelGets(
  origin: string,
  path: string,
  options: { clients: number; getsPerClient: number; hash: boolean },
): Promise<ParallelGetsResult> {
  const pool = new Pool(origin, { connections: options.clients, pipelining: 1, headersTimeout: 600_000, bodyTimeout: 120_000 });
  try {
    const started = performance.now();
    const perClient = await Promise.all(
      Array.from({ length: options.clients }, async () => {
        const outcomes: GetOutcome[] = [];
        for (let i = 0; i < options.getsPerClient; i++) outcomes.push(await getOnce(pool, path, options.hash));
        return outcomes;
      }),
    );
    const wallMs = performance.now() - started;
    const outcomes = perClient.flat();
    return { wallMs, bytes: outcomes.reduce((sum, o) => sum + o.bytes, 0), outcomes };
  } finally {
    await pool.close();
  }
}
