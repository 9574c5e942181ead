/** The `/v2/` API: maps routes onto the cache services and their answers onto HTTP. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { verdictError, type AccessControl, type Client, type Verdict } from '../auth/access-control.ts';
import type { BlobService } from '../cache/blob-service.ts';
import { paginate, type CatalogService } from '../cache/catalog-service.ts';
import type { ManifestAnswer, ManifestService } from '../cache/manifest-service.ts';
import type { PassThroughCache } from '../cache/pass-through-cache.ts';
import type { ReferrersService } from '../cache/referrers-service.ts';
import type { RelayedAnswers } from '../cache/relayed-answers.ts';
import type { Logger } from '../cache/ports.ts';
import type { RepositoryResolver } from '../cache/repository-resolver.ts';
import type { RepositoryTarget } from '../cache/repository-target.ts';
import { RequestTimedUpstream } from '../observability/request-upstream-time.ts';
import { ifNoneMatchMatches } from '../registry/conditional-requests.ts';
import type { Digest } from '../registry/digest.ts';
import { RegistryError } from '../registry/errors.ts';
import { defaultPlatformChild, parseManifest } from '../registry/manifest-references.ts';
import { accepts, acceptsSingleManifest, isIndexMediaType, mediaTypes, parseAccept } from '../registry/media-types.ts';
import { filterByArtifactType, referrersIndex } from '../registry/referrers.ts';
import { matchV2Route, type V2Route } from '../registry/route.ts';
import { apiVersionHeader, sendBlobSource, sendError, sendJson } from './send.ts';
import type { UnknownNamespaces } from './unknown-namespaces.ts';

export interface RegistryRoutesDeps {
  resolver: RepositoryResolver;
  blobs: BlobService;
  manifests: ManifestService;
  tagLists: PassThroughCache<{ tags: string[] }>;
  referrers: ReferrersService;
  catalog: CatalogService;
  relayed: RelayedAnswers;
  /** Who may pull what (auth.mode); asked before any cache work. */
  access: AccessControl;
  /** The audit log: one line per pull (manifest or blob) and per refused request. */
  audit: Logger;
  /** Blob bytes sent, by where they came from. */
  onBlobBytes?: (source: 'cache' | 'fill', bytes: number) => void;
  /** Told of each `?ns=` no primary answers to (it warns once per name). */
  unknownNamespaces?: UnknownNamespaces;
}

/** What the access log records about a registry request. */
export interface RequestNotes {
  route?: V2Route['kind'] | 'admin' | 'peer';
  repository?: string;
  reference?: string;
  cache?: string;
  /** The verified (basic) or claimed (upstream) user; never a credential. */
  user?: string;
  /** containerd's `?ns=` (the registry the client asked for), as sent. */
  ns?: string;
  /** The cache key of the primary the request went to; absent when none was chosen (e.g. an unknown `ns`). */
  upstream?: string;
  /** The OCI error code of an error answer. */
  code?: string;
  /** Time this request waited on its primary (request-upstream-time.ts); absent when it asked nothing. */
  upstreamMs?: number;
}

const maxPageSize = 10_000;

function pageSize(query: URLSearchParams): number | undefined {
  const raw = query.get('n');
  if (raw === null || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) {
    throw new RegistryError('PAGINATION_NUMBER_INVALID', 'n must be a non-negative integer', { detail: { n: raw.slice(0, 20) } });
  }
  return Math.min(n, maxPageSize);
}

function linkHeader(path: string, n: number, next: string, query: URLSearchParams): Record<string, string> {
  const params = new URLSearchParams();
  const ns = query.get('ns');
  if (ns) params.set('ns', ns);
  params.set('n', String(n));
  params.set('last', next);
  return { link: `<${path}?${params.toString()}>; rel="next"` };
}

export class RegistryRoutes {
  constructor(private readonly deps: RegistryRoutesDeps) {}

