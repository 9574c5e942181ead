/**
 * An image as a client names it (`nginx:1.27`, `ghcr.io/org/app:v1`,
 * `127.0.0.1:5000/team/app@sha256:…`) → the {@link ImageRef} of a
 * configured primary:
 *
 * - A first component that is a configured primary's host or alias picks
 *   that primary; one that looks like a registry host (has a `.` or `:`, or
 *   is `localhost`, as Docker reads it) but is not configured is refused
 *   (NAME_UNKNOWN); anything else is a repository on the default primary.
 * - `@digest` or `:tag` after the last `/`; neither means `latest`.
 * - On a Docker Hub primary (`dockerHub`), `nginx` is `library/nginx`:
 *   the same routing clients' pulls get (cache/repository-resolver.ts).
 */
import type { RepositoryTarget } from '../cache/repository-target.ts';
import { RegistryError } from '../registry/errors.ts';
import { looksLikeDigest, parseDigest } from '../registry/digest.ts';
import { isValidTag, validateName } from '../registry/reference.ts';
import type { ImageRef } from './ports.ts';

/** Longest image reference accepted: a host, a maximal name and a digest. */
export const MAX_IMAGE_REFERENCE_LENGTH = 512;

export interface PrimaryRouting {
  /** The configured primary's host for a host or alias; undefined when none. */
  keyOf(host: string): string | undefined;
  /** The repository `name` names on the primary `ns` (undefined: the default one), Docker Hub's `library/` applied. */
  resolve(name: string, ns: string | undefined): Pick<RepositoryTarget, 'upstreamKey' | 'name'>;
}

function looksLikeHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}

/** Parses one reference; throws a RegistryError (400/404) naming what is wrong. */
export function parseClientImageReference(text: string, routing: PrimaryRouting): ImageRef {
  if (text.length === 0 || text.length > MAX_IMAGE_REFERENCE_LENGTH) {
    throw new RegistryError('NAME_INVALID', `an image reference has 1 to ${MAX_IMAGE_REFERENCE_LENGTH} characters`);
  }
  let rest = text;
  let host: string | undefined;
  const slash = text.indexOf('/');
  if (slash > 0) {
    const first = text.slice(0, slash);
    const known = routing.keyOf(first);
    if (known !== undefined) {
      host = known;
      rest = text.slice(slash + 1);
    } else if (looksLikeHost(first)) {
      throw new RegistryError('NAME_UNKNOWN', `no primary is configured for the registry ${first.slice(0, 200)}`, { detail: { image: text.slice(0, 200) } });
    }
  }
  let name: string;
  let reference: string;
  const at = rest.indexOf('@');
  if (at >= 0) {
    name = rest.slice(0, at);
    reference = parseDigest(rest.slice(at + 1));
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon > rest.lastIndexOf('/')) {
      name = rest.slice(0, colon);
      reference = rest.slice(colon + 1);
      if (looksLikeDigest(reference) || !isValidTag(reference)) {
        throw new RegistryError('TAG_INVALID', 'invalid tag', { detail: { image: text.slice(0, 200) } });
      }
    } else {
      name = rest;
      reference = 'latest';
    }
  }
  const target = routing.resolve(validateName(name), host);
  return { upstream: target.upstreamKey, repository: validateName(target.name), reference };
}
