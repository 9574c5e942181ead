/**
 * Hiding secrets in configuration before it is printed or logged. Secrets
 * are recognised by field name (`password`, `token`, `peerSecret`, wherever
 * they sit, so a new `registries[].password` is covered without being listed
 * here) and by shape: credentials embedded in a URL (`redis://:secret@redis`).
 */
import type { Config } from './types.ts';

export const REDACTED = '[redacted]';

const SECRET_FIELDS: ReadonlySet<string> = new Set(['password', 'token', 'peerSecret']);

/**
 * Replaces the user-info part of every URL in `text` (comma- or
 * space-separated lists included) with `[redacted]`: `redis://:pw@host` →
 * `redis://[redacted]@host`. Without a scheme, only a `user:pass@host` form
 * is treated as credentials (an e-mail address is not).
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

/**
 * A deep copy of `value` with secrets replaced by `[redacted]`; `fieldName`
 * is the name it is stored under, if any. Unset secrets (`undefined`,
 * `null`, `''`) stay as they are, so the output still tells set from unset.
 */
export function redactValue(value: unknown, fieldName?: string): unknown {
  if (fieldName !== undefined && SECRET_FIELDS.has(fieldName)) return value === undefined || value === null || value === '' ? value : REDACTED;
  if (typeof value === 'string') return redactUrlCredentials(value);
  if (Array.isArray(value)) return value.map((item: unknown) => redactValue(item));
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, redactValue(item, key)]));
}

/** The configuration with every secret hidden, for `outpost config check` and the start-up log. */
export function redactedConfig(config: Config): Config {
  return redactValue(config) as Config;
}
