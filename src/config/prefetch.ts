/**
 * The `prefetch:` jobs and the retention schedule/rules of the config file,
 * parsed strictly. Problems inside a job are located (`[1].schedule`) and
 * name the job (`job "nightly"`). Which primary a job's `upstream` means is
 * decided by the loader, which knows the primaries.
 */
import { Cron } from 'croner';
import { parseRepositoryPatterns } from '../auth/config.ts';
import { canEverInclude, IMAGE_PATTERN_ALLOWED, ImagePatternError, parseImagePatterns } from '../registry/image-pattern.ts';
import { fail, FormatError, or, parseField, parseList, parseObject, valueFormats } from './formats.ts';

export const CRON_ALLOWED = 'a 5-field cron expression "minute hour day-of-month month day-of-week", e.g. "0 3 * * *" (no seconds field, no @daily)';

/** A 5-field cron expression croner accepts in `timezone`, trimmed. */
export function parseCron(value: unknown, timezone = 'UTC'): string {
  const text = typeof value === 'string' ? value.trim() : '';
  const fields = text.split(/\s+/).length;
  if (fields !== 5) fail(typeof value === 'string' ? `has ${fields} field${fields === 1 ? '' : 's'}, not 5` : 'not a string', CRON_ALLOWED, value);
  try {
    new Cron(text, { timezone, paused: true }).stop();
    return text;
  } catch (error) {
    return fail(`not a valid cron expression (${(error as Error).message.split('\n')[0]})`, CRON_ALLOWED, value);
  }
}

function parseTimezone(value: unknown): string {
  const zone = typeof value === 'string' ? value.trim() : '';
  try {
    Intl.DateTimeFormat('en', { timeZone: zone }); // a RangeError for a zone this runtime does not know
    if (zone !== '') return zone;
  } catch {
    // not a time zone
  }
  return fail('not a time zone', 'an IANA time zone, e.g. UTC, Europe/Berlin, America/New_York', value);
}

/** A number in (min, max], or [min, max] for `whole` numbers. */
const inRange = (min: number, max: number, whole: boolean, allowed: string) => (value: unknown) => {
  if (typeof value !== 'number' || !Number.isFinite(value) || (whole && !Number.isSafeInteger(value))) fail(whole ? 'not a whole number' : 'not a number', allowed, value);
  return value > max || (whole ? value < min : value <= min) ? fail('out of range', allowed, value) : value;
};

const oneOf = <T>(options: readonly T[], reason: string, allowed: string) => (value: unknown): T => (options.includes(value as T) ? (value as T) : fail(reason, allowed, value));

const IMAGES_ALLOWED = `a non-empty list of image patterns, at least one including, each ${IMAGE_PATTERN_ALLOWED}`;

function parseImages(value: unknown): string[] {
  const items = parseList(value, IMAGES_ALLOWED, 1000, (item) => item);
  try {
    const patterns = parseImagePatterns(items);
    if (canEverInclude(patterns)) return patterns.map((pattern) => pattern.source);
  } catch (error) {
    if (!(error instanceof ImagePatternError)) throw error;
    throw new FormatError(error.reason, IMAGES_ALLOWED, items[error.index ?? 0], `[${error.index ?? 0}]`);
  }
  return fail(items.length === 0 ? 'must not be empty' : 'a pattern list that can never include anything (only exclusions)', IMAGES_ALLOWED, value);
}

const PLATFORMS_ALLOWED = 'a list of platforms os/arch[/variant], e.g. [linux/amd64, linux/arm64/v8]';
const JOB_NAME_ALLOWED = 'a unique name of a-z, 0-9, ".", "_" and "-", starting with a letter or digit, at most 63 characters';

/** How a job is read (see PRODUCT.md "Cache behaviour"); `schedule` is checked again in the job's time zone. */
const JOB_FIELDS = {
  // It appears in URLs, metrics and etcd keys.
  name: (value: unknown) => (typeof value === 'string' && /^[a-z0-9][a-z0-9._-]{0,62}$/.test(value) ? value : fail('not a valid job name', JOB_NAME_ALLOWED, value)),
  schedule: (value: unknown) => parseCron(value),
  timezone: or('UTC', parseTimezone),
  upstream: valueFormats['optional-registry-host'].parse,
  images: parseImages,
  updatedWithinDays: or(undefined, inRange(1, 36_500, true, 'a whole number of days from 1 to 36500, or leave it out for any age')),
  platforms: or([], (value) =>
    parseList(value, PLATFORMS_ALLOWED, 64, (item) =>
      typeof item === 'string' && /^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*){1,2}$/.test(item) ? item : fail('not a platform', PLATFORMS_ALLOWED, item),
    ),
  ),
  replicas: or('all', oneOf(['all', 'one'] as const, 'not a replica mode', 'all (every replica ends warm) or one (one copy per cluster)')),
  runOnStart: or(false, oneOf([true, false], 'not a boolean', 'true or false')),
  concurrency: or(2, inRange(1, 64, true, 'a whole number from 1 to 64')),
  requestsPerSecond: or(10, inRange(0, 10_000, false, 'a number greater than 0 (at most 10000), e.g. 10 or 0.5')),
};

export const PREFETCH_ALLOWED = `a list of at most 100 jobs, objects with keys ${Object.keys(JOB_FIELDS).join(', ')} (name, schedule and images required)`;

/** A job as written, before its upstream is resolved (undefined: the default primary). */
export type PrefetchJobEntry = { -readonly [K in keyof typeof JOB_FIELDS]: ReturnType<(typeof JOB_FIELDS)[K]> };

/** The `prefetch` list; unset means no jobs. Names must be unique. */
export function parsePrefetchJobs(value: unknown): PrefetchJobEntry[] {
  const seen = new Set<string>();
  return parseList(value ?? [], PREFETCH_ALLOWED, 100, (raw) => {
    const name = (raw as { name?: unknown } | null)?.name;
    try {
      const job = parseObject(raw, JOB_FIELDS, PREFETCH_ALLOWED, ['name', 'schedule', 'images']);
      parseField('schedule', () => parseCron(job.schedule, job.timezone));
      if (seen.has(job.name)) throw new FormatError('duplicate job name', JOB_NAME_ALLOWED, job.name, 'name');
      seen.add(job.name);
      return job;
    } catch (error) {
      if (!(error instanceof FormatError) || typeof name !== 'string') throw error;
      throw new FormatError(`${error.reason} (job ${JSON.stringify(name.slice(0, 64))})`, error.allowed, error.value, error.path, error.valueHidden);
    }
  });
}

export const RETENTION_RULES_ALLOWED =
  'a list of objects {repositories: [repository patterns], unusedFor: a duration greater than 0}, e.g. [{repositories: ["ci/*"], unusedFor: 168h}]';

const RULE_FIELDS = {
  repositories: (value: unknown) => parseRepositoryPatterns(value ?? null, { needsInclude: true }),
  unusedFor: valueFormats['positive-duration'].parse,
};

/** `cache.retentionRules`; unset means none. */
export function parseRetentionRules(value: unknown): Array<{ repositories: string[]; unusedForMs: number }> {
  return parseList(value ?? [], RETENTION_RULES_ALLOWED, 1000, (raw) => {
    const { repositories, unusedFor } = parseObject(raw, RULE_FIELDS, RETENTION_RULES_ALLOWED, ['unusedFor']);
    return { repositories, unusedForMs: unusedFor };
  });
}
