/**
 * The admin bearer token (`OUTPOST_ADMIN_TOKEN`) that guards the admin API and cluster status.
 *
 * A browser signed in on the status page holds a session cookie instead: an
 * HMAC of the token (never the token itself), HttpOnly and SameSite=Strict.
 * It opens what the page reads (GET and HEAD); anything that changes state
 * still needs the bearer header.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { parseCookie } from 'cookie';
import { RegistryError } from '../registry/errors.ts';

export const adminCookieName = 'outpost_admin';

/** Constant time for equal lengths; different lengths are unequal at once (the length is not secret). */
function same(given: Buffer, expected: Buffer): boolean {
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export class AdminToken {
  private readonly token: Buffer | undefined;
  private readonly session: Buffer | undefined;

  constructor(token: string | undefined) {
    this.token = token ? Buffer.from(token) : undefined;
    this.session = token ? createHmac('sha256', token).update('outpost status page session v1').digest() : undefined;
  }

  /** Whether a token is configured at all. */
  get configured(): boolean {
    return this.token !== undefined;
  }

  /** Whether `given` is the token (constant time). */
  matches(given: string): boolean {
    return this.token !== undefined && same(Buffer.from(given), this.token);
  }

  /** The session cookie's value (base64url of the HMAC); undefined when no token is configured. */
  sessionValue(): string | undefined {
    return this.session?.toString('base64url');
  }

  /** Whether the request bears the token (bearer header) or, for GET and HEAD, the session cookie. */
  allows(req: IncomingMessage): boolean {
    if (this.token === undefined || this.session === undefined) return false;
    const header = req.headers.authorization ?? '';
    if (header.startsWith('Bearer ')) return same(Buffer.from(header.slice(7)), this.token);
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const raw = req.headers.cookie;
    if (raw === undefined || raw.length > 8_192) return false;
    const cookie = parseCookie(raw)[adminCookieName];
    return cookie !== undefined && same(Buffer.from(cookie), Buffer.from(this.session.toString('base64url')));
  }

  /** Throws UNSUPPORTED when no token is configured (the endpoint is off), UNAUTHORIZED unless the request bears it. */
  authorize(req: IncomingMessage, what = 'the admin API'): void {
    if (!this.token) throw new RegistryError('UNSUPPORTED', `${what} is off: set OUTPOST_ADMIN_TOKEN`);
    if (!this.allows(req)) {
      throw new RegistryError('UNAUTHORIZED', 'a valid admin bearer token is required', {
        headers: { 'www-authenticate': 'Bearer realm="outpost-admin"' },
      });
    }
  }
}
