/**
 * HTTPS with a private CA (made with openssl): skopeo and containerd pull
 * verifying the node's certificate, and SIGHUP swaps the certificate
 * without dropping a connection or restarting a worker.
 */
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { Agent, request, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startContainerd } from '../support/containerd.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { makeImage, makeLayer, pushImage, type Image } from '../support/images.ts';
import { childPids, startOutpost, type OutpostNode } from '../support/outpost.ts';
import { pullOciDigests, SkopeoError } from '../support/skopeo.ts';
import { runProcess } from '../support/process.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';
import { issueServerCert, makeTestCa, type TestCa, type TestServerCert } from '../support/tls.ts';
import { waitFor } from '../support/wait.ts';

const cleanup = createCleanupStack();
let dir: string;
let ca: TestCa;
let first: TestServerCert;
let second: TestServerCert;
let stranger: TestServerCert;
/** Only the CA certificate: what skopeo's --src-cert-dir reads (`*.crt`). */
let certDir: string;
let liveCert: string;
let liveKey: string;
let registry: DistributionRegistry;
let outpost: OutpostNode;
let image: Image;

const serialOf = (cert: TestServerCert): string => new X509Certificate(readFileSync(cert.cert)).serialNumber;
const expiryMetric = (cert: TestServerCert): string =>
  `outpost_tls_certificate_expiry_seconds ${new Date(new X509Certificate(readFileSync(cert.cert)).validTo).getTime() / 1000}\n`;

/** Replaces the live files the way a certificate tool does: write aside, then rename over. */
function install(cert: string, key: string): void {
  copyFileSync(cert, `${liveCert}.new`);
  copyFileSync(key, `${liveKey}.new`);
  renameSync(`${liveCert}.new`, liveCert);
  renameSync(`${liveKey}.new`, liveKey);
}

beforeAll(async () => {
  dir = await makeTempDir('tls');
  cleanup.add(() => removeTempDir(dir));
  ca = makeTestCa(dir);
  first = issueServerCert(ca, 'first', 'outpost-first');
  second = issueServerCert(ca, 'second', 'outpost-second');
  stranger = issueServerCert(ca, 'stranger', 'outpost-stranger');
  certDir = path.join(dir, 'client-certs');
  mkdirSync(certDir);
  copyFileSync(ca.caCert, path.join(certDir, 'ca.crt'));
  liveCert = path.join(dir, 'live.crt');
  liveKey = path.join(dir, 'live.key');
  install(first.cert, first.key);

  registry = await startDistribution();
  cleanup.add(() => registry.dispose());
  image = makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 200_000, seed: 'tls-1' })] });
  await pushImage(registry.url, 'team/tls', 'v1', image);
  outpost = await startOutpost({ upstreamUrl: registry.url, workers: 2, tls: { cert: liveCert, key: liveKey, ca: ca.caCert } });
  cleanup.add(() => outpost.dispose());
}, 120_000);
afterAll(() => cleanup.run());

/** A new TLS connection's certificate, verified against the CA. */
async function peerSerial(): Promise<string> {
  const socket = await new Promise<TLSSocket>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: outpost.port, ca: readFileSync(ca.caCert), servername: 'localhost' }, () => resolve(s));
    s.once('error', reject);
  });
  try {
    return socket.getPeerCertificate().serialNumber;
  } finally {
    socket.destroy();
  }
}

