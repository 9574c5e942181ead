/** How a failure of the primary becomes an OCI error for the client. */
import { RegistryError, type ErrorCode } from '../registry/errors.ts';
import { isUpstreamError, type CacheObserver } from './ports.ts';

export function toRegistryError(err: unknown, notFound: ErrorCode): RegistryError {
  if (err instanceof RegistryError) return err;
  if (!isUpstreamError(err)) return new RegistryError('UNKNOWN', undefined, { cause: err });
  switch (err.code) {
    case 'UPSTREAM_NOT_FOUND':
      return new RegistryError(notFound, undefined, { cause: err });
    case 'UPSTREAM_UNAUTHORIZED':
    case 'UPSTREAM_DENIED':
      return new RegistryError('DENIED', 'the primary registry refused access to this repository', { cause: err });
    case 'UPSTREAM_RATE_LIMITED':
      return new RegistryError('TOOMANYREQUESTS', 'the primary registry is rate limiting this mirror', {
        cause: err,
        headers: err.retryAfter !== undefined ? { 'retry-after': String(err.retryAfter) } : {},
      });
    case 'UPSTREAM_TIMEOUT':
    case 'UPSTREAM_ABORTED':
      return new RegistryError('UPSTREAM_TIMEOUT', undefined, { cause: err });
    default:
      return new RegistryError('UPSTREAM_UNAVAILABLE', undefined, { cause: err });
  }
}

/** A failure of a blob request to the primary, counted on `observer`; bytes that do not match become UPSTREAM_UNAVAILABLE. */
export function blobFailure(err: unknown, observer: Pick<CacheObserver, 'upstreamFailure'>): RegistryError {
  if (err instanceof RegistryError) return err;
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === 'DIGEST_MISMATCH' || code === 'SIZE_MISMATCH') {
    observer.upstreamFailure(code);
    return new RegistryError('UPSTREAM_UNAVAILABLE', 'the primary sent content that does not match the digest');
  }
  if (typeof code === 'string') observer.upstreamFailure(code);
  return toRegistryError(err, 'BLOB_UNKNOWN');
}

/** A failure while reading the primary's body: a timeout, or a broken/truncated transfer. */
export function bodyFailure(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === 'UND_ERR_BODY_TIMEOUT' || code === 'UPSTREAM_TIMEOUT') {
    return new RegistryError('UPSTREAM_TIMEOUT', 'the primary stopped sending the blob', { cause: err });
  }
  return new RegistryError('UPSTREAM_UNAVAILABLE', 'the transfer from the primary broke off', { cause: err });
}
