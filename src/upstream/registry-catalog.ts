/**
 * The primaries' listings for prefetch jobs (prefetch/ports.ts
 * RegistryCatalog), on the registry client: `_catalog` and `tags/list`
 * followed page by page through their `Link` headers (same origin only),
 * each page bounded in bytes, the whole listing in pages and items; and an
 * image's config `created`, read from its manifest and config blob (both
 * bounded and checked against their digests).
 */
import { UpstreamError, type Upstream } from '../cache/ports.ts';
import { platformSelected } from '../prefetch/platform-filter.ts';
import type { ImageRef, Pace, RegistryCatalog } from '../prefetch/ports.ts';
import { digestOf } from '../registry/digest.ts';
import { isIndexMediaType } from '../registry/media-types.ts';
import { parseManifest } from '../registry/manifest-references.ts';
import type { PrimaryNames, UpstreamConfig } from '../config/types.ts';
import { createRegistryClients, type RegistryClientDeps, type RegistryListing } from './registry-client.ts';

export interface CatalogPrimary {
  upstream: Upstream;
  listing: RegistryListing;
}

export interface RegistryCatalogLimits {
  /** Items asked per page (`n`). Default 100. */
  pageSize?: number;
  /** Pages followed per listing. Default 1000. */
  maxPages?: number;
  /** Items per listing; past it the listing fails (a silently cut list would select the wrong images). Default 100 000. */
  maxItems?: number;
  maxManifestBytes?: number;
  maxConfigBytes?: number;
}

const unpaced: Pace = () => Promise.resolve();

export class UpstreamRegistryCatalog implements RegistryCatalog {
  private readonly pageSize: number;
  private readonly maxPages: number;
  private readonly maxItems: number;
  private readonly maxManifestBytes: number;
  private readonly maxConfigBytes: number;

  /** `primaries`: by the primary's host (`PrimaryNames.host`). */
  constructor(
    private readonly primaries: ReadonlyMap<string, CatalogPrimary>,
    limits: RegistryCatalogLimits = {},
  ) {
    this.pageSize = limits.pageSize ?? 100;
    this.maxPages = limits.maxPages ?? 1_000;
    this.maxItems = limits.maxItems ?? 100_000;
    this.maxManifestBytes = limits.maxManifestBytes ?? 4 * 1024 * 1024;
    this.maxConfigBytes = limits.maxConfigBytes ?? 4 * 1024 * 1024;
  }

  listRepositories(upstream: string, signal: AbortSignal, pace: Pace = unpaced): AsyncIterable<string> {
    return this.pages(upstream, 'repositories', '', signal, pace);
  }

  listTags(upstream: string, repository: string, signal: AbortSignal, pace: Pace = unpaced): AsyncIterable<string> {
    return this.pages(upstream, 'tags', repository, signal, pace);
  }

  async imageCreated(ref: ImageRef, platforms: readonly string[], signal: AbortSignal, pace: Pace = unpaced): Promise<Date | undefined> {
    const { upstream } = this.primary(ref.upstream);
    const what = `${ref.repository}:${ref.reference}`;
    await pace();
    let response = await upstream.getManifest(ref.repository, ref.reference, this.maxManifestBytes, signal);
    let manifest = parseManifest(response.body, response.mediaType);
    for (let depth = 0; isIndexMediaType(manifest.mediaType); depth++) {
      const child = manifest.manifests.find(
        (m) => m.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest' && platformSelected(platforms, m.platform),
      );
      if (child === undefined || depth >= 2) return undefined;
      await pace();
      response = await upstream.getManifest(ref.repository, child.digest, this.maxManifestBytes, signal);
      if (digestOf(response.body) !== child.digest) throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `${what}: a child manifest does not match its digest`);
      manifest = parseManifest(response.body, response.mediaType);
    }
    const config = manifest.blobs[0];
    if (config === undefined) return undefined;
    if (config.size > this.maxConfigBytes) throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `${what}: image config larger than ${this.maxConfigBytes} bytes`);
    await pace();
    const blob = await upstream.getBlob(ref.repository, config.digest, signal);
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of blob.body) {
        size += (chunk as Buffer).length;
        if (size > config.size) throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `${what}: image config longer than its descriptor says`);
        chunks.push(chunk as Buffer);
      }
    } finally {
      blob.body.destroy();
    }
    const bytes = Buffer.concat(chunks);
    if (digestOf(bytes) !== config.digest) throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `${what}: image config does not match its digest`);
    return createdOf(bytes);
  }

  private primary(upstream: string): CatalogPrimary {
    const primary = this.primaries.get(upstream);
    if (primary === undefined) throw new UpstreamError('UPSTREAM_NOT_FOUND', `no primary ${upstream} is configured`);
    return primary;
  }

  private async *pages(upstream: string, kind: 'repositories' | 'tags', repository: string, signal: AbortSignal, pace: Pace): AsyncGenerator<string> {
    const primary = this.primary(upstream);
    let next: URL | undefined;
    let items = 0;
    for (let page = 0; ; page++) {
      if (page >= this.maxPages) throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `${kind} list of more than ${this.maxPages} pages`);
      await pace();
      const answer = await primary.listing.page(kind, repository, next, this.pageSize, signal);
      items += answer.items.length;
      if (items > this.maxItems) throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `${kind} list of more than ${this.maxItems} items`);
      yield* answer.items;
      if (answer.next === undefined || answer.items.length === 0) return;
      next = answer.next;
    }
  }
}

/** The config's `created` as a date; undefined when absent or not a date. */
function createdOf(config: Buffer): Date | undefined {
  let json: unknown;
  try {
    json = JSON.parse(config.toString('utf8'));
  } catch {
    return undefined;
  }
  const created = typeof json === 'object' && json !== null ? (json as Record<string, unknown>)['created'] : undefined;
  if (typeof created !== 'string' || created.length > 64) return undefined;
  const date = new Date(created);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/**
 * A catalog over the configured primaries (`config.upstream` and
 * `config.registries`), each with its own registry client and Outpost's
 * credentials: for a process that has no registry clients of its own (the
 * cluster primary running prefetch jobs). `close` closes their connections.
 */
export function registryCatalogFor(
  primaries: readonly (UpstreamConfig & PrimaryNames)[],
  deps: RegistryClientDeps = {},
  limits: RegistryCatalogLimits = {},
  /** Wraps each primary's clients (the cluster primary counts their requests in its metrics). */
  wrap: (host: string, primary: CatalogPrimary) => CatalogPrimary = (_host, primary) => primary,
): { catalog: UpstreamRegistryCatalog; close(): Promise<void> } {
  const clients = new Map(primaries.map((primary) => [primary.host, createRegistryClients(primary, deps)] as const));
  const catalog = new UpstreamRegistryCatalog(new Map([...clients].map(([host, c]) => [host, wrap(host, { upstream: c.upstream, listing: c.listing })] as const)), limits);
  return {
    catalog,
    close: async () => {
      await Promise.all([...clients.values()].map((c) => c.upstream.close()));
    },
  };
}
