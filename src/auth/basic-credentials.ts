/**
 * HTTP Basic credentials from clients (RFC 7617): reading
 * `Authorization: Basic <base64(user:password)>` and building the
 * `WWW-Authenticate: Basic realm="..."` challenge that makes
 * `docker login` send them.
 *
 * The header is untrusted: anything malformed — too long, not canonical
 * base64, not UTF-8, no `:`, an empty user, control characters — reads as
 * "no credentials" (undefined), never as an error that could echo it.
 */

export interface BasicCredentials {
  /** Never empty, never contains `:`. */
  username: string;
  /** May be empty; may contain `:`. */
  password: string;
}

/** Longest Authorization header read. Real ones are well under 1 KiB; a registry token as password fits. */
export const MAX_BASIC_AUTHORIZATION_LENGTH = 8 * 1024;

const BASIC = /^basic +([A-Za-z0-9+/]+={0,2}) *$/i;
// RFC 7617 §2: user-id and password exclude control characters.
const CONTROL = /[\u0000-\u001f\u007f]/;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The credentials of an `Authorization: Basic` header, or undefined when there are none or they are malformed. */
export function parseBasicAuthorization(header: string | undefined): BasicCredentials | undefined {
  if (typeof header !== 'string' || header.length > MAX_BASIC_AUTHORIZATION_LENGTH) return undefined;
  const match = BASIC.exec(header);
  const encoded = match?.[1];
  if (encoded === undefined || encoded.length % 4 !== 0) return undefined;
  const bytes = Buffer.from(encoded, 'base64');
  // Canonical only: padding bits must be zero, so one credential has one encoding.
  if (bytes.toString('base64') !== encoded) return undefined;
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return undefined;
  }
  const colon = text.indexOf(':');
  if (colon <= 0) return undefined;
  const username = text.slice(0, colon);
  const password = text.slice(colon + 1);
  if (CONTROL.test(username) || CONTROL.test(password)) return undefined;
  return { username, password };
}

/** A realm is printable text without control characters; config validation uses this. */
export function isValidRealm(realm: string): boolean {
  return realm.length > 0 && realm.length <= 256 && !CONTROL.test(realm);
}

/**
 * The `WWW-Authenticate` value asking for Basic credentials, with the realm
 * as a quoted-string (`"` and `\` escaped). Throws on a realm that is
 * empty, longer than 256 characters or holds control characters (it comes
 * from configuration, which should have refused it).
 */
export function basicChallenge(realm: string): string {
  if (!isValidRealm(realm)) throw new TypeError('invalid Basic realm: 1 to 256 characters without control characters');
  return `Basic realm="${realm.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}
