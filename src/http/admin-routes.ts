/**
 * The admin API, behind `OUTPOST_ADMIN_TOKEN` (bearer):
 *
 *   GET    /api/v0/cache/stats
 *   GET    /api/v0/cache/entries?limit=100&cursor=0     most recently used first
 *   DELETE /api/v0/cache/entries/<digest>
 *   POST   /api/v0/cache/purge    {"digest":"sha256:…"} | {"repository":"library/nginx"} | {"all":true}
 *   GET    /api/v0/cache/pins
 *   POST   /api/v0/cache/pins     {"reference":"library/nginx:1.27"}
 *   DELETE /api/v0/cache/pins?reference=library/nginx:1.27
 *   POST   /api/v0/cache/verify   starts a scrub of every blob (202; joins one in progress), answers its progress
 *   GET    /api/v0/cache/verify   progress of the scrub in progress, else of the last one:
 *                                 {id, running, outcome, checked, total, bytes, totalBytes, corrupt, corruptDigests, ...}
 *
 * Errors use the OCI envelope like the registry API: a body that is not a
 * JSON object of the documented shape is 400 `BODY_INVALID`, one over 64 KiB
 * 413 `BODY_TOO_LARGE`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AdminRequest } from '../cache/admin-request.ts';
import { parseDigest, type Digest } from '../registry/digest.ts';
import { RegistryError } from '../registry/errors.ts';
import { validateName } from '../registry/reference.ts';
import { AdminToken } from './admin-token.ts';
import { sendJson } from './send.ts';

/** What the admin API asks of the node (the index owner, through the cluster primary). */
export interface AdminBackend {
  /** Runs an admin request on the node's cache (in the cluster primary). */
  admin(request: AdminRequest): Promise<unknown>;
  /** Resolves and caches a pinned reference in this process; returns the digests it protects. */
  resolvePin(reference: string): Promise<Digest[]>;
}

const maxBodyBytes = 64 * 1024;

function tooLarge(): RegistryError {
  return new RegistryError('BODY_TOO_LARGE', `the request body is larger than ${maxBodyBytes} bytes`);
}

/**
 * Reads a small body. Too large a body is refused as soon as that is known
 * and the rest is discarded as it arrives (the server's body timeout bounds
 * a client that never stops); a body cut short rejects like a client gone.
 */
function readBody(req: IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > maxBodyBytes) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= maxBodyBytes) {
        chunks.push(chunk);
        return;
      }
      done();
      req.resume(); // discard the rest
      reject(tooLarge());
    };
    const onEnd = (): void => {
      done();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error): void => {
      done();
      reject(err);
    };
    const onClose = (): void => {
      done();
      reject(Object.assign(new Error('the client went away before sending the whole body'), { code: 'ECONNRESET' }));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const text = (await readBody(req)).toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text || '{}') as unknown;
  } catch {
    throw new RegistryError('BODY_INVALID', 'the request body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RegistryError('BODY_INVALID', 'the request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

function decodePathSegment(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new RegistryError('DIGEST_INVALID', 'malformed percent-encoding in the path', { detail: { segment: raw.slice(0, 200) } });
  }
}

export class AdminRoutes {
  private readonly token: AdminToken;

  constructor(
    token: string | undefined,
    private readonly backend: AdminBackend,
  ) {
    this.token = new AdminToken(token);
  }

  private authorize(req: IncomingMessage): void {
    this.token.authorize(req);
  }

  async handle(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void> {
    this.authorize(req);
    const method = req.method ?? 'GET';
    const route = path.slice('/api/v0/cache/'.length);
    if (route === 'stats' && method === 'GET') {
      sendJson(req, res, 200, await this.backend.admin({ op: 'stats' }));
      return;
    }
    if (route === 'entries' && method === 'GET') {
      const limit = Math.min(Math.max(Number(query.get('limit') ?? 100) || 100, 1), 1000);
      const cursor = Math.max(Number(query.get('cursor') ?? 0) || 0, 0);
      sendJson(req, res, 200, await this.backend.admin({ op: 'list', limit, cursor }));
      return;
    }
    if (route.startsWith('entries/') && method === 'DELETE') {
      const digest = parseDigest(decodePathSegment(route.slice('entries/'.length)));
      sendJson(req, res, 200, await this.backend.admin({ op: 'purge', target: { digest } }));
      return;
    }
    if (route === 'purge' && method === 'POST') {
      const body = await readJson(req);
      if (typeof body.digest === 'string') {
        sendJson(req, res, 200, await this.backend.admin({ op: 'purge', target: { digest: parseDigest(body.digest) } }));
      } else if (typeof body.repository === 'string') {
        sendJson(req, res, 200, await this.backend.admin({ op: 'purge', target: { repository: validateName(body.repository) } }));
      } else if (body.all === true) {
        sendJson(req, res, 200, await this.backend.admin({ op: 'purge', target: { all: true } }));
      } else {
        throw new RegistryError('BODY_INVALID', 'purge takes {"digest"}, {"repository"} or {"all":true}');
      }
      return;
    }
    if (route === 'verify' && method === 'POST') {
      sendJson(req, res, 202, await this.backend.admin({ op: 'verify' }));
      return;
    }
    if (route === 'verify' && method === 'GET') {
      sendJson(req, res, 200, await this.backend.admin({ op: 'verifyStatus' }));
      return;
    }
    if (route === 'pins' && method === 'GET') {
      sendJson(req, res, 200, await this.backend.admin({ op: 'pins' }));
      return;
    }
    if (route === 'pins' && method === 'POST') {
      const body = await readJson(req);
      if (typeof body.reference !== 'string') throw new RegistryError('BODY_INVALID', 'pin takes {"reference":"name:tag"}');
      const digests = await this.backend.resolvePin(body.reference);
      await this.backend.admin({ op: 'pin', reference: body.reference, digests, persist: true });
      sendJson(req, res, 200, { reference: body.reference, digests: digests.length });
      return;
    }
    if (route === 'pins' && method === 'DELETE') {
      const reference = query.get('reference');
      if (!reference) throw new RegistryError('NAME_INVALID', 'unpin takes ?reference=name:tag');
      sendJson(req, res, 200, await this.backend.admin({ op: 'unpin', reference }));
      return;
    }
    throw new RegistryError('UNSUPPORTED', 'no such admin route', { detail: { method, path: path.slice(0, 200) } });
  }
}