  /** Handles a `/v2` request; returns false when the path is not a registry route. */
  async handle(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams, notes: RequestNotes): Promise<boolean> {
    const route = matchV2Route(path);
    if (!route) return false;
    notes.route = route.kind;
    const ns = query.get('ns') || undefined;
    if (ns !== undefined) notes.ns = ns.slice(0, 200);
    const method = req.method ?? 'GET';
    if (route.kind === 'upload' || (method !== 'GET' && method !== 'HEAD')) {
      throw new RegistryError('UNSUPPORTED', 'this registry is a read-only mirror: push and delete are not supported', {
        headers: { allow: 'GET, HEAD' },
      });
    }
    const signal = abortSignalOf(req, res);
    const { access } = this.deps;
    let client: Client;
    try {
      client = await access.authenticate(req.headers.authorization, signal);
    } catch (err) {
      this.audit(req, route, undefined, undefined, { decision: 'deny', code: 'UNAUTHORIZED', reason: 'bad credentials' });
      throw err;
    }
    notes.user = client.user;
    if (route.kind === 'base') {
      // containerd names the registry in ?ns= even here; an unknown one is checked against the default primary.
      const upstream = ns !== undefined ? this.deps.resolver.keyOf(ns) : undefined;
      this.enforce(req, route, client, undefined, await access.login(client, upstream, signal));
      sendJson(req, res, 200, {});
      return true;
    }
    if (route.kind === 'catalog') {
      await this.catalog(req, res, query, client);
      return true;
    }
    notes.repository = route.name;
    if (route.kind === 'manifest') notes.reference = route.reference.kind === 'tag' ? route.reference.tag : route.reference.digest;
    else if (route.kind === 'blob' || route.kind === 'referrers') notes.reference = route.digest;
    if (ns !== undefined && this.deps.resolver.keyOf(ns) === undefined) this.deps.unknownNamespaces?.seen(ns);
    const resolved = this.deps.resolver.resolve(route.name, ns);
    notes.upstream = resolved.upstreamKey;
    this.enforce(req, route, client, resolved, await access.authorize(client, resolved, signal));
    const scoped = access.scope(client, resolved);
    const target = { ...scoped, upstream: new RequestTimedUpstream(scoped.upstream, notes) };
    switch (route.kind) {
      case 'manifest':
        await this.manifest(req, res, route, target, signal, notes);
        return true;
      case 'blob':
        await this.blob(req, res, route, target, signal, notes);
        return true;
      case 'tags':
        await this.tags(req, res, route.name, target, path, query, notes);
        return true;
      case 'referrers':
        await this.referrersOf(req, res, target, route.digest, query, notes);
        return true;
    }
  }

  /**
   * Throws the verdict's error when it denies. The audit log gets a line for
   * every refusal, and with access control on (`basic`, `upstream`) for every
   * pull (manifests and blobs). With `auth.mode: none` everyone may pull: the
   * access log already records each request, so the hot path writes no second line.
   */
  private enforce(req: IncomingMessage, route: V2Route, client: Client, target: RepositoryTarget | undefined, verdict: Verdict): void {
    const pull = route.kind === 'manifest' || route.kind === 'blob';
    if (verdict.decision === 'deny' || (pull && this.deps.access.mode !== 'none')) this.audit(req, route, client, target, verdict);
    if (verdict.decision === 'deny') throw verdictError(verdict);
  }

  private audit(req: IncomingMessage, route: V2Route, client: Client | undefined, target: RepositoryTarget | undefined, verdict: Verdict): void {
    const reference =
      route.kind === 'manifest' ? (route.reference.kind === 'tag' ? route.reference.tag : route.reference.digest) : route.kind === 'blob' || route.kind === 'referrers' ? route.digest : undefined;
    const line = {
      user: client?.user ?? null,
      method: req.method,
      route: route.kind,
      upstream: target?.upstreamKey,
      repository: target?.name ?? ('name' in route ? route.name : undefined),
      reference,
      decision: verdict.decision,
      reason: verdict.reason,
      ...(verdict.decision === 'deny' ? { code: verdict.code } : {}),
    };
    this.deps.audit.info(line, verdict.decision === 'allow' ? 'pull allowed' : 'request denied');
  }

