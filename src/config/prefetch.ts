/**
 * The `prefetch:` jobs and the retention schedule/rules of the config file,
 * parsed strictly. Each parser throws a {@link FormatError} located inside
 * the value (`[1].schedule`); problems inside a job name it (`job "nightly"`).
 * Which primary a job's `upstream` means is decided by the loader, which
 * knows the primaries.
 */
import { Cron } from 'croner';
import { parseRepositoryPatterns } from '../auth/config.ts';
import { canEverInclude, IMAGE_PATTERN_ALLOWED, ImagePatternError, parseImagePatterns } from '../registry/image-pattern.ts';
import { FormatError, parseOptionalRegistryHost, parsePositiveDuration } from './formats.ts';
import type { PrefetchJobConfig } from './types.ts';

export const CRON_ALLOWED = 'a 5-field cron expression "minute hour day-of-month month day-of-week", e.g. "0 3 * * *" (no seconds field, no @daily)';

/** A 5-field cron expression croner accepts in `timezone`; returned trimmed. */
export function parseCron(value: unknown, timezone = 'UTC'): string {
  if (typeof value !== 'string') throw new FormatError('not a string', CRON_ALLOWED, value);
  const text = value.trim();
  const fields = text.split(/\s+/).length;
  if (fields !== 5) throw new FormatError(`has ${fields} field${fields === 1 ? '' : 's'}, not 5`, CRON_ALLOWED, value);
  try {
    new Cron(text, { timezone, paused: true }).stop();
  } catch (error) {
    throw new FormatError(`not a valid cron expression (${(error as Error).message.split('\n')[0]})`, CRON_ALLOWED, value);
  }
  return text;
}

export function parseOptionalCron(value: unknown): string | undefined {
  return value === null || value === undefined || value === '' ? undefined : parseCron(value);
}

const TIMEZONE_ALLOWED = 'an IANA time zone, e.g. UTC, Europe/Berlin, America/New_York';

function parseTimezone(value: unknown): string {
  if (value === null || value === undefined) return 'UTC';
  try {
    if (typeof value !== 'string' || value.trim() === '') throw new RangeError();
    return new Intl.DateTimeFormat('en', { timeZone: value.trim() }).resolvedOptions().timeZone === '' ? 'UTC' : value.trim();
  } catch {
    throw new FormatError('not a time zone', TIMEZONE_ALLOWED, value);
  }
}

export const PREFETCH_JOB_KEYS = [
  'name',
  'schedule',
  'timezone',
  'upstream',
  'images',
  'updatedWithinDays',
  'platforms',
  'replicas',
  'runOnStart',
  'concurrency',
  'requestsPerSecond',
] as const;

export const PREFETCH_LIMITS = { jobs: 100, images: 1000, platforms: 64, concurrency: 64, days: 36_500 } as const;

export const PREFETCH_ALLOWED =
  `a list of jobs, objects with keys ${PREFETCH_JOB_KEYS.join(', ')} (name, schedule and images required), ` +
  `at most ${PREFETCH_LIMITS.jobs}`;
const JOB_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const JOB_NAME_ALLOWED = 'a unique name of a-z, 0-9, ".", "_" and "-", starting with a letter or digit, at most 63 characters';
const IMAGES_ALLOWED = `a non-empty list of image patterns, at least one including, each ${IMAGE_PATTERN_ALLOWED}`;
const PLATFORM = /^[a-z0-9][a-z0-9._-]*\/[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)?$/;
const PLATFORMS_ALLOWED = 'a list of platforms os/arch[/variant], e.g. [linux/amd64, linux/arm64/v8]';

/** A job as written, before its upstream is resolved (undefined: the default primary). */
export type PrefetchJobEntry = Omit<PrefetchJobConfig, 'upstream'> & { upstream: string | undefined };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function list(value: unknown, allowed: string, max: number): unknown[] {
  if (!Array.isArray(value)) throw new FormatError('not a list', allowed, value);
  if (value.length > max) throw new FormatError(`more than ${max} entries`, allowed, value.length);
  return value;
}

/** A number in [min, max] (min excluded when not `integer`). */
function bounded(value: unknown, min: number, max: number, integer: boolean, allowed: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || (integer && !Number.isSafeInteger(value))) {
    throw new FormatError(integer ? 'not a whole number' : 'not a number', allowed, value);
  }
  if (value > max || (integer ? value < min : value <= min)) throw new FormatError('out of range', allowed, value);
  return value;
}

