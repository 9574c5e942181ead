/** `outpost prefetch`: the display on a terminal and in a log, and the exit status for what the node answers. */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { followPrefetchStream, runPrefetchCommand } from '../../../src/cli/prefetch-command.ts';
import { PrefetchDisplay } from '../../../src/cli/prefetch-display.ts';
import { createCleanupStack } from '../../support/cleanup.ts';

const cleanup = createCleanupStack();
afterEach(() => cleanup.run());

const a = 'registry-1.docker.io/library/nginx:1.27';
const b = 'ghcr.io/org/app:v1';
const progress = (image: string, blobsDone: number, bytesDone: number) => ({ progress: { image, blobsDone, blobsTotal: 14, bytesDone, bytesTotal: 70_000_000 } });
const ok = (image: string, cachedBlobs = 0) => ({ result: { image, ok: true, digest: `sha256:${'b'.repeat(64)}`, blobs: 14, bytes: 70_000_000, cachedBlobs } });
const failed = (image: string) => ({ result: { image, ok: false, digest: null, blobs: 0, bytes: 0, cachedBlobs: 0, error: 'manifest: MANIFEST_UNKNOWN: manifest unknown' } });
const summary = (failedCount: number) => ({ summary: { images: 2, warmed: 2 - failedCount, skipped: 0, failed: failedCount, blobs: 14, bytes: 70_000_000 } });
const ndjson = (values: unknown[]): string => values.map((v) => `${JSON.stringify(v)}\n`).join('');

