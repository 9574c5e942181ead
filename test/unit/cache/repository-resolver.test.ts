import { describe, expect, it } from 'vitest';
import { RepositoryResolver, type UpstreamEntry } from '../../../src/cache/repository-resolver.ts';
import { FakeUpstream } from '../../support/fake-upstream.ts';

function entry(host: string, dockerHub = false, aliases: string[] = []): UpstreamEntry {
  return { host, aliases, upstream: new FakeUpstream(), dockerHub };
}

describe('RepositoryResolver', () => {
  const hub = entry('registry-1.docker.io', true, ['docker.io', 'index.docker.io']);
  const ghcr = entry('ghcr.io');
  const resolver = new RepositoryResolver(hub, [ghcr]);

  it("normalises Docker Hub official images under library/", () => {
    expect(resolver.resolve('nginx', undefined)).toMatchObject({ upstreamKey: 'registry-1.docker.io', name: 'library/nginx' });
    expect(resolver.resolve('bitnami/redis', undefined).name).toBe('bitnami/redis');
  });

  it("picks the primary named by containerd's ns parameter", () => {
    expect(resolver.resolve('org/app', 'ghcr.io')).toMatchObject({ upstreamKey: 'ghcr.io', name: 'org/app' });
    expect(resolver.resolve('nginx', 'docker.io')).toMatchObject({ upstreamKey: 'registry-1.docker.io', name: 'library/nginx' });
  });

  it('picks the primary named by the first path component', () => {
    expect(resolver.resolve('ghcr.io/org/app', undefined)).toMatchObject({ upstreamKey: 'ghcr.io', name: 'org/app' });
    expect(resolver.resolve('docker.io/nginx', undefined)).toMatchObject({ upstreamKey: 'registry-1.docker.io', name: 'library/nginx' });
  });

  it('keeps names whose first component only looks like a host on the default primary', () => {
    expect(resolver.resolve('my.org/app', undefined)).toMatchObject({ upstreamKey: 'registry-1.docker.io', name: 'my.org/app' });
  });

  it('refuses an ns it has no primary for instead of serving another registry’s image', () => {
    expect(() => resolver.resolve('org/app', 'quay.io')).toThrowError(expect.objectContaining({ code: 'NAME_UNKNOWN' }));
  });

  describe('with a default primary that mirrors Docker Hub', () => {
    const mirror = entry('127.0.0.1:5000', true, ['docker.io']);
    const mirrored = new RepositoryResolver(mirror, [ghcr]);

    it('gives containerd (ns=docker.io), dockerd (no ns) and a docker.io/ prefix the same repository and cache key', () => {
      const expected = { upstreamKey: '127.0.0.1:5000', name: 'library/alpine' };
      expect(mirrored.resolve('library/alpine', 'docker.io')).toMatchObject(expected);
      expect(mirrored.resolve('alpine', 'docker.io')).toMatchObject(expected);
      expect(mirrored.resolve('alpine', undefined)).toMatchObject(expected);
      expect(mirrored.resolve('docker.io/alpine', undefined)).toMatchObject(expected);
      expect(mirrored.resolve('alpine', '127.0.0.1:5000')).toMatchObject(expected);
      expect(mirrored.resolve('alpine', 'docker.io').upstream).toBe(mirror.upstream);
    });

    it('answers to its names whatever their case', () => {
      expect(mirrored.keyOf('Docker.IO')).toBe('127.0.0.1:5000');
      expect(mirrored.keyOf('index.docker.io')).toBeUndefined();
    });
  });

  it('leaves single-component names alone on a primary that is not Docker Hub', () => {
    const plain = new RepositoryResolver(entry('registry.corp'), []);
    expect(plain.resolve('alpine', undefined)).toMatchObject({ upstreamKey: 'registry.corp', name: 'alpine' });
    expect(plain.resolve('alpine', 'registry.corp').name).toBe('alpine');
  });
});
