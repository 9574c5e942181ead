/**
 * Platforms as prefetch names them: `os/architecture[/variant]`
 * (`linux/amd64`, `linux/arm64/v8`). Parsed once from the job config, a
 * query string or a CLI flag; matched against an index's descriptors.
 */
import type { Platform } from '../registry/manifest-references.ts';

/** Longest platform list one warm accepts (a query string, a request body, a CLI). */
export const MAX_PLATFORMS = 16;

const platformPattern = /^[a-z0-9][a-z0-9._-]{0,63}\/[a-z0-9][a-z0-9._-]{0,63}(?:\/[a-z0-9][a-z0-9._-]{0,63})?$/;

/** A platform filter that could not be parsed; the message names it. */
export class PlatformError extends Error {
  override readonly name = 'PlatformError';
  readonly code = 'PLATFORM_INVALID';
}

/** `os/arch[/variant]`, lower case; throws {@link PlatformError} otherwise. */
export function parsePlatform(value: unknown): string {
  if (typeof value !== 'string' || !platformPattern.test(value)) {
    throw new PlatformError(`invalid platform ${JSON.stringify(String(value).slice(0, 80))}: the form is os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8`);
  }
  return value;
}

/** A list of platforms, deduplicated, bounded by {@link MAX_PLATFORMS}. */
export function parsePlatforms(values: readonly unknown[]): string[] {
  if (values.length > MAX_PLATFORMS) throw new PlatformError(`at most ${MAX_PLATFORMS} platforms`);
  return [...new Set(values.map(parsePlatform))];
}

/** The descriptor's platform as `os/arch[/variant]`, or undefined when it has none. */
export function platformName(platform: Platform | undefined): string | undefined {
  if (platform === undefined) return undefined;
  return platform.variant ? `${platform.os}/${platform.architecture}/${platform.variant}` : `${platform.os}/${platform.architecture}`;
}

/**
 * Whether a child of an index is selected by `wanted` (empty: every
 * platform). `linux/arm64` selects every variant of it; `linux/arm64/v8`
 * only that variant.
 */
export function platformSelected(wanted: readonly string[], platform: Platform | undefined): boolean {
  if (wanted.length === 0) return true;
  const name = platformName(platform);
  if (name === undefined) return false;
  const base = `${platform!.os}/${platform!.architecture}`;
  return wanted.some((w) => w === name || w === base);
}
