/**
 * Hiding secrets in configuration before it is printed or logged.
 *
 * Secrets are recognised by field name (`password`, `token`, wherever they
 * sit, so a new `registries[].password` or `auth.token` is covered without
 * being listed here) and by shape: credentials embedded in a URL
 * (`redis://:secret@redis:6379`, `http://user:pass@etcd:2379`).
 */
import type { Config } from './types.ts';

export const REDACTED = '[redacted]';

const SECRET_FIELDS: ReadonlySet<string> = new Set(['password', 'token', 'peerSecret']);

/** Is a field of this name a secret? */
export function isSecretField(name: string): boolean {
  return SECRET_FIELDS.has(name);
}

/**
 * Replaces the user-info part of every URL in `text` (comma- or
 * space-separated lists included) with `[redacted]`:
 * `redis://:pw@host` → `redis://[redacted]@host`. Without a scheme, only a
 * `user:pass@host` form is treated as credentials (an e-mail address is not).
 */
export function redactUrlCredentials(text: string): string {
  return text
    .split(/([\s,]+)/)
    .map((token, index) => (index % 2 === 1 ? token : redactToken(token)))
    .join('');
}

function redactToken(token: string): string {
  const match = /^([a-z][a-z0-9+.-]*:\/\/)?([^/?#]*)@/i.exec(token);
  if (!match) return token;
  const [whole, scheme = '', userinfo = ''] = match;
  if (scheme === '' && !userinfo.includes(':')) return token;
  return `${scheme}${REDACTED}@${token.slice(whole.length)}`;
}

/**
 * A deep copy of `value` with secrets replaced by `[redacted]`. `fieldName`
 * is the name the value is stored under, if any. Unset secrets (`undefined`,
 * `null`, `''`) stay as they are, so the output still tells set from unset.
 */
export function redactValue(value: unknown, fieldName?: string): unknown {
  if (fieldName !== undefined && isSecretField(fieldName)) {
    return value === undefined || value === null || value === '' ? value : REDACTED;
  }
  if (typeof value === 'string') return redactUrlCredentials(value);
  if (Array.isArray(value)) return value.map((item: unknown) => redactValue(item));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, redactValue(item, key)]));
  }
  return value;
}

/**
 * The configuration with every secret hidden, for `outpost config check` and
 * the start-up log: the upstream and registries' passwords, the admin token,
 * the peer secret,
 * and credentials inside the Redis URL, etcd endpoints or any other URL.
 */
export function redactedConfig(config: Config): Config {
  return redactValue(config) as Config;
}
