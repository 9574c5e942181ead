/** Images named as clients name them, routed like their pulls. */
import { describe, expect, it } from 'vitest';
import type { Upstream } from '../../../src/cache/ports.ts';
import { RepositoryResolver } from '../../../src/cache/repository-resolver.ts';
import { parseClientImageReference } from '../../../src/prefetch/image-reference.ts';

const upstream = {} as Upstream;
const resolver = new RepositoryResolver({ host: 'registry-1.docker.io', aliases: ['docker.io', 'index.docker.io'], upstream, dockerHub: true }, [
  { host: 'ghcr.io', aliases: [], upstream, dockerHub: false },
  { host: '127.0.0.1:5000', aliases: ['mirror.local:5000'], upstream, dockerHub: false },
]);
const digest = `sha256:${'c'.repeat(64)}`;

describe('client image references', () => {
  const cases: [string, string, string, string][] = [
    ['nginx', 'registry-1.docker.io', 'library/nginx', 'latest'],
    ['nginx:1.27', 'registry-1.docker.io', 'library/nginx', '1.27'],
    ['docker.io/nginx:1.27', 'registry-1.docker.io', 'library/nginx', '1.27'],
    ['bitnami/redis:7', 'registry-1.docker.io', 'bitnami/redis', '7'],
    ['ghcr.io/org/app:v1', 'ghcr.io', 'org/app', 'v1'],
    [`ghcr.io/org/app@${digest}`, 'ghcr.io', 'org/app', digest],
    ['127.0.0.1:5000/team/app', '127.0.0.1:5000', 'team/app', 'latest'],
    ['mirror.local:5000/team/app:v2', '127.0.0.1:5000', 'team/app', 'v2'],
  ];
  for (const [text, host, repository, reference] of cases) {
    it(`reads ${text}`, () => {
      expect(parseClientImageReference(text, resolver)).toEqual({ upstream: host, repository, reference });
    });
  }

  const bad: [string, string][] = [
    ['quay.io/org/app:v1', 'NAME_UNKNOWN'],
    ['localhost/app', 'NAME_UNKNOWN'],
    ['Nginx', 'NAME_INVALID'],
    ['team//app', 'NAME_INVALID'],
    ['nginx:-x', 'TAG_INVALID'],
    ['nginx@sha256:abc', 'DIGEST_INVALID'],
    ['', 'NAME_INVALID'],
    [`a/${'b'.repeat(600)}`, 'NAME_INVALID'],
  ];
  for (const [text, code] of bad) {
    it(`refuses ${text.slice(0, 40) || '""'} with ${code}`, () => {
      expect(() => parseClientImageReference(text, resolver)).toThrow(expect.objectContaining({ code }));
    });
  }
});
