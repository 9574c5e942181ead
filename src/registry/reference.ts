/**
 * Repository names and tags, per the OCI distribution spec grammar:
 *
 *   name      = component ( "/" component )*
 *   component = [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
 *   tag       = [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
 *
 * Anything else — `..`, empty components, upper case, encoded characters —
 * is refused before it can reach a file path: a bad name is NAME_INVALID
 * (400); a bad tag names no manifest, so it is MANIFEST_UNKNOWN (404), as
 * the OCI conformance suite's "nonexistent manifest" (`.INVALID_MANIFEST_NAME`)
 * requires. Malformed digests stay DIGEST_INVALID (400).
 */
import { RegistryError } from './errors.ts';
import { looksLikeDigest, parseDigest, type Digest } from './digest.ts';

const componentPattern = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const tagPattern = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

/** Longest repository name accepted (distribution's limit). */
export const maxNameLength = 255;

export function isValidName(name: string): boolean {
  if (name.length === 0 || name.length > maxNameLength) return false;
  return name.split('/').every((component) => componentPattern.test(component));
}

export function validateName(name: string): string {
  if (!isValidName(name)) {
    throw new RegistryError('NAME_INVALID', 'invalid repository name', { detail: { name: name.slice(0, 300) } });
  }
  return name;
}

export function isValidTag(tag: string): boolean {
  return tagPattern.test(tag);
}

export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest };

/**
 * A manifest reference: a tag, or a digest. A malformed digest is
 * DIGEST_INVALID; a string that is not a valid tag is MANIFEST_UNKNOWN,
 * since no manifest can be tagged with it.
 */
export function parseReference(reference: string): Reference {
  if (looksLikeDigest(reference)) return { kind: 'digest', digest: parseDigest(reference) };
  if (!isValidTag(reference)) {
    throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown: not a valid tag', { detail: { reference: reference.slice(0, 200) } });
  }
  return { kind: 'tag', tag: reference };
}

/** Docker Hub's official images live under `library/`: `nginx` means `library/nginx`. */
export function normalizeDockerHubName(name: string): string {
  return name.includes('/') ? name : `library/${name}`;
}

const dockerHubHosts = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

export function isDockerHubHost(host: string): boolean {
  return dockerHubHosts.has(host.toLowerCase());
}

/** The other names clients use for a Docker Hub primary (`docker.io` for `registry-1.docker.io`); none for any other host. */
export function dockerHubAliases(host: string): string[] {
  return isDockerHubHost(host) ? ['docker.io', 'index.docker.io', 'registry-1.docker.io'].filter((alias) => alias !== host.toLowerCase()) : [];
}