  private async manifest(
    req: IncomingMessage,
    res: ServerResponse,
    route: Extract<V2Route, { kind: 'manifest' }>,
    target: RepositoryTarget,
    signal: AbortSignal,
    notes: RequestNotes,
  ): Promise<void> {
    let answer: ManifestAnswer = await this.deps.manifests.get(target, route.reference, signal);
    notes.cache = answer.result;
    const accept = parseAccept(req.headers.accept);
    if (!accepts(accept, answer.mediaType)) {
      // A client that cannot take an index gets the linux/amd64 image, as registries do.
      const child = isIndexMediaType(answer.mediaType) && acceptsSingleManifest(accept) ? defaultPlatformChild(parseManifest(answer.body, answer.mediaType)) : undefined;
      if (child) answer = await this.deps.manifests.byDigest(target, child.digest, signal);
      if (!child || !accepts(accept, answer.mediaType)) {
        throw new RegistryError('MANIFEST_UNKNOWN', 'the manifest is not available in a media type the client accepts', {
          detail: { mediaType: answer.mediaType },
        });
      }
    }
    const etag = `"${answer.digest}"`;
    const headers = {
      ...apiVersionHeader,
      'content-type': answer.mediaType,
      'docker-content-digest': answer.digest,
      etag,
      'x-outpost-cache': answer.result,
    };
    if (ifNoneMatchMatches(req.headers['if-none-match'], etag)) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, 'content-length': answer.body.byteLength });
    res.end(req.method === 'HEAD' ? undefined : answer.body);
  }

  private async blob(
    req: IncomingMessage,
    res: ServerResponse,
    route: Extract<V2Route, { kind: 'blob' }>,
    target: RepositoryTarget,
    signal: AbortSignal,
    notes: RequestNotes,
  ): Promise<void> {
    const digest = route.digest;
    const etag = `"${digest}"`;
    const common = {
      ...apiVersionHeader,
      'docker-content-digest': digest,
      etag,
      'accept-ranges': 'bytes',
      'cache-control': 'max-age=31536000, immutable',
    };
    const notModified = ifNoneMatchMatches(req.headers['if-none-match'], etag);
    if (req.method === 'HEAD' || notModified) {
      // A 304 still needs the blob to exist here (`*` matches only what exists).
      const { size, result } = await this.deps.blobs.stat(target, digest, signal);
      notes.cache = result;
      if (notModified) {
        res.writeHead(304, { ...common, 'x-outpost-cache': result });
        res.end();
        return;
      }
      res.writeHead(200, { ...common, 'content-type': 'application/octet-stream', 'content-length': size, 'x-outpost-cache': result });
      res.end();
      return;
    }
    // Whatever source answers — the local file, a fill in progress, the primary — is sent the same way.
    const source = await this.deps.blobs.open(target, digest, signal);
    notes.cache = source.result;
    const headers = { ...common, 'content-type': 'application/octet-stream', 'x-outpost-cache': source.result };
    await sendBlobSource(req, res, source, headers, etag, this.bytesFrom(source.result === 'hit' ? 'cache' : 'fill'));
  }

  private bytesFrom(source: 'cache' | 'fill'): ((n: number) => void) | undefined {
    const sink = this.deps.onBlobBytes;
    return sink ? (n) => sink(source, n) : undefined;
  }

  private async tags(req: IncomingMessage, res: ServerResponse, name: string, target: RepositoryTarget, path: string, query: URLSearchParams, notes: RequestNotes): Promise<void> {
    const n = pageSize(query);
    const { value, result } = await this.deps.tagLists.get(
      `${target.upstreamKey}/${target.name}`,
      async (signal) => ({ tags: [...(await target.upstream.listTags(target.name, signal))].sort() }),
      this.deps.relayed.tagList(target),
    );
    notes.cache = result;
    const page = paginate(value.tags, n, query.get('last') ?? undefined);
    const headers = page.next !== undefined && n !== undefined ? linkHeader(path, n, page.next, query) : {};
    sendJson(req, res, 200, { name, tags: page.items }, { ...headers, 'x-outpost-cache': result });
  }

  /**
   * Always 200 with an OCI image index (an empty one when nothing refers to
   * the subject). The `artifactType` filter is applied here, on the validated
   * unfiltered list, so `OCI-Filters-Applied` is sent exactly when it was.
   */
  private async referrersOf(req: IncomingMessage, res: ServerResponse, target: RepositoryTarget, subject: Digest, query: URLSearchParams, notes: RequestNotes): Promise<void> {
    const artifactType = query.get('artifactType') || undefined;
    const { descriptors, result } = await this.deps.referrers.list(target, subject);
    notes.cache = result;
    const body = referrersIndex(artifactType === undefined ? descriptors : filterByArtifactType(descriptors, artifactType));
    const headers: Record<string, string | number> = {
      ...apiVersionHeader,
      'content-type': mediaTypes.ociIndex,
      'content-length': body.byteLength,
      'x-outpost-cache': result,
    };
    if (artifactType !== undefined) headers['oci-filters-applied'] = 'artifactType';
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  /** The cached repositories this client may pull (as far as known without asking the primary). */
  private async catalog(req: IncomingMessage, res: ServerResponse, query: URLSearchParams, client: Client): Promise<void> {
    const n = pageSize(query);
    const names = await this.deps.catalog.list((upstream, name) => this.deps.access.lists(client, upstream, name));
    const page = paginate(names, n, query.get('last') ?? undefined);
    const headers = page.next !== undefined && n !== undefined ? linkHeader('/v2/_catalog', n, page.next, query) : {};
    sendJson(req, res, 200, { repositories: page.items }, headers);
  }
}

/** Aborts when the client goes away before the response is finished. */
function abortSignalOf(req: IncomingMessage, res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  void req;
  return controller.signal;
}

export { sendError };
