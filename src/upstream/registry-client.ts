/**
 * The Upstream port over undici: one primary registry, spoken to with the
 * OCI distribution API (pull side).
 *
 * Error contract: every method resolves with a 2xx answer or rejects with an
 * UpstreamError (see upstream-errors.ts for the mapping); raw undici errors
 * never escape a method.
 *
 * The body handed out by `getBlob` is undici's own response stream. It is
 * outside that contract: once the method resolved, a body-idle timeout
 * (`bodyIdleTimeoutMs`, undici `BodyTimeoutError`, code
 * `UND_ERR_BODY_TIMEOUT`), a reset connection (`SocketError`,
 * `UND_ERR_SOCKET`) or the caller's signal aborting (its `reason`) surface
 * as an `'error'` on that stream, and the caller must treat any stream error
 * as a failed transfer. The caller's signal stays bound to the stream until
 * it closes, so a fill that must outlive its client needs a signal of its own.
 * Nothing is retried once that body has been handed out.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { LRUCache } from 'lru-cache';
import { Agent } from 'undici';
import {
  systemClock,
  UpstreamError,
  type BlobResponse,
  type Clock,
  type ManifestHead,
  type ManifestResponse,
  type ReferrersResponse,
  type Upstream,
} from '../cache/ports.ts';
import type { UpstreamConfig } from '../config/types.ts';
import { createAuthenticator } from './authenticator.ts';
import { createTransport, type Method, type Response } from './http-transport.ts';
import { nextLink, type NextLink } from './link-header.ts';
import { destroyBody, discard, parseByteCount, parseJson, readLimited } from './response-body.ts';
import { withRetry, type RetryOptions } from './retry.ts';
import { TokenCache } from './token-cache.ts';
import { mayReceiveCredentials, parseRealm, requestToken, type Credentials } from './token-endpoint.ts';
import { errorFromStatus, toUpstreamError } from './upstream-errors.ts';

export interface UpstreamLogger {
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface RegistryClientDeps {
  clock?: Clock;
  logger?: UpstreamLogger;
  /** Called with Docker Hub's `ratelimit-remaining` (and `ratelimit-limit`) whenever a response carries them. */
  onRateLimit?(remaining: number | undefined, limit: number | undefined): void;
  /** Backoff tuning (and, for tests, `random` and `sleep`); the count comes from config. */
  retry?: Omit<RetryOptions, 'retries' | 'onRetry'>;
  /** Largest tag-list page, or referrers index (all its pages together), buffered. Default 4 MiB. */
  maxListBytes?: number;
  /** Largest tag list buffered, all pages together. Default 16 MiB (MAX_TAG_LIST_BYTES). */
  maxTagListBytes?: number;
}

export const MANIFEST_MEDIA_TYPES = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
] as const;

const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const GENERIC_TYPES = new Set(['application/json', 'text/plain', 'application/octet-stream']);
const MAX_TAG_PAGES = 100;
/** Pages of one referrers index followed (the service lists at most 1000 referrers). */
const MAX_REFERRER_PAGES = 20;
/**
 * Bytes of one repository's tag list, all pages together. Docker Hub's
 * longest lists are a few hundred KiB; past this the primary is lying or
 * broken, and the whole list is refused rather than buffered or truncated.
 */
export const MAX_TAG_LIST_BYTES = 16 * 1024 * 1024;
const USER_AGENT = 'outpost';
const noopLogger: UpstreamLogger = { warn: () => {}, debug: () => {} };

