/** Outpost's own credentials against a real distribution registry: htpasswd Basic auth, and token auth with a token issuer. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../support/cleanup.ts';
import { startDistribution, type DistributionRegistry } from '../support/distribution.ts';
import { makeImage, makeLayer, pushImage, type Image } from '../support/images.ts';
import { startOutpost, type OutpostNode } from '../support/outpost.ts';
import { ociLayoutManifestDigests, skopeoCopy } from '../support/skopeo.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';
import { startTokenIssuer, type TokenIssuer } from '../support/token-issuer.ts';

const cleanup = createCleanupStack();
afterAll(() => cleanup.run());

const admin = { username: 'admin', password: 'admin-secret' };
const reader = { username: 'mirror', password: 'mirror-secret' };

async function pullThrough(outpost: OutpostNode, repo: string): Promise<string[]> {
  const dir = await makeTempDir('auth-pull');
  cleanup.add(() => removeTempDir(dir));
  await skopeoCopy(`docker://${outpost.host}/${repo}:v1`, `oci:${dir}:v1`);
  return ociLayoutManifestDigests(dir);
}

function image(seed: string): Image {
  return makeImage({ mediaTypes: 'oci', layers: [makeLayer({ sizeBytes: 100_000, seed })] });
}

describe('a primary with htpasswd Basic auth', () => {
  let registry: DistributionRegistry;
  const pushed = image('basic');

  beforeAll(async () => {
    registry = await startDistribution({ auth: 'htpasswd', users: [admin, reader] });
    cleanup.add(() => registry.dispose());
    await pushImage(registry.url, 'private/app', 'v1', pushed, admin);
  }, 60_000);

  it('pulls with the configured credentials', async () => {
    const outpost = await startOutpost({
      upstreamUrl: registry.url,
      env: { OUTPOST_UPSTREAM_USERNAME: reader.username, OUTPOST_UPSTREAM_PASSWORD: reader.password },
    });
    cleanup.add(() => outpost.dispose());
    expect(await pullThrough(outpost, 'private/app')).toEqual([pushed.digest]);
    expect(outpost.output()).not.toContain(reader.password);
  });

  it('answers DENIED, not the content, when Outpost has no credentials', async () => {
    const outpost = await startOutpost({ upstreamUrl: registry.url });
    cleanup.add(() => outpost.dispose());
    const res = await fetch(`${outpost.url}/v2/private/app/manifests/v1`);
    expect(res.status).toBe(403);
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("DENIED");
  });
});

describe('a primary with token auth', () => {
  let issuer: TokenIssuer;
  let registry: DistributionRegistry;
  const pushed = image('token');

  beforeAll(async () => {
    issuer = await startTokenIssuer({
      users: [
        { ...admin, actions: ['*'] },
        { ...reader, actions: ['pull'] },
      ],
    });
    cleanup.add(() => issuer.stop());
    registry = await startDistribution({ auth: 'token', token: issuer });
    cleanup.add(() => registry.dispose());
    await pushImage(registry.url, 'private/app', 'v1', pushed, admin);
  }, 60_000);

  it('pulls through the Bearer token flow and reuses the token per scope', async () => {
    const outpost = await startOutpost({
      upstreamUrl: registry.url,
      workers: 1,
      env: { OUTPOST_UPSTREAM_USERNAME: reader.username, OUTPOST_UPSTREAM_PASSWORD: reader.password },
    });
    cleanup.add(() => outpost.dispose());
    const before = issuer.requests();
    expect(await pullThrough(outpost, 'private/app')).toEqual([pushed.digest]);
    // One worker, one repository: one token for the whole pull (manifest, config and layer).
    expect(issuer.requests() - before).toBe(1);
  });

  it('pulls anonymously when the issuer grants anonymous pulls', async () => {
    const open = await startTokenIssuer({ users: [{ ...admin, actions: ['*'] }], anonymousActions: ['pull'] });
    cleanup.add(() => open.stop());
    const openRegistry = await startDistribution({ auth: 'token', token: open });
    cleanup.add(() => openRegistry.dispose());
    const publicImage = image('anonymous');
    await pushImage(openRegistry.url, 'public/app', 'v1', publicImage, admin);
    const outpost = await startOutpost({ upstreamUrl: openRegistry.url });
    cleanup.add(() => outpost.dispose());
    expect(await pullThrough(outpost, 'public/app')).toEqual([publicImage.digest]);
  });
});
