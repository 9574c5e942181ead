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
 *
 * Errors use the OCI envelope like the registry API.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseDigest } from '../registry/digest.ts';
import { RegistryError } from '../registry/errors.ts';
import { validateName } from '../registry/reference.ts';
import { AdminToken } from './admin-token.ts';
import { sendJson } from './send.ts';

/** What the admin API asks of the node (the index owner, through the cluster primary). */
export interface AdminBackend {
  call(op: string, args: Record<string, unknown>): Promise<unknown>;
  /** Resolves and caches a pinned reference in this process; returns the digests it protects. */
  resolvePin(reference: string): Promise<string[]>;
}

const maxBodyBytes = 64 * 1024;

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBodyBytes) throw new RegistryError('SIZE_INVALID', 'request body too large');
    chunks.push(chunk);
  }
  try {
    const value = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, unknown>;
  } catch {
    throw new RegistryError('UNSUPPORTED', 'the request body must be a JSON object');
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
      sendJson(req, res, 200, await this.backend.call('stats', {}));
      return;
    }
    if (route === 'entries' && method === 'GET') {
      const limit = Math.min(Math.max(Number(query.get('limit') ?? 100) || 100, 1), 1000);
      const cursor = Math.max(Number(query.get('cursor') ?? 0) || 0, 0);
      sendJson(req, res, 200, await this.backend.call('list', { limit, cursor }));
      return;
    }
    if (route.startsWith('entries/') && method === 'DELETE') {
      const digest = parseDigest(decodeURIComponent(route.slice('entries/'.length)));
      sendJson(req, res, 200, await this.backend.call('purge', { digest }));
      return;
    }
    if (route === 'purge' && method === 'POST') {
      const body = await readJson(req);
      if (typeof body.digest === 'string') {
        sendJson(req, res, 200, await this.backend.call('purge', { digest: parseDigest(body.digest) }));
      } else if (typeof body.repository === 'string') {
        sendJson(req, res, 200, await this.backend.call('purge', { repository: validateName(body.repository) }));
      } else if (body.all === true) {
        sendJson(req, res, 200, await this.backend.call('purge', { all: true }));
      } else {
        throw new RegistryError('UNSUPPORTED', 'purge takes {"digest"}, {"repository"} or {"all":true}');
      }
      return;
    }
    if (route === 'pins' && method === 'GET') {
      sendJson(req, res, 200, await this.backend.call('pins', {}));
      return;
    }
    if (route === 'pins' && method === 'POST') {
      const body = await readJson(req);
      if (typeof body.reference !== 'string') throw new RegistryError('UNSUPPORTED', 'pin takes {"reference":"name:tag"}');
      const digests = await this.backend.resolvePin(body.reference);
      await this.backend.call('pin', { reference: body.reference, digests, persist: true });
      sendJson(req, res, 200, { reference: body.reference, digests: digests.length });
      return;
    }
    if (route === 'pins' && method === 'DELETE') {
      const reference = query.get('reference');
      if (!reference) throw new RegistryError('UNSUPPORTED', 'unpin takes ?reference=name:tag');
      sendJson(req, res, 200, await this.backend.call('unpin', { reference }));
      return;
    }
    throw new RegistryError('UNSUPPORTED', 'no such admin route', { detail: { method, path: path.slice(0, 200) } });
  }
}