export function createRegistryClients(config: UpstreamConfig, deps: RegistryClientDeps = {}): RegistryClients {
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger ?? noopLogger;
  const maxListBytes = deps.maxListBytes ?? 4 * 1024 * 1024;
  const maxTagListBytes = deps.maxTagListBytes ?? MAX_TAG_LIST_BYTES;
  const base = new URL(config.url);
  const host = base.host;
  const apiRoot = `${base.pathname.replace(/\/+$/, '')}/v2/`;
  const credentials: Credentials | undefined =
    config.username !== undefined && config.username !== '' ? { username: config.username, password: config.password ?? '' } : undefined;

  const ca = readCaFile(config.caFile);
  if (config.insecure) logger.warn({ upstream: host }, 'TLS verification is disabled for this upstream');
  const agentFor = (trusted: string | string[] | undefined): Agent =>
    new Agent({
      connections: config.connections,
      headersTimeout: config.headersTimeoutMs,
      bodyTimeout: config.bodyIdleTimeoutMs,
      connect: { timeout: config.connectTimeoutMs, ca: trusted, rejectUnauthorized: !config.insecure },
    });
  // The primary trusts exactly its CA bundle; blob storage and token servers
  // on other origins are usually public, so they get the system CAs as well.
  const primary = agentFor(ca);
  const foreign = agentFor(ca === undefined ? undefined : [...rootCertificates, ca]);

  const transport = createTransport({
    primaryOrigin: base.origin,
    primary,
    foreign,
    onResponse: (_url, headers) => {
      const remaining = parseRateLimit(headers['ratelimit-remaining']);
      const limit = parseRateLimit(headers['ratelimit-limit']);
      if ((remaining === undefined && limit === undefined) || deps.onRateLimit === undefined) return;
      try {
        deps.onRateLimit(remaining, limit);
      } catch (err) {
        // A metrics callback must never fail (or leak) a request.
        logger.warn({ upstream: host, err }, 'onRateLimit callback threw');
      }
    },
  });
  const retryOptions: RetryOptions = {
    ...deps.retry,
    retries: config.retries,
    onRetry: ({ attempt, delayMs, error }) => {
      const code = error instanceof UpstreamError ? error.code : undefined;
      logger.warn({ upstream: host, attempt, delayMs, code }, 'retrying upstream request');
    },
  };

  const apiUrl = (path: string): URL => new URL(`${apiRoot}${path}`, base.origin);

  /** The API with one set of credentials (Outpost's own, a pulling client's, or none); connections are shared. */
  function clientFor(credentials: Credentials | undefined): ClientApi {
    const auth = createAuthenticator({
      credentials,
      tokens: new TokenCache({ clock }),
      fetchToken: async (request) => {
        const realm = parseRealm(request.realm);
        if (credentials !== undefined && !mayReceiveCredentials(realm, base)) {
          // Origin only: the realm's path and query are the primary's to choose, and never worth logging.
          logger.warn({ upstream: host, realmOrigin: realm.origin }, 'token realm refused: plain http on another host; upstream credentials not sent');
          throw new UpstreamError(
            'UPSTREAM_UNAUTHORIZED',
            `token realm ${realm.origin} is plain http on another host than the primary; upstream credentials not sent`,
          );
        }
        logger.debug({ upstream: host, realm: request.realm, scope: request.scope }, 'fetching upstream token');
        // Shared by every waiter, so bound only by the transport's own timeouts.
        return requestToken(transport, request, credentials, () => clock.now(), new AbortController().signal);
      },
    });
    /** One exchange, with the token/Basic flow on a 401; resolves with a 2xx answer only. */
    async function authorizedSend(method: Method, url: URL, headers: Record<string, string>, scope: string, what: string, signal: AbortSignal): Promise<Response> {
      const toPrimary = url.origin === base.origin;
      const sent = toPrimary ? auth.preemptive(scope) : undefined;
      let res = await transport.send({ method, url, headers, authorization: sent, signal });
      if (res.statusCode === 401 && toPrimary && res.url.origin === base.origin) {
        const challenge = res.headers['www-authenticate'];
        discard(res.body);
        const next = await auth.respond(challenge, scope, sent, signal);
        if (next === undefined) throw errorFromStatus(401, res.headers, what, clock.now());
        res = await transport.send({ method, url, headers, authorization: next, signal });
      }
      if (res.statusCode >= 200 && res.statusCode <= 299) return res;
      discard(res.body);
      throw errorFromStatus(res.statusCode, res.headers, what, clock.now());
    }

    /**
     * An exchange retried per the policy. `use` turns the 2xx answer into the
     * result inside the attempt (so buffering a small body is retried too); if
     * it throws, the body is destroyed.
     */
    async function exchange<T>(
      method: Method,
      url: URL,
      accept: string,
      repo: string,
      what: string,
      signal: AbortSignal,
      use: (res: Response) => Promise<T>,
      extraHeaders: Record<string, string> = {},
      scopeOverride?: string,
    ): Promise<T> {
      const headers = { accept, 'user-agent': USER_AGENT, ...extraHeaders };
      const scope = scopeOverride ?? `repository:${repo}:pull`;
      const attempt = async (): Promise<T> => {
        try {
          const res = await authorizedSend(method, url, headers, scope, what, signal);
          try {
            return await use(res);
          } catch (err) {
            destroyBody(res.body);
            throw err;
          }
        } catch (err) {
          throw toUpstreamError(err, signal, what);
        }
      };
      try {
        return await withRetry(method, attempt, retryOptions, signal);
      } catch (err) {
        throw toUpstreamError(err, signal, what);
      }
    }

    async function headManifest(repo: string, reference: string, signal: AbortSignal): Promise<ManifestHead> {
      const what = `HEAD manifest ${repo}:${reference}`;
      return exchange('HEAD', apiUrl(`${repo}/manifests/${reference}`), MANIFEST_ACCEPT, repo, what, signal, async (res) => {
        discard(res.body);
        return {
          digest: single(res.headers['docker-content-digest']),
          // '' when the primary sent no Content-Type: a HEAD has no body to look into.
          mediaType: mediaTypeOf(res.headers['content-type']) ?? '',
          size: parseByteCount(res.headers['content-length'], what, 'Content-Length'),
        };
      });
    }

    async function getManifest(repo: string, reference: string, maxBytes: number, signal: AbortSignal): Promise<ManifestResponse> {
      const what = `GET manifest ${repo}:${reference}`;
      return exchange('GET', apiUrl(`${repo}/manifests/${reference}`), MANIFEST_ACCEPT, repo, what, signal, async (res) => {
        const body = await readLimited(res.body, res.headers['content-length'], maxBytes, what);
        let mediaType = mediaTypeOf(res.headers['content-type']);
        if (mediaType === undefined || GENERIC_TYPES.has(mediaType)) mediaType = embeddedMediaType(body) ?? mediaType;
        if (mediaType === undefined) throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `${what}: no media type`);
        return { body, mediaType, digest: single(res.headers['docker-content-digest']) };
      });
    }

    async function headBlob(repo: string, digest: string, signal: AbortSignal): Promise<{ size: number | undefined }> {
      const what = `HEAD blob ${repo}@${digest}`;
      return exchange('HEAD', apiUrl(`${repo}/blobs/${digest}`), '*/*', repo, what, signal, async (res) => {
        discard(res.body);
        return { size: parseByteCount(res.headers['content-length'], what, 'Content-Length') };
      });
    }

    async function getBlob(repo: string, digest: string, signal: AbortSignal, options: { start?: number } = {}): Promise<BlobResponse> {
      const start = options.start ?? 0;
      const what = `GET blob ${repo}@${digest}`;
      return exchange(
        'GET',
        apiUrl(`${repo}/blobs/${digest}`),
        '*/*',
        repo,
        what,
        signal,
        async (res) => {
          // A throw here destroys the body (see exchange).
          const length = parseByteCount(res.headers['content-length'], what, 'Content-Length');
          if (res.statusCode !== 206) return { size: length, offset: 0, body: res.body };
          return { size: partialSize(single(res.headers['content-range']), start, length, what), offset: start, body: res.body };
        },
        start > 0 ? { range: `bytes=${start}-` } : {},
      );
    }

    async function listTags(repo: string, signal: AbortSignal): Promise<string[]> {
      const what = `GET tags ${repo}`;
      const pages = await readPages(apiUrl(`${repo}/tags/list`), 'application/json', repo, what, signal, { kind: 'tag list', maxPages: MAX_TAG_PAGES, maxBytes: maxTagListBytes });
      return pages.flatMap(({ body }) => parseTags(parseJson(body, what), what));
    }

    /**
     * The bodies of a paged list from `first` on, following its `Link` next
     * pages (see nextPage): at most `maxPages` of them (then a warning), each
     * at most `maxListBytes`, at most `maxBytes` together (past that the list
     * is refused).
     */
    async function readPages(
      first: URL,
      accept: string,
      repo: string,
      what: string,
      signal: AbortSignal,
      limits: { kind: string; maxPages: number; maxBytes: number },
    ): Promise<Array<{ body: Buffer; contentType: string | string[] | undefined }>> {
      const pages: Array<{ body: Buffer; contentType: string | string[] | undefined }> = [];
      let bytes = 0;
      let url: URL | undefined = first;
      for (let page = 0; page < limits.maxPages && url !== undefined; page++) {
        const budget = limits.maxBytes - bytes;
        const asked = url;
        const tooLarge = budget < maxListBytes ? () => new UpstreamError('UPSTREAM_BAD_RESPONSE', `${what}: ${limits.kind} larger than ${limits.maxBytes} bytes across pages`) : undefined;
        const answer: { body: Buffer; contentType: string | string[] | undefined; next: URL | undefined } = await exchange('GET', asked, accept, repo, what, signal, async (res) => ({
          body: await readLimited(res.body, res.headers['content-length'], Math.min(maxListBytes, budget), what, tooLarge),
          contentType: res.headers['content-type'],
          // Relative to the page we asked the primary for, even if a redirect answered it.
          next: nextPage(nextLink(res.headers['link'], asked), what),
        }));
        pages.push(answer);
        bytes += answer.body.length;
        url = answer.next;
      }
      if (url !== undefined) logger.warn({ upstream: host, request: what, pages: limits.maxPages }, `${limits.kind} truncated: too many pages`);
      return pages;
    }

    /**
     * Where a paged list (tags, catalog, referrers) goes on. Only the
     * primary's own origin (scheme, host and port) is followed: a next page
     * elsewhere would let the primary make this node fetch any URL it can
     * reach (an internal service, another registry) and mix that server's
     * answer into the list. A Link the primary got wrong fails the list
     * rather than ending it early.
     */
    function nextPage(link: NextLink, what: string): URL | undefined {
      if (link.kind === 'none') return undefined;
      if (link.kind === 'invalid') {
        logger.warn({ upstream: host, request: what, reason: link.reason }, 'list refused: bad Link header from the primary');
        throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `${what}: ${link.reason}`);
      }
      if (link.url.origin !== base.origin) {
        logger.warn({ upstream: host, request: what, origin: link.url.origin }, 'list refused: the primary linked its next page to another origin');
        throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `${what}: Link next page is on another origin (${link.url.origin})`);
      }
      return link.url;
    }

    /**
     * One page of the primary's repository list (`GET /v2/_catalog?n=...`,
     * scope `registry:catalog:*`) or of a repository's tags, and where the
     * next one is (same origin only, as for tag lists). `next` undefined asks
     * for the first page.
     */
    async function listPage(
      kind: 'repositories' | 'tags',
      repo: string,
      next: URL | undefined,
      pageSize: number,
      signal: AbortSignal,
    ): Promise<{ items: string[]; next: URL | undefined }> {
      const what = kind === 'repositories' ? 'GET _catalog' : `GET tags ${repo}`;
      const asked = next ?? apiUrl(kind === 'repositories' ? `_catalog?n=${pageSize}` : `${repo}/tags/list?n=${pageSize}`);
      return exchange(
        'GET',
        asked,
        'application/json',
        repo,
        what,
        signal,
        async (res) => {
          const body = await readLimited(res.body, res.headers['content-length'], maxListBytes, what);
          const json = parseJson(body, what);
          const items = kind === 'repositories' ? parseRepositories(json, what) : parseTags(json, what);
          return { items, next: nextPage(nextLink(res.headers['link'], asked), what) };
        },
        {},
        kind === 'repositories' ? 'registry:catalog:*' : undefined,
      );
    }

    /**
     * The primary's referrers index of `digest`, every page of it: a `Link`
     * next page is followed as for tag lists (the primary's origin only), up
     * to MAX_REFERRER_PAGES pages and `maxListBytes` across them, past which
     * the index is refused. One page is returned as sent; several become one
     * index holding the entries of all, which the caller validates one by one.
     */
    async function getReferrers(repo: string, digest: string, artifactType: string | undefined, signal: AbortSignal): Promise<ReferrersResponse> {
      const what = `GET referrers ${repo}@${digest}`;
      const url = apiUrl(`${repo}/referrers/${digest}`);
      if (artifactType !== undefined) url.searchParams.set('artifactType', artifactType);
      const pages = await readPages(url, OCI_INDEX, repo, what, signal, { kind: 'referrers list', maxPages: MAX_REFERRER_PAGES, maxBytes: maxListBytes });
      const [first] = pages;
      if (pages.length === 1) return { body: first!.body, mediaType: mediaTypeOf(first!.contentType) ?? OCI_INDEX };
      const manifests = pages.flatMap(({ body }, index) => {
        const json = parseJson(body, what) as { manifests?: unknown } | null;
        if (typeof json !== 'object' || json === null || !Array.isArray(json.manifests)) {
          throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `${what}: page ${index + 1} is not an image index`);
        }
        return json.manifests as unknown[];
      });
      return { body: Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests })), mediaType: OCI_INDEX };
    }


    /**
     * What the primary answers these credentials for a pull of `repo`: a
     * `GET /v2/<repo>/tags/list?n=1` after the token or Basic flow. 401, 403
     * and 404 are answers; anything else (timeouts, 5xx, 429) rejects with
     * the UpstreamError, since it decides nothing.
     */
    async function checkPull(repo: string, signal: AbortSignal): Promise<PrimaryAnswer> {
      const what = `GET tags ${repo} (access check)`;
      try {
        return await exchange('GET', apiUrl(`${repo}/tags/list?n=1`), 'application/json', repo, what, signal, async (res) => {
          discard(res.body);
          return 'allow' as const;
        });
      } catch (err) {
        return answerOf(err);
      }
    }

    /** What the primary answers these credentials on `GET /v2/` (what `docker login` checks). */
    async function checkLogin(signal: AbortSignal): Promise<PrimaryAnswer> {
      const what = 'GET /v2/ (login check)';
      try {
        const res = await authorizedSend('GET', apiUrl(''), { accept: 'application/json', 'user-agent': USER_AGENT }, '', what, signal);
        discard(res.body);
        return 'allow';
      } catch (err) {
        return answerOf(toUpstreamError(err, signal, what));
      }
    }

    return { headManifest, getManifest, headBlob, getBlob, listTags, getReferrers, checkPull, checkLogin, listPage };
  }

  const own = clientFor(credentials);
  /** Clients by an HMAC of their credentials (never the credentials themselves), each with its own tokens. */
  const hmacKey = randomBytes(32);
  const asClients = new LRUCache<string, ClientApi>({ max: 1000, ttl: 10 * 60_000 });
  const asClient = (client: Credentials | undefined): ClientApi => {
    if (client === undefined) return anonymous;
    const key = createHmac('sha256', hmacKey).update(`${client.username.length}:${client.username}${client.password}`).digest('base64');
    let api = asClients.get(key);
    if (api === undefined) asClients.set(key, (api = clientFor(client)));
    return api;
  };
  const anonymous = clientFor(undefined);

  async function close(): Promise<void> {
    await Promise.all([primary.close(), foreign.close()]);
  }

  const upstreamOf = (api: ClientApi, closeIt: () => Promise<void>): Upstream => ({
    host,
    headManifest: api.headManifest,
    getManifest: api.getManifest,
    headBlob: api.headBlob,
    getBlob: api.getBlob,
    listTags: api.listTags,
    getReferrers: api.getReferrers,
    close: closeIt,
  });
  return {
    upstream: upstreamOf(own, close),
    asClient: (client) => upstreamOf(asClient(client), async () => undefined),
    checkPull: (client, repo, signal) => asClient(client).checkPull(repo, signal),
    checkLogin: (client, signal) => asClient(client).checkLogin(signal),
    listing: { page: own.listPage },
  };
}

