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
});
