/**
 * Resolves a pinned image reference (`library/nginx:1.27`, `repo@sha256:…`)
 * to every digest it needs — the manifest, each platform's manifest of an
 * index, their configs and layers — and makes sure they are cached.
 */
import type { Digest } from '../registry/digest.ts';
import { RegistryError } from '../registry/errors.ts';
import { parseManifest } from '../registry/manifest-references.ts';
import { parseReference, validateName, type Reference } from '../registry/reference.ts';
import { readIntoCache } from './blob-source.ts';
import type { BlobService } from './blob-service.ts';
import type { ManifestService } from './manifest-service.ts';
import type { BlobTarget } from './repository-target.ts';
import type { RepositoryResolver } from './repository-resolver.ts';

export function parseImageReference(reference: string): { name: string; reference: Reference } {
  const at = reference.indexOf('@');
  if (at > 0) return { name: validateName(reference.slice(0, at)), reference: parseReference(reference.slice(at + 1)) };
  const colon = reference.lastIndexOf(':');
  const slash = reference.lastIndexOf('/');
  if (colon > slash && colon > 0) return { name: validateName(reference.slice(0, colon)), reference: parseReference(reference.slice(colon + 1)) };
  return { name: validateName(reference), reference: parseReference('latest') };
}

export class PinResolver {
  constructor(
    private readonly resolver: RepositoryResolver,
    private readonly manifests: ManifestService,
    private readonly blobs: BlobService,
  ) {}

  async resolve(image: string, signal: AbortSignal): Promise<Digest[]> {
    const { name, reference } = parseImageReference(image);
    const target = this.resolver.resolve(name, undefined);
    const top = await this.manifests.get(target, reference, signal);
    const digests = new Set<Digest>([top.digest]);
    const pending = [top];
    const blobs = new Set<Digest>();
    while (pending.length > 0) {
      const manifest = pending.pop()!;
      const refs = parseManifest(manifest.body, manifest.mediaType);
      for (const blob of refs.blobs) blobs.add(blob.digest);
      for (const child of refs.manifests) {
        if (digests.has(child.digest)) continue;
        digests.add(child.digest);
        pending.push(await this.manifests.byDigest(target, child.digest, signal));
      }
    }
    for (const blob of blobs) {
      digests.add(blob);
      await this.warm(target, blob, signal);
    }
    return [...digests];
  }

  private async warm(target: BlobTarget, digest: Digest, signal: AbortSignal): Promise<void> {
    const source = await this.blobs.open(target, digest, signal);
    try {
      if (source.result === 'hit') return;
      // Read it through: the fill caches it.
      await readIntoCache(source, Buffer.allocUnsafe(256 * 1024), signal);
    } catch (err) {
      throw err instanceof RegistryError ? err : new RegistryError('UNKNOWN', 'pinned blob could not be cached', { cause: err });
    } finally {
      await source.close();
    }
  }
}
