/**
 * Hiding secrets in configuration before it is printed or logged: by field
 * name (`password`, `token`, `peerSecret`, wherever they sit, so a new
 * `registries[].password` is covered without being listed here) and by shape:
 * credentials in a URL (`redis://:secret@redis`).
 */
import type { Config } from './types.ts';

export const REDACTED = '[redacted]';

const SECRET_FIELDS: ReadonlySet<string> = new Set(['password', 'token', 'peerSecret']);

/**
 * Replaces the user-info of every URL in `text` (lists included):
 * `redis://:pw@host` → `redis://[redacted]@host`. Without a scheme, only
 * `user:pass@host` counts as credentials (an e-mail address does not).
 */
export function redactUrlCredentials(text: string): string {
  return text
    .split(/([\s,]+)/)
    .map((token, index) => {
      const [whole, scheme = '', userinfo = ''] = (index % 2 === 0 && /^([a-z][a-z0-9+.-]*:\/\/)?([^/?#]*)@/i.exec(token)) || [];
      return whole === undefined || (scheme === '' && !userinfo.includes(':')) ? token : `${scheme}${REDACTED}@${token.slice(whole.length)}`;
    })
    .join('');
}

/** A deep copy of `value` (stored under `fieldName`, if any) with secrets redacted; unset ones (`undefined`, `null`, `''`) stay unset. */
export function redactValue(value: unknown, fieldName?: string): unknown {
  if (fieldName !== undefined && SECRET_FIELDS.has(fieldName)) return value === undefined || value === null || value === '' ? value : REDACTED;
  if (typeof value === 'string') return redactUrlCredentials(value);
  if (Array.isArray(value)) return value.map((item: unknown) => redactValue(item));
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, redactValue(item, key)]));
}

/** The configuration with every secret hidden, for `outpost config check` and the start-up log. */
export const redactedConfig = (config: Config): Config => redactValue(config) as Config;
