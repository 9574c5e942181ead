/**
 * The least a caching mirror written in Node does for a cold pull, as an
 * anchor for the `cold-pull` scenario: one process that forwards every
 * request to the primary with undici and, for a blob GET, hashes the body
 * with sha256 and writes it to a file while it streams it to the client.
 * No cache lookup, no verification before the last byte, no fsync, no
 * coalescing, no metrics or logs. What Outpost takes beyond this relay is
 * its own cost; what the relay takes beyond the direct pull is the floor
 * of any Node mirror on this machine.
 *
 *   node --import tsx bench/node-relay.ts <port> <upstream-url> <dir>
 *
 * Started and stopped by `startNodeRelay` below (bench only: it trusts the
 * primary and its clients, and keeps no file it writes).
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import http from 'node:http';
import path, { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { freePort } from '../test/support/ports.ts';
import { startProcess, type ProcessHandle } from '../test/support/process.ts';
import { makeTempDir, removeTempDir } from '../test/support/temp.ts';
import { waitFor } from '../test/support/wait.ts';

const FORWARDED_REQUEST = ['accept', 'range', 'if-none-match'];
const FORWARDED_RESPONSE = ['content-type', 'content-length', 'content-range', 'docker-content-digest', 'etag', 'docker-distribution-api-version', 'location', 'link'];

function serve(port: number, upstream: string, dir: string): void {
  const agent = new Agent({ connections: 16 });
  let files = 0;
  http
    .createServer((req, res) => {
      const headers = Object.fromEntries(FORWARDED_REQUEST.flatMap((name) => (req.headers[name] === undefined ? [] : [[name, String(req.headers[name])]])));
      request(new URL(req.url ?? '/', upstream), { method: req.method === 'HEAD' ? 'HEAD' : 'GET', headers, dispatcher: agent })
        .then(({ statusCode, headers: answer, body }) => {
          res.writeHead(statusCode, Object.fromEntries(FORWARDED_RESPONSE.flatMap((name) => (answer[name] === undefined ? [] : [[name, answer[name]!]]))));
          const blob = req.method === 'GET' && statusCode === 200 && /\/blobs\/sha256:[a-f0-9]{64}$/.test(req.url ?? '');
          const file = blob ? createWriteStream(join(dir, String((files += 1)))) : undefined;
          const hash = blob ? createHash('sha256') : undefined;
          body.on('data', (chunk: Buffer) => {
            hash?.update(chunk);
            const fileFull = file !== undefined && !file.write(chunk);
            if (!res.write(chunk) || fileFull) {
              body.pause();
              let waiting = (fileFull ? 1 : 0) + (res.writableNeedDrain ? 1 : 0);
              const resume = (): void => void (--waiting <= 0 && body.resume());
              if (fileFull) file.once('drain', resume);
              if (res.writableNeedDrain) res.once('drain', resume);
              if (waiting === 0) body.resume();
            }
          });
          body.on('end', () => {
            hash?.digest('hex'); // the digest a mirror checks before its last byte: computed for its cost, not compared
            file?.end();
            res.end();
          });
          body.on('error', () => {
            file?.destroy();
            res.destroy();
          });
          res.on('close', () => body.destroy());
        })
        .catch(() => res.destroy());
    })
    .listen(port, '127.0.0.1');
}

export interface NodeRelay {
  url: string;
  host: string;
  readonly pid: number | undefined;
  /** Restarts the relay with an empty directory (each round, as the mirrors are). */
  reset(): Promise<void>;
  dispose(): Promise<void>;
}

export async function startNodeRelay(upstreamUrl: string): Promise<NodeRelay> {
  let dir = await makeTempDir('bench-node-relay');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const start = async (): Promise<ProcessHandle> => {
    const child = await startProcess(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), String(port), upstreamUrl, dir], { name: 'node relay' });
    await waitFor(async () => (await fetch(`${url}/v2/`).catch(() => undefined))?.status === 200, { what: 'the node relay to answer /v2/', timeoutMs: 30_000 });
    return child;
  };
  let child = await start();
  return {
    url,
    host: `127.0.0.1:${port}`,
    get pid() {
      return child.pid;
    },
    async reset() {
      // A fresh process and an empty directory each round, as the mirrors get.
      await child.stop({ graceMs: 5_000 });
      await removeTempDir(dir);
      dir = await makeTempDir('bench-node-relay');
      child = await start();
    },
    async dispose() {
      await child.stop({ graceMs: 5_000 });
      await removeTempDir(dir);
    },
  };
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [port, upstream, dir] = process.argv.slice(2);
  if (port === undefined || upstream === undefined || dir === undefined) {
    process.stderr.write('usage: node --import tsx bench/node-relay.ts <port> <upstream-url> <dir>\n');
    process.exit(2);
  }
  serve(Number(port), upstream, dir);
}
