/** The admin bearer token (`OUTPOST_ADMIN_TOKEN`) that guards the admin API and cluster status. */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { RegistryError } from '../registry/errors.ts';

export class AdminToken {
  private readonly token: Buffer | undefined;

  constructor(token: string | undefined) {
    this.token = token ? Buffer.from(token) : undefined;
  }

  /** Throws UNSUPPORTED when no token is configured (the endpoint is off), UNAUTHORIZED unless the request bears it. */
  authorize(req: IncomingMessage, what = 'the admin API'): void {
    if (!this.token) throw new RegistryError('UNSUPPORTED', `${what} is off: set OUTPOST_ADMIN_TOKEN`);
    const header = req.headers.authorization ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    if (given.length !== this.token.length || !timingSafeEqual(given, this.token)) {
      throw new RegistryError('UNAUTHORIZED', 'a valid admin bearer token is required', {
        headers: { 'www-authenticate': 'Bearer realm="outpost-admin"' },
      });
    }
  }
}
