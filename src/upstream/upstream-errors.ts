/**
 * Translation of everything that can go wrong on the wire into the
 * UpstreamError codes of the Upstream port: HTTP statuses on one side,
 * undici / Node socket / TLS errors and the caller's abort on the other.
 */
import { UpstreamError, type UpstreamErrorCode } from '../cache/ports.ts';

type HeaderValue = string | string[] | undefined;

/** The UpstreamError for a non-2xx final status. */
export function errorFromStatus(
  status: number,
  headers: Record<string, HeaderValue>,
  what: string,
  nowMs: number,
): UpstreamError {
  const message = `${what}: primary answered ${status}`;
  const reason = `the primary answered ${status}`;
  if (status === 429) {
    const retryAfter = parseRetryAfter(first(headers['retry-after']), nowMs);
    return new UpstreamError('UPSTREAM_RATE_LIMITED', message, { status, retryAfter, reason });
  }
  if (status >= 500) {
    const retryAfter = parseRetryAfter(first(headers['retry-after']), nowMs);
    return new UpstreamError('UPSTREAM_SERVER_ERROR', message, { status, retryAfter, reason });
  }
  return new UpstreamError(codeForStatus(status), message, { status, reason });
}

function codeForStatus(status: number): UpstreamErrorCode {
  switch (status) {
    case 404:
      return 'UPSTREAM_NOT_FOUND';
    case 401:
      return 'UPSTREAM_UNAUTHORIZED';
    case 403:
      return 'UPSTREAM_DENIED';
    default:
      return 'UPSTREAM_BAD_RESPONSE';
  }
}

/** `Retry-After` as seconds (delta-seconds or an HTTP date), or undefined. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - nowMs) / 1000));
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']);
const MALFORMED_CODES = new Set(['UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_HEADERS_OVERFLOW', 'UND_ERR_RES_EXCEEDED_MAX_SIZE']);

/**
 * Any error from an upstream exchange as an UpstreamError. The caller's
 * signal wins: once it aborted, the failure is UPSTREAM_ABORTED, or
 * UPSTREAM_TIMEOUT when its reason is a TimeoutError (`AbortSignal.timeout`).
 */
export function toUpstreamError(err: unknown, signal: AbortSignal, what: string): UpstreamError {
  if (signal.aborted) {
    const reason: unknown = signal.reason;
    const timedOut = reason instanceof Error && reason.name === 'TimeoutError';
    return new UpstreamError(timedOut ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_ABORTED', `${what}: ${timedOut ? 'deadline exceeded' : 'aborted'}`, {
      cause: reason,
      reason: timedOut ? 'no answer within the deadline' : 'the request was cancelled',
    });
  }
  if (err instanceof UpstreamError) return err;
  const code = errorCode(err);
  const detail = code ?? (err instanceof Error ? err.name : 'unknown error');
  const reason = transportReason(code, detail);
  if (code !== undefined && TIMEOUT_CODES.has(code)) {
    return new UpstreamError('UPSTREAM_TIMEOUT', `${what}: ${detail}`, { cause: err, reason });
  }
  // undici's HTTPParserError often has no code (a malformed Content-Length, say): still the primary's fault.
  if ((code !== undefined && (MALFORMED_CODES.has(code) || code.startsWith('HPE_'))) || (err instanceof Error && err.name === 'HTTPParserError')) {
    return new UpstreamError('UPSTREAM_BAD_RESPONSE', `${what}: ${detail}`, { cause: err, reason });
  }
  // Connection refused/reset, DNS, TLS, "other side closed" and anything
  // unexpected from the transport: the primary could not be talked to.
  return new UpstreamError('UPSTREAM_UNREACHABLE', `${what}: ${detail}`, { cause: err, reason });
}

const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NODATA', 'EAI_NONAME', 'EAI_ADDRFAMILY']);

/**
 * A transport failure in words an operator acts on, with the error code in
 * brackets. Built from the code only (never from the error's message, which
 * may hold a URL): nothing secret can get in.
 */
export function transportReason(code: string | undefined, fallback: string): string {
  if (code === undefined) return `transport error (${fallback})`;
  if (DNS_CODES.has(code)) return `DNS lookup failed (${code})`;
  if (code === 'ECONNREFUSED') return `connection refused (${code})`;
  if (code === 'ECONNRESET' || code === 'EPIPE') return `connection reset (${code})`;
  if (code === 'UND_ERR_SOCKET' || code === 'UND_ERR_CLOSED') return `connection closed by the primary (${code})`;
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EHOSTDOWN' || code === 'ENETDOWN') return `network unreachable (${code})`;
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT') return `connect timeout (${code})`;
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return `timeout waiting for response headers (${code})`;
  if (code === 'UND_ERR_BODY_TIMEOUT') return `timeout reading the response body (${code})`;
  if (/CERT|SSL|TLS/.test(code) || code === 'EPROTO' || code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE') return `TLS error (${code})`;
  if (MALFORMED_CODES.has(code) || code.startsWith('HPE_')) return `malformed response (${code})`;
  return `transport error (${code})`;
}

/**
 * The `code` of an error, looking through the AggregateError that Node's
 * happy-eyeballs connect raises when every address failed.
 */
export function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  if (err instanceof AggregateError) return errorCode(err.errors[0]);
  return undefined;
}

function first(value: HeaderValue): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
