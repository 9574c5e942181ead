/**
 * Resolves a pinned image reference (`library/nginx:1.27`, `repo@sha256:…`)
 * to every digest it needs — the manifest, each platform's manifest of an
 * index, their configs and layers — and makes sure they are cached.
 */
import { RegistryError } from '../registry/errors.ts';
import { isIndexMediaType } from '../registry/media-types.ts';
import { parseReference, validateName, type Reference } from '../registry/reference.ts';
import type { BlobService } from './blob-service.ts';
import type { Manifest, ManifestService } from './manifest-service.ts';
import type { RepositoryResolver } from './repository-resolver.ts';

interface Descriptor {
  digest?: unknown;
}

export function parseImageReference(reference: string): { name: string; reference: Reference } {
  const at = reference.indexOf('@');
  if (at > 0) return { name: validateName(reference.slice(0, at)), reference: parseReference(reference.slice(at + 1)) };
  const colon = reference.lastIndexOf(':');
  const slash = reference.lastIndexOf('/');
  if (colon > slash && colon > 0) return { name: validateName(reference.slice(0, colon)), reference: parseReference(reference.slice(colon + 1)) };
  return { name: validateName(reference), reference: parseReference('latest') };
}

function referenced(manifest: Manifest): { manifests: string[]; blobs: string[] } {
  const body = JSON.parse(manifest.body.toString('utf8')) as { config?: Descriptor; layers?: Descriptor[]; manifests?: Descriptor[] };
  const digests = (list: (Descriptor | undefined)[] | undefined): string[] =>
    (list ?? []).map((d) => d?.digest).filter((d): d is string => typeof d === 'string');
  if (isIndexMediaType(manifest.mediaType)) return { manifests: digests(body.manifests), blobs: [] };
  return { manifests: [], blobs: digests([body.config, ...(body.layers ?? [])]) };
}

export class PinResolver {
  constructor(
    private readonly resolver: RepositoryResolver,
    private readonly manifests: ManifestService,
    private readonly blobs: BlobService,
  ) {}

  async resolve(image: string, signal: AbortSignal): Promise<string[]> {
    const { name, reference } = parseImageReference(image);
    const target = this.resolver.resolve(name, undefined);
    const top = await this.manifests.get(target, reference, signal);
    const digests = new Set<string>([top.digest]);
    const pending = [top];
    const blobs = new Set<string>();
    while (pending.length > 0) {
      const manifest = pending.pop()!;
      const refs = referenced(manifest);
      for (const blob of refs.blobs) blobs.add(blob);
      for (const child of refs.manifests) {
        if (digests.has(child)) continue;
        digests.add(child);
        pending.push(await this.manifests.byDigest(target, child, signal));
      }
    }
    for (const blob of blobs) {
      digests.add(blob);
      await this.warm(target, blob, signal);
    }
    return [...digests];
  }

  private async warm(target: { upstream: Parameters<BlobService['open']>[0]['upstream']; name: string }, digest: string, signal: AbortSignal): Promise<void> {
    const source = await this.blobs.open(target, digest, signal);
    if (source.kind === 'local') {
      await source.blob.close();
      return;
    }
    try {
      for await (const _chunk of source.body) {
        // drain: the fill caches it
      }
    } catch (err) {
      throw err instanceof RegistryError ? err : new RegistryError('UNKNOWN', 'pinned blob could not be cached', { cause: err });
    } finally {
      source.cancel();
    }
  }
}