/** What a terminal shows after `text`: cursor up, clear line and newlines, the sequences the display uses. */
function screen(text: string): string[] {
  const lines: string[] = [''];
  let row = 0;
  for (let i = 0; i < text.length; ) {
    const up = /^\x1b\[(\d+)A/.exec(text.slice(i));
    if (up) {
      row = Math.max(0, row - Number(up[1]));
      i += up[0].length;
      continue;
    }
    if (text.startsWith('\x1b[2K\r', i)) {
      lines[row] = '';
      i += 5;
      continue;
    }
    const ch = text[i]!;
    if (ch === '\n') {
      row += 1;
      if (lines[row] === undefined) lines[row] = '';
    } else lines[row] += ch;
    i += 1;
  }
  return lines.filter((line) => line !== '');
}

function io(tty: boolean) {
  const captured = { out: '', err: '' };
  return { captured, io: { tty, out: (t: string) => void (captured.out += t), err: (t: string) => void (captured.err += t) } };
}

describe('prefetch display', () => {
  const stream = [progress(a, 0, 0), progress(b, 1, 1_000_000), progress(a, 12, 61_200_000), ok(a, 3), failed(b), summary(1)];

  it('redraws one line per image in place on a terminal', async () => {
    const { captured, io: out } = io(true);
    const display = new PrefetchDisplay(out);
    const totals = await followPrefetchStream(Readable.from([ndjson(stream.slice(0, 3))]), display);
    expect(totals).toBeUndefined();
    expect(screen(captured.out)).toEqual([`${a}  12/14 blobs  61.2/70.0 MB`, `${b}  1/14 blobs  1.0/70.0 MB`]);
    const rest = await followPrefetchStream(Readable.from([ndjson(stream.slice(3))]), display);
    display.summary(rest!);
    expect(screen(captured.out)).toEqual([
      `${a}  14/14 blobs  70.0/70.0 MB  done (3 already cached)`,
      `${b}  failed: manifest: MANIFEST_UNKNOWN: manifest unknown`,
      'prefetch: 2 images: 1 warmed, 0 skipped, 1 failed; 14 blobs, 70.0 MB',
    ]);
    expect(captured.err).toBe(`outpost prefetch: ${b}: manifest: MANIFEST_UNKNOWN: manifest unknown\n`);
  });

  it('cuts lines to the terminal width, so a redraw never wraps', async () => {
    const { captured, io: out } = io(true);
    const display = new PrefetchDisplay({ ...out, columns: 30 });
    await followPrefetchStream(Readable.from([ndjson([progress(a, 1, 1)])]), display);
    expect(screen(captured.out)).toEqual([`${a.slice(0, 28)}…`]);
  });

  it('writes a line per image when it ends, and no control sequences, elsewhere', async () => {
    const { captured, io: out } = io(false);
    const display = new PrefetchDisplay(out);
    display.summary((await followPrefetchStream(Readable.from(ndjson(stream).match(/[\s\S]{1,17}/g)!), display))!);
    expect(captured.out).not.toContain('\x1b');
    expect(captured.out.split('\n').filter(Boolean)).toEqual([
      `${a}  14/14 blobs  70.0/70.0 MB  done (3 already cached)`,
      `${b}  failed: manifest: MANIFEST_UNKNOWN: manifest unknown`,
      'prefetch: 2 images: 1 warmed, 0 skipped, 1 failed; 14 blobs, 70.0 MB',
    ]);
  });

  it('refuses a line that is not part of the protocol', async () => {
    const { io: out } = io(false);
    await expect(followPrefetchStream(Readable.from([ndjson([{ result: { image: a, ok: true } }])]), new PrefetchDisplay(out))).rejects.toThrow(/blobs/);
  });
});

describe('outpost prefetch', () => {
  async function node(answer: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<{ url: string; bodies: string[] }> {
    const bodies: string[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        bodies.push(body);
        answer(req, res, body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.add(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies };
  }
  const streaming = (values: unknown[]) => (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.end(ndjson(values));
  };
  const run = async (args: string[]) => {
    const { captured, io: out } = io(false);
    const code = await runPrefetchCommand(args, {}, out);
    return { code, ...captured };
  };

  it('exits 0 when every image was warmed, sending the images and platforms', async () => {
    const { url, bodies } = await node(streaming([ok(a), ok(b), summary(0)]));
    const result = await run(['nginx:1.27', 'ghcr.io/org/app:v1', '--platform', 'linux/amd64', '--platform=linux/arm64/v8', '--url', url, '--token', 't']);
    expect(result).toMatchObject({ code: 0, err: '' });
    expect(JSON.parse(bodies[0]!)).toEqual({ images: ['nginx:1.27', 'ghcr.io/org/app:v1'], platforms: ['linux/amd64', 'linux/arm64/v8'] });
  });

  it('exits 1 naming each image that failed', async () => {
    const { url } = await node(streaming([ok(a), failed(b), summary(1)]));
    const result = await run(['nginx:1.27', 'ghcr.io/org/app:v1', '--url', url, '--token', 't']);
    expect(result.code).toBe(1);
    expect(result.err).toContain(b);
  });

  it('exits 1 when the answer ends before the summary or is garbage', async () => {
    const cut = await node(streaming([ok(a)]));
    expect((await run(['x', '--url', cut.url, '--token', 't'])).code).toBe(1);
    const garbage = await node((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.end('<html>\n');
    });
    expect(await run(['x', '--url', garbage.url, '--token', 't'])).toMatchObject({ code: 1, err: expect.stringContaining('broke off') });
  });

  it('exits 2 for usage errors, and for a reference the node refuses as malformed', async () => {
    expect((await run(['--token', 't'])).code).toBe(2);
    expect((await run(['x', '--platform', 'linux', '--token', 't'])).code).toBe(2);
    expect((await run(['x', '--frobnicate', '--token', 't'])).code).toBe(2);
    const refusing = await node((_req, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'NAME_INVALID', message: 'images[0] "Bad": invalid repository name' }] }));
    });
    expect(await run(['Bad', '--url', refusing.url, '--token', 't'])).toMatchObject({ code: 2, err: expect.stringContaining('NAME_INVALID') });
  });

  it('exits 1 with a hint when the node refuses the token or cannot be reached', async () => {
    const refusing = await node((_req, res) => {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'no' }] }));
    });
    expect(await run(['x', '--url', refusing.url, '--token', 't'])).toMatchObject({ code: 1, err: expect.stringContaining('admin token') });
    expect(await run(['x', '--url', 'http://127.0.0.1:1', '--token', 't'])).toMatchObject({ code: 1, err: expect.stringContaining('cannot reach the node') });
  });
});
