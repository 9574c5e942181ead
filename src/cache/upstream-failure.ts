/** How a failure of the primary becomes an OCI error for the client. */
import { RegistryError, type ErrorCode } from '../registry/errors.ts';
import { isUpstreamError, type CacheObserver } from './ports.ts';

/**
 * The OCI error for a failed upstream call. A 502/504 names the cause in its
 * `detail` (`{"cause": "connection refused (ECONNREFUSED)"}`): the port's
 * `reason`, which never holds a URL, credential or token.
 */
export function toRegistryError(err: unknown, notFound: ErrorCode): RegistryError {
  if (err instanceof RegistryError) return err;
  if (!isUpstreamError(err)) return new RegistryError('UNKNOWN', undefined, { cause: err });
  const detail = err.reason === undefined ? undefined : { cause: err.reason };
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
    case 'UPSTREAM_BUSY':
      return new RegistryError('UNAVAILABLE', 'too many requests to the primary registry are waiting on this node', { cause: err, detail });
    case 'UPSTREAM_TIMEOUT':
    case 'UPSTREAM_ABORTED':
      return new RegistryError('UPSTREAM_TIMEOUT', undefined, { cause: err, detail });
    default:
      return new RegistryError('UPSTREAM_UNAVAILABLE', undefined, { cause: err, detail });
  }
}

/**
 * The client's error for a failed blob request to the primary. Failed
 * upstream calls are counted where they happen (the instrumented Upstream);
 * only content that fails verification, which the Upstream cannot see, is
 * reported on `observer`.
 */
export function blobFailure(err: unknown, observer: Pick<CacheObserver, 'upstreamFailure'>): RegistryError {
  if (err instanceof RegistryError) return err;
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === 'DIGEST_MISMATCH' || code === 'SIZE_MISMATCH') {
    observer.upstreamFailure(code);
    return new RegistryError('UPSTREAM_UNAVAILABLE', 'the primary sent content that does not match the digest');
  }
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