/** Paged listings of a primary, with Outpost's own credentials (prefetch: upstream/registry-catalog.ts). */
export interface RegistryListing {
  /** `kind` repositories: `_catalog` (repo ignored); tags: `repo`'s tags. Rejects with an UpstreamError. */
  page(kind: 'repositories' | 'tags', repo: string, next: URL | undefined, pageSize: number, signal: AbortSignal): Promise<{ items: string[]; next: URL | undefined }>;
}

/** The answer of {@link RegistryClients.checkPull} and `checkLogin`. */
export type PrimaryAnswer = 'allow' | 'unauthorized' | 'denied' | 'not-found';

function answerOf(err: unknown): PrimaryAnswer {
  if (err instanceof UpstreamError) {
    if (err.code === 'UPSTREAM_UNAUTHORIZED') return 'unauthorized';
    if (err.code === 'UPSTREAM_DENIED') return 'denied';
    if (err.code === 'UPSTREAM_NOT_FOUND') return 'not-found';
  }
  throw err;
}

type ClientApi = Omit<Upstream, 'host' | 'close'> & {
  listPage: RegistryListing['page'];
  checkPull(repo: string, signal: AbortSignal): Promise<PrimaryAnswer>;
  checkLogin(signal: AbortSignal): Promise<PrimaryAnswer>;
};

