/**
 * Content digests (`algorithm:encoded`), as the OCI image spec defines them.
 * Outpost verifies sha256 and sha512; other well-formed algorithms are
 * rejected as DIGEST_INVALID because their content cannot be verified.
 */
import { createHash, type Hash } from 'node:crypto';
import { RegistryError } from './errors.ts';

export type DigestAlgorithm = 'sha256' | 'sha512';

export interface Digest {
  algorithm: DigestAlgorithm;
  /** Lower-case hex. */
  encoded: string;
  /** `algorithm:encoded`. */
  value: string;
}

const encodedPattern: Record<DigestAlgorithm, RegExp> = {
  sha256: /^[a-f0-9]{64}$/,
  sha512: /^[a-f0-9]{128}$/,
};

/** Parses a digest or returns undefined when it is malformed or of an algorithm we cannot verify. */
export function tryParseDigest(value: string): Digest | undefined {
  const colon = value.indexOf(':');
  if (colon <= 0) return undefined;
  const algorithm = value.slice(0, colon);
  const encoded = value.slice(colon + 1);
  if (algorithm !== 'sha256' && algorithm !== 'sha512') return undefined;
  if (!encodedPattern[algorithm].test(encoded)) return undefined;
  return { algorithm, encoded, value };
}

export function parseDigest(value: string): Digest {
  const digest = tryParseDigest(value);
  if (!digest) throw new RegistryError('DIGEST_INVALID', 'invalid digest', { detail: { digest: value.slice(0, 200) } });
  return digest;
}

/** True when the string has the general digest shape (so it is not a tag). */
export function looksLikeDigest(reference: string): boolean {
  return reference.includes(':');
}

export function createDigester(algorithm: DigestAlgorithm): Hash {
  return createHash(algorithm);
}

export function digestOf(data: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}
