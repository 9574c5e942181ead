/**
 * Content digests (`algorithm:encoded`), as the OCI image spec defines them.
 * Outpost verifies sha256 and sha512; other well-formed algorithms are
 * rejected as DIGEST_INVALID because their content cannot be verified.
 *
 * A {@link Digest} is a branded string: the only way to get one is through
 * the parser below (or by hashing bytes), so storage/ — which builds file
 * paths from digests — can only ever be handed something that was checked.
 * Everything that arrives from outside (request paths, manifest bodies,
 * IPC messages, files on disk) goes through `parseDigest`/`tryParseDigest`.
 */
import { createHash, type Hash } from 'node:crypto';
import { RegistryError } from './errors.ts';

export type DigestAlgorithm = 'sha256' | 'sha512';

declare const digestBrand: unique symbol;

/** A validated `sha256:<64 hex>` or `sha512:<128 hex>` digest. */
export type Digest = string & { readonly [digestBrand]: true };

const digestPattern = /^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/** Parses a digest or returns undefined when it is malformed or of an algorithm we cannot verify. */
export function tryParseDigest(value: unknown): Digest | undefined {
  if (typeof value !== 'string' || value.length > 135 || !digestPattern.test(value)) return undefined;
  return value as Digest;
}

export function parseDigest(value: string): Digest {
  const digest = tryParseDigest(value);
  if (!digest) throw new RegistryError('DIGEST_INVALID', 'invalid digest', { detail: { digest: String(value).slice(0, 200) } });
  return digest;
}

export function digestAlgorithm(digest: Digest): DigestAlgorithm {
  return digest.startsWith('sha256:') ? 'sha256' : 'sha512';
}

/** The lower-case hex part after the colon. */
export function digestHex(digest: Digest): string {
  return digest.slice(digest.indexOf(':') + 1);
}

/** True when the string has the general digest shape (so it is not a tag). */
export function looksLikeDigest(reference: string): boolean {
  return reference.includes(':');
}

/** A hash of the digest's algorithm, to verify content against it. */
export function createDigester(digest: Digest): Hash {
  return createHash(digestAlgorithm(digest));
}

export function digestOf(data: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}` as Digest;
}

/** The digest a finished hash stands for. */
export function digestOfHash(algorithm: DigestAlgorithm, hash: Hash): Digest {
  return `${algorithm}:${hash.digest('hex')}` as Digest;
}
