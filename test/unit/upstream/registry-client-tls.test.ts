import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Upstream } from '../../../src/cache/ports.ts';
import { createRegistryClient } from '../../../src/upstream/registry-client.ts';
import { rejection, sendManifest, startServer, testConfig, type TestServer } from './helpers.ts';

const never = new AbortController().signal;

describe('registry client TLS', () => {
  let dir: string;
  let caFile: string;
  let registry: TestServer;
  const clients: Upstream[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'outpost-tls-'));
    caFile = join(dir, 'c.pem');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', caFile, '-days', '1',
        '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
      { stdio: 'ignore' },
    );
    registry = await startServer((_req, res) => sendManifest(res), {
      key: readFileSync(join(dir, 'k.pem'), 'utf8'),
      cert: readFileSync(caFile, 'utf8'),
    });
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await registry?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function client(...args: Parameters<typeof testConfig>): Upstream {
    const c = createRegistryClient(testConfig(...args), {});
    clients.push(c);
    return c;
  }

  it('talks to a self-signed primary when its certificate is in caFile', async () => {
    const manifest = await client(registry.url, { caFile }).getManifest('a/b', 'latest', 1 << 20, never);
    expect(manifest.digest).toMatch(/^sha256:/);
  });

  it('fails with UPSTREAM_UNREACHABLE without the CA, and does not retry', async () => {
    const before = registry.requests.length;
    const err = await rejection(client(registry.url, { retries: 2 }).getManifest('a/b', 'latest', 1 << 20, never));
    expect(err.code).toBe('UPSTREAM_UNREACHABLE');
    expect(registry.requests.length).toBe(before);
  });

  it('talks to it with insecure=true', async () => {
    const manifest = await client(registry.url, { insecure: true }).getManifest('a/b', 'latest', 1 << 20, never);
    expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
  });

  it('refuses to start with a caFile that cannot be read', () => {
    expect(() => createRegistryClient(testConfig(registry.url, { caFile: join(dir, 'missing.pem') }), {})).toThrow(/CA file/);
  });
});
