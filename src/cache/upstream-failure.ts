/** How a failure of the primary becomes an OCI error for the client. */
import { RegistryError, type ErrorCode } from '../registry/errors.ts';
import { isUpstreamError } from './ports.ts';

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
    case 'UPSTREAM_TIMEOUT':
    case 'UPSTREAM_ABORTED':
      return new RegistryError('UPSTREAM_TIMEOUT', undefined, { cause: err, detail });
    default:
      return new RegistryError('UPSTREAM_UNAVAILABLE', undefined, { cause: err, detail });
  }
}