function parseJob(raw: unknown): PrefetchJobEntry {
  if (!isObject(raw)) throw new FormatError('not an object', PREFETCH_ALLOWED, raw);
  for (const key of Object.keys(raw)) {
    if (!(PREFETCH_JOB_KEYS as readonly string[]).includes(key)) {
      throw new FormatError('unknown key', `one of ${PREFETCH_JOB_KEYS.join(', ')}`, raw[key], key, true);
    }
  }
  const field = <T>(key: (typeof PREFETCH_JOB_KEYS)[number], parse: (value: unknown) => T, fallback?: T): T => {
    const value = raw[key];
    try {
      if (value === undefined || value === null) {
        if (fallback !== undefined) return fallback;
        if (key !== 'upstream' && key !== 'updatedWithinDays') throw new FormatError('required', 'a value', undefined);
      }
      return parse(value);
    } catch (error) {
      throw error instanceof FormatError ? error.within(key) : error;
    }
  };
  const name = field('name', (value) => {
    if (typeof value === 'string' && JOB_NAME.test(value)) return value;
    throw new FormatError('not a valid job name', JOB_NAME_ALLOWED, value);
  });
  const timezone = field('timezone', parseTimezone, 'UTC');
  return {
    name,
    schedule: field('schedule', (value) => parseCron(value, timezone)),
    timezone,
    upstream: field('upstream', parseOptionalRegistryHost),
    images: field('images', (value) => {
      const items = list(value, IMAGES_ALLOWED, PREFETCH_LIMITS.images);
      let patterns;
      try {
        patterns = parseImagePatterns(items);
      } catch (error) {
        if (!(error instanceof ImagePatternError)) throw error;
        throw new FormatError(error.reason, IMAGES_ALLOWED, items[error.index ?? 0], `[${error.index ?? 0}]`);
      }
      if (!canEverInclude(patterns)) {
        throw new FormatError(items.length === 0 ? 'must not be empty' : 'a pattern list that can never include anything (only exclusions)', IMAGES_ALLOWED, value);
      }
      return patterns.map((pattern) => pattern.source);
    }),
    updatedWithinDays: field('updatedWithinDays', (value) =>
      value === undefined || value === null ? undefined : bounded(value, 1, PREFETCH_LIMITS.days, true, `a whole number of days from 1 to ${PREFETCH_LIMITS.days}, or leave it out for any age`),
    ),
    platforms: field(
      'platforms',
      (value) =>
        list(value, PLATFORMS_ALLOWED, PREFETCH_LIMITS.platforms).map((item, index) => {
          if (typeof item === 'string' && PLATFORM.test(item)) return item;
          throw new FormatError('not a platform', PLATFORMS_ALLOWED, item, `[${index}]`);
        }),
      [],
    ),
    replicas: field(
      'replicas',
      (value) => {
        if (value === 'all' || value === 'one') return value;
        throw new FormatError('not a replica mode', 'all (every replica ends warm) or one (one copy per cluster)', value);
      },
      'all' as const,
    ),
    runOnStart: field(
      'runOnStart',
      (value) => {
        if (typeof value === 'boolean') return value;
        throw new FormatError('not a boolean', 'true or false', value);
      },
      false,
    ),
    concurrency: field('concurrency', (value) => bounded(value, 1, PREFETCH_LIMITS.concurrency, true, `a whole number from 1 to ${PREFETCH_LIMITS.concurrency}`), 2),
    requestsPerSecond: field('requestsPerSecond', (value) => bounded(value, 0, 10_000, false, 'a number greater than 0 (at most 10000), e.g. 10 or 0.5'), 10),
  };
}

/** The `prefetch` list; unset means no jobs. Names must be unique. */
export function parsePrefetchJobs(value: unknown): PrefetchJobEntry[] {
  if (value === null || value === undefined) return [];
  const seen = new Set<string>();
  return list(value, PREFETCH_ALLOWED, PREFETCH_LIMITS.jobs).map((raw, index) => {
    const named = isObject(raw) && typeof raw.name === 'string' ? ` (job ${JSON.stringify(raw.name.slice(0, 64))})` : '';
    try {
      const job = parseJob(raw);
      if (seen.has(job.name)) throw new FormatError('duplicate job name', JOB_NAME_ALLOWED, job.name, 'name');
      seen.add(job.name);
      return job;
    } catch (error) {
      if (!(error instanceof FormatError)) throw error;
      throw new FormatError(`${error.reason}${named}`, error.allowed, error.value, error.path, error.valueHidden).within(`[${index}]`);
    }
  });
}

export const RETENTION_RULES_ALLOWED =
  'a list of objects {repositories: [repository patterns], unusedFor: a duration greater than 0}, e.g. [{repositories: ["ci/*"], unusedFor: 168h}]';

/** `cache.retentionRules`; unset means none. */
export function parseRetentionRules(value: unknown): Array<{ repositories: string[]; unusedForMs: number }> {
  if (value === null || value === undefined) return [];
  return list(value, RETENTION_RULES_ALLOWED, 1000).map((raw, index) => {
    try {
      if (!isObject(raw)) throw new FormatError('not an object', RETENTION_RULES_ALLOWED, raw);
      for (const key of Object.keys(raw)) {
        if (key !== 'repositories' && key !== 'unusedFor') throw new FormatError('unknown key', 'one of repositories, unusedFor', raw[key], key, true);
      }
      const at = <T>(key: string, parse: () => T): T => {
        try {
          return parse();
        } catch (error) {
          throw error instanceof FormatError ? error.within(key) : error;
        }
      };
      return {
        repositories: at('repositories', () => parseRepositoryPatterns(raw.repositories ?? null, { needsInclude: true })),
        unusedForMs: at('unusedFor', () => {
          if (raw.unusedFor === undefined || raw.unusedFor === null) throw new FormatError('required', 'a duration greater than 0, e.g. 168h', undefined);
          return parsePositiveDuration(raw.unusedFor);
        }),
      };
    } catch (error) {
      throw error instanceof FormatError ? error.within(`[${index}]`) : error;
    }
  });
}

/** The formats above, in the shape of formats.ts `valueFormats` (config file only: a string is read as JSON). */
const coerceJson = (text: string): unknown => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
};
export const prefetchValueFormats = {
  'prefetch-jobs': { allowed: PREFETCH_ALLOWED, parse: parsePrefetchJobs, coerce: coerceJson },
  'retention-rules': { allowed: RETENTION_RULES_ALLOWED, parse: parseRetentionRules, coerce: coerceJson },
  'optional-cron': { allowed: `${CRON_ALLOWED} (read in UTC), or unset`, parse: parseOptionalCron, coerce: (text: string) => text },
} as const;