/**
 * One primary, as Outpost itself (`upstream`, with the configured
 * credentials) and as the clients of `auth.mode: upstream` (with their own
 * credentials, or none). They share connections; each set of credentials
 * gets its own tokens.
 */
export interface RegistryClients {
  readonly upstream: Upstream;
  /** The primary as spoken to with a client's credentials (undefined: anonymously). Closing it is a no-op. */
  asClient(client: Credentials | undefined): Upstream;
  /** Whether the primary lets these credentials pull `repo`. Rejects with an UpstreamError when it cannot be asked. */
  checkPull(client: Credentials | undefined, repo: string, signal: AbortSignal): Promise<PrimaryAnswer>;
  /** Whether the primary accepts these credentials at all (`GET /v2/`). */
  checkLogin(client: Credentials | undefined, signal: AbortSignal): Promise<PrimaryAnswer>;
  /** Paged repository and tag lists, as Outpost itself. */
  readonly listing: RegistryListing;
}

export function createRegistryClient(config: UpstreamConfig, deps: RegistryClientDeps = {}): Upstream {
  return createRegistryClients(config, deps).upstream;
}

function readCaFile(path: string | undefined): string | undefined {
  if (path === undefined || path === '') return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read upstream CA file ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function single(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return v === undefined || v === '' ? undefined : v;
}

/**
 * The whole blob's size from a 206's `Content-Range: bytes <first>-<last>/<size>`
 * (undefined for `/*`), which must start where we asked, end within the size
 * and agree with the Content-Length; UPSTREAM_BAD_RESPONSE otherwise.
 */
function partialSize(range: string | undefined, start: number, length: number | undefined, what: string): number | undefined {
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(range ?? '');
  const bad = (): UpstreamError => new UpstreamError('UPSTREAM_BAD_RESPONSE', `${what}: unexpected Content-Range`, { status: 206 });
  if (!match) throw bad();
  const first = parseByteCount(match[1], what, 'Content-Range');
  const last = parseByteCount(match[2], what, 'Content-Range');
  const size = match[3] === '*' ? undefined : parseByteCount(match[3], what, 'Content-Range');
  if (first !== start || last === undefined || last < first) throw bad();
  if (size !== undefined && last >= size) throw bad();
  if (length !== undefined && length !== last - first + 1) throw bad();
  return size;
}

/** `type/subtype` without parameters, lower-cased. */
function mediaTypeOf(value: string | string[] | undefined): string | undefined {
  const v = single(value)?.split(';')[0]?.trim().toLowerCase();
  return v === undefined || v === '' ? undefined : v;
}

function embeddedMediaType(body: Buffer): string | undefined {
  try {
    const json = JSON.parse(body.toString('utf8')) as unknown;
    const mediaType = typeof json === 'object' && json !== null ? (json as Record<string, unknown>)['mediaType'] : undefined;
    return typeof mediaType === 'string' && mediaType !== '' ? mediaType : undefined;
  } catch {
    return undefined;
  }
}

function parseRepositories(json: unknown, what: string): string[] {
  const repositories = typeof json === 'object' && json !== null ? (json as Record<string, unknown>)['repositories'] : undefined;
  if (repositories === undefined || repositories === null) return [];
  if (!Array.isArray(repositories) || !repositories.every((r): r is string => typeof r === 'string')) {
    throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `${what}: malformed repository list`);
  }
  return repositories;
}

function parseTags(json: unknown, what: string): string[] {
  const tags = typeof json === 'object' && json !== null ? (json as Record<string, unknown>)['tags'] : undefined;
  if (tags === undefined || tags === null) return [];
  if (!Array.isArray(tags) || !tags.every((t): t is string => typeof t === 'string')) {
    throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `${what}: malformed tag list`);
  }
  return tags;
}

/** Docker Hub sends `ratelimit-remaining: 76;w=21600` and `ratelimit-limit: 100;w=21600`. */
function parseRateLimit(value: string | string[] | undefined): number | undefined {
  const match = /^\s*(\d+)/.exec(single(value) ?? '');
  return match?.[1] === undefined ? undefined : Number(match[1]);
}
