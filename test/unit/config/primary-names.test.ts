import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type LoadConfigOptions, loadConfig } from '../../../src/config/load.ts';
import { configError } from './config-error.ts';

const machine = { hostname: 'outpost-test-host', cpus: 3 };
const load = (options: LoadConfigOptions = {}) => loadConfig({ machine, ...options });


let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'outpost-names-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function yamlFile(lines: string[]): Promise<string> {
  const file = path.join(dir, 'outpost.yaml');
  await fs.writeFile(file, lines.join('\n'));
  return file;
}

describe('the names of the default primary', () => {
  it('answers to Docker Hub’s names when its url is Docker Hub', () => {
    const { host, aliases, dockerHub } = load().upstream;
    expect({ host, aliases, dockerHub }).toEqual({ host: 'registry-1.docker.io', aliases: ['docker.io', 'index.docker.io'], dockerHub: true });
  });

  it('is only its url’s host, without library/ names, for any other registry', () => {
    const { host, aliases, dockerHub } = load({ env: { OUTPOST_UPSTREAM_URL: 'https://registry.corp:5000' } }).upstream;
    expect({ host, aliases, dockerHub }).toEqual({ host: 'registry.corp:5000', aliases: [], dockerHub: false });
  });

  it('declares a mirror of Docker Hub in the config file: docker.io is an alias and library/ applies', async () => {
    const file = await yamlFile(['upstream:', '  url: https://harbor.corp/', '  aliases: [docker.io]', '  dockerHub: true']);
    const { host, aliases, dockerHub } = load({ file }).upstream;
    expect({ host, aliases, dockerHub }).toEqual({ host: 'harbor.corp', aliases: ['docker.io'], dockerHub: true });
  });

  it('follows Docker Hub conventions when an alias is a Docker Hub name, unless told otherwise', async () => {
    expect(load({ env: { OUTPOST_UPSTREAM_URL: 'https://harbor.corp', OUTPOST_UPSTREAM_ALIASES: 'Docker.io, docker.io' } }).upstream).toMatchObject({
      aliases: ['docker.io'],
      dockerHub: true,
    });
    const file = await yamlFile(['upstream:', '  url: https://harbor.corp', '  aliases: [docker.io]', '  dockerHub: false']);
    expect(load({ file }).upstream.dockerHub).toBe(false);
  });

  it('takes a declared host as its name and cache key, keeping the url’s Docker Hub names', () => {
    const upstream = load({ env: { OUTPOST_UPSTREAM_HOST: 'docker.io' } }).upstream;
    expect({ host: upstream.host, aliases: upstream.aliases }).toEqual({ host: 'docker.io', aliases: ['index.docker.io', 'registry-1.docker.io'] });
  });

  it('refuses an alias that is not a registry host, naming it', () => {
    const error = configError(() => load({ env: { OUTPOST_UPSTREAM_ALIASES: 'docker.io,https://ghcr.io' } }));
    expect(error.key).toBe('upstream.aliases[1]');
    expect(error.message).toContain('OUTPOST_UPSTREAM_ALIASES');
  });

  it('lets an auth rule name the primary by an alias', async () => {
    const htpasswd = path.join(dir, 'htpasswd');
    await fs.writeFile(htpasswd, 'alice:$2y$05$abcdefghijklmnopqrstuuJ1YzCq7ZV6h8lQXhJ3m3hA1V3p3q3m.\n');
    const file = await yamlFile([
      'upstream:',
      '  url: http://127.0.0.1:5999',
      '  aliases: [docker.io]',
      'auth:',
      '  mode: basic',
      `  htpasswd: ${htpasswd}`,
      '  rules:',
      '    - repositories: ["*"]',
      '      users: [alice]',
      '      upstreams: [docker.io]',
    ]);
    expect(load({ file }).upstream.aliases).toEqual(['docker.io']);
  });
});

describe('registries that repeat a name', () => {
  it('refuses an entry for a host the default primary answers to as an alias, naming both', async () => {
    const file = await yamlFile([
      'upstream:',
      '  url: https://harbor.corp',
      '  aliases: [docker.io]',
      'registries:',
      '  - host: docker.io',
      '    url: https://mirror.gcr.io',
    ]);
    const error = configError(() => load({ file }));
    expect(error.key).toBe('registries[0].host');
    expect(error.value).toBe('docker.io');
    expect(error.message).toContain('docker.io is already a name of the default primary (upstream.aliases)');
    expect(error.problems).toHaveLength(1);
    expect(error.message).toContain(file);
  });

  it('refuses an entry for docker.io while the default primary is Docker Hub itself', async () => {
    const file = await yamlFile(['registries:', '  - host: docker.io', '    url: https://harbor.corp']);
    const error = configError(() => load({ file }));
    expect(error.key).toBe('registries[0].host');
    expect(error.message).toContain('docker.io is already a name of the default primary (implied by a Docker Hub upstream.url)');
  });

  it('refuses an entry for the default primary’s own host', async () => {
    const file = await yamlFile(['upstream:', '  url: https://registry.corp', 'registries:', '  - host: registry.corp', '    url: https://registry.corp']);
    expect(configError(() => load({ file })).message).toContain('registries[0].host: registry.corp is already a name of the default primary (upstream.url)');
  });

  it('refuses an alias of one entry that is another entry’s host', async () => {
    const file = await yamlFile([
      'upstream:',
      '  url: https://registry.corp',
      'registries:',
      '  - host: ghcr.io',
      '    url: https://ghcr.io',
      '  - host: ghcr-mirror.corp',
      '    aliases: [ghcr.io]',
      '    url: https://ghcr-mirror.corp',
    ]);
    const error = configError(() => load({ file }));
    expect(error.key).toBe('registries[1].aliases');
    expect(error.message).toContain('ghcr.io is already a name of registries[0]');
  });

  it('gives registries aliases and Docker Hub conventions like the default primary', async () => {
    const file = await yamlFile([
      'upstream:',
      '  url: https://registry.corp',
      'registries:',
      '  - host: hub-mirror.corp',
      '    aliases: [docker.io]',
      '    url: https://hub-mirror.corp',
    ]);
    expect(load({ file }).registries[0]).toMatchObject({ host: 'hub-mirror.corp', aliases: ['docker.io'], dockerHub: true });
  });
});