function get(agent: Agent, pathname: string): Promise<{ res: IncomingMessage; socket: TLSSocket; reused: boolean; body: string }> {
  const options: RequestOptions = { host: '127.0.0.1', port: outpost.port, path: pathname, agent, servername: 'localhost' };
  return new Promise((resolve, reject) => {
    const req = request(options, (res) => {
      // The agent takes the socket back once the response ends.
      const socket = res.socket as TLSSocket;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ res, socket, reused: req.reusedSocket, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const workerStarts = (): number => outpost.logs().filter((line) => line.msg === 'worker listening').length;

/** SIGHUP to every process of the node, as a signal to its whole process group would be. */
function hangUp(): void {
  const primary = outpost.pid!;
  for (const pid of childPids(primary)) process.kill(pid, 'SIGHUP');
  process.kill(primary, 'SIGHUP');
}

describe('HTTPS with a private CA', () => {
  it('skopeo pulls verifying the node’s certificate with the CA', async () => {
    const digests = await pullOciDigests(`${outpost.host}/team/tls:v1`, { srcCertDir: certDir });
    expect(digests).toEqual([image.digest]);
  });

  it('skopeo refuses the node when it does not trust the CA', async () => {
    const empty = path.join(dir, 'no-certs');
    mkdirSync(empty, { recursive: true });
    const error = await pullOciDigests(`${outpost.host}/team/tls:v1`, { srcCertDir: empty }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(SkopeoError);
    expect((error as SkopeoError).stderr).toMatch(/certificate/);
  });

  it('containerd pulls through a hosts.toml mirror with `ca =`', async () => {
    const containerd = await startContainerd();
    cleanup.add(() => containerd.stop());
    await containerd.mirror(registry.host, outpost.url, { ca: ca.caCert });
    const ref = `${registry.host}/team/tls:v1`;
    await containerd.pull(ref);
    expect(await containerd.imageDigest(ref)).toBe(image.digest);
  }, 120_000);
});

describe('certificate reload on SIGHUP', () => {
  it('gives new connections the new certificate while a keep-alive connection goes on, without restarting a worker', async () => {
    expect(await peerSerial()).toBe(serialOf(first));
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: readFileSync(ca.caCert) });
    cleanup.add(() => agent.destroy());
    const before = await get(agent, '/v2/');
    expect(before.res.statusCode).toBe(200);
    const socket = before.socket;
    expect(socket.getPeerCertificate().serialNumber).toBe(serialOf(first));
    const starts = workerStarts();
    const primaryPid = outpost.pid;
    expect((await get(agent, '/metrics')).body).toContain(expiryMetric(first));

    install(second.cert, second.key);
    hangUp();
    await waitFor(
      () => outpost.logs().some((line) => line.msg === 'TLS certificate reloaded by every worker' && line.serialNumber === serialOf(second)),
      { what: 'the primary to log that every worker reloaded the certificate', timeoutMs: 15_000 },
    );

    const after = await get(agent, '/v2/');
    expect(after.res.statusCode).toBe(200);
    expect(after.reused).toBe(true);
    expect(after.socket).toBe(socket);
    // The connection made before the reload still carries the certificate it was made with.
    expect(after.socket.getPeerCertificate().serialNumber).toBe(serialOf(first));
    // Every worker takes new connections; several give each a chance to answer.
    for (let i = 0; i < 6; i++) expect(await peerSerial()).toBe(serialOf(second));
    expect((await get(agent, '/metrics')).body).toContain(expiryMetric(second));
    expect(outpost.pid).toBe(primaryPid);
    expect(workerStarts()).toBe(starts);
    expect(outpost.logs().filter((line) => line.msg === 'worker died; restarting')).toEqual([]);
    const digests = await pullOciDigests(`${outpost.host}/team/tls:v1`, { srcCertDir: certDir });
    expect(digests).toEqual([image.digest]);
  }, 60_000);

  it('refuses a certificate and key that do not match, with a warning naming the key, and keeps the current one', async () => {
    const starts = workerStarts();
    install(stranger.cert, second.key);
    hangUp();
    await waitFor(
      () => outpost.logs().some((line) => line.msg?.toString().startsWith('TLS reload refused') === true && line.key === 'server.tlsKey' && line.level === 40),
      { what: 'a warning that the reload was refused', timeoutMs: 15_000 },
    );
    for (let i = 0; i < 4; i++) expect(await peerSerial()).toBe(serialOf(second));
    expect(workerStarts()).toBe(starts);
    const digests = await pullOciDigests(`${outpost.host}/team/tls:v1`, { srcCertDir: certDir });
    expect(digests).toEqual([image.digest]);
  }, 60_000);

  it('leaves a plain-HTTP node serving (Node would exit on SIGHUP by default)', async () => {
    const plain = await startOutpost({ upstreamUrl: registry.url, workers: 1 });
    cleanup.add(() => plain.dispose());
    const primary = plain.pid!;
    for (const pid of childPids(primary)) process.kill(pid, 'SIGHUP');
    process.kill(primary, 'SIGHUP');
    await waitFor(() => plain.logs().some((line) => String(line.msg).startsWith('SIGHUP: nothing to reload')), {
      what: 'the primary to log that there is nothing to reload',
    });
    expect((await fetch(`${plain.url}/v2/`)).status).toBe(200);
    expect(plain.pid).toBe(primary);
    expect(plain.logs().filter((line) => line.msg === 'worker died; restarting')).toEqual([]);
  });
});

describe('a certificate that does not fit at start', () => {
  it('stops the start with exit 2 and one line naming the key and the file, not a stack', async () => {
    const result = await runProcess(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve'], {
      cwd: path.resolve(import.meta.dirname, '../..'),
      env: { OUTPOST_TLS_CERT: first.cert, OUTPOST_TLS_KEY: second.key, OUTPOST_CACHE_DIR: path.join(dir, 'unused-cache'), OUTPOST_PORT: '5999' },
      timeoutMs: 30_000,
      name: 'outpost with a mismatched pair',
    });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`server.tlsKey: is not the key of the certificate in server.tlsCert (${first.cert})`);
    expect(result.stderr).toContain(second.key);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});
