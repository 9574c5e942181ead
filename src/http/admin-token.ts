/**
 * The admin bearer token (`OUTPOST_ADMIN_TOKEN`) that guards the admin API and cluster status.
 *
 * A browser signed in on the status page holds a session cookie instead:
 * `<expiry>.<HMAC of the expiry keyed with the token>` (never the token
 * itself), HttpOnly and SameSite=Strict. It is checked in constant time and
 * refused once expired, whatever the browser keeps; changing the token ends
 * every session. It opens what the page reads (GET and HEAD); anything that
 * changes state still needs the bearer header.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { parseCookie } from 'cookie';
import { systemClock, type Clock } from '../cache/ports.ts';
import { RegistryError } from '../registry/errors.ts';

export const adminCookieName = 'outpost_admin';
/** How long a signed-in browser stays signed in. */
export const sessionSeconds = 12 * 3600;

/** Constant time for equal lengths; different lengths are unequal at once (the length is not secret). */
function same(given: Buffer, expected: Buffer): boolean {
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export class AdminToken {
  private readonly token: Buffer | undefined;
  private readonly secret: string | undefined;

  constructor(
    token: string | undefined,
    private readonly clock: Clock = systemClock,
  ) {
    this.token = token ? Buffer.from(token) : undefined;
    this.secret = token || undefined;
  }

  private mac(expiry: string): Buffer {
    return createHmac('sha256', this.secret!).update(`outpost status page session v1 ${expiry}`).digest();
  }

  /** Whether a token is configured at all. */
  get configured(): boolean {
    return this.token !== undefined;
  }

  /** Whether `given` is the token (constant time). */
  matches(given: string): boolean {
    return this.token !== undefined && same(Buffer.from(given), this.token);
  }

  /** A new session cookie's value, good for {@link sessionSeconds}; undefined when no token is configured. */
  sessionValue(): string | undefined {
    if (this.secret === undefined) return undefined;
    const expiry = String(Math.floor(this.clock.now() / 1000) + sessionSeconds);
    return `${expiry}.${this.mac(expiry).toString('base64url')}`;
  }

  /** Whether a session cookie's value is one this token issued and has not expired. */
  private validSession(value: string): boolean {
    const dot = value.indexOf('.');
    if (this.secret === undefined || dot < 1 || dot > 12) return false;
    const expiry = value.slice(0, dot);
    if (!/^\d+$/.test(expiry)) return false;
    const macOk = same(Buffer.from(value.slice(dot + 1)), Buffer.from(this.mac(expiry).toString('base64url')));
    return macOk && Number(expiry) * 1000 > this.clock.now();
  }

  /** Whether the request bears the token (bearer header) or, for GET and HEAD, the session cookie. */
  allows(req: IncomingMessage): boolean {
    if (this.token === undefined) return false;
    const header = req.headers.authorization ?? '';
    if (header.startsWith('Bearer ')) return same(Buffer.from(header.slice(7)), this.token);
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const raw = req.headers.cookie;
    if (raw === undefined || raw.length > 8_192) return false;
    const cookie = parseCookie(raw)[adminCookieName];
    return cookie !== undefined && this.validSession(cookie);
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
