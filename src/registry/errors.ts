/**
 * The one table of registry error descriptors: OCI code, HTTP status and the
 * default message. The core throws {@link RegistryError}; only the HTTP layer
 * turns one into a status line and the OCI JSON envelope
 * `{"errors":[{"code":"...","message":"...","detail":...}]}`.
 */
export const errorDescriptors = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 404, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  TAG_INVALID: { status: 400, message: 'manifest tag did not match URI' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  RANGE_INVALID: { status: 416, message: 'requested range not satisfiable' },
  UPSTREAM_UNAVAILABLE: { status: 502, message: 'the primary registry could not be reached and nothing is cached' },
  UPSTREAM_TIMEOUT: { status: 504, message: 'the primary registry did not answer in time and nothing is cached' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
  // Outpost's own API (admin) and any request body: not OCI codes, same envelope.
  BODY_INVALID: { status: 400, message: 'the request body is not valid' },
  BODY_TOO_LARGE: { status: 413, message: 'the request body is too large' },
  JOB_UNKNOWN: { status: 404, message: 'no prefetch job of that name is configured' },
  RUN_IN_PROGRESS: { status: 409, message: 'a run of this prefetch job is in progress' },
  UNKNOWN: { status: 500, message: 'unknown error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof errorDescriptors;

/** A failure the registry API reports to clients with an OCI error code. */
export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly detail: unknown;
  /** Extra response headers (e.g. `WWW-Authenticate`, `Retry-After`). */
  readonly headers: Record<string, string>;

  constructor(
    code: ErrorCode,
    message?: string,
    options: { detail?: unknown; cause?: unknown; headers?: Record<string, string> } = {},
  ) {
    super(message ?? errorDescriptors[code].message, { cause: options.cause });
    this.name = 'RegistryError';
    this.code = code;
    this.detail = options.detail;
    this.headers = options.headers ?? {};
  }

  get status(): number {
    return errorDescriptors[this.code].status;
  }
}

export function isRegistryError(err: unknown): err is RegistryError {
  return err instanceof RegistryError;
}

/** The OCI error envelope for an error; anything that is not a RegistryError becomes a bare 500. */
export function errorEnvelope(err: unknown): { status: number; headers: Record<string, string>; body: string } {
  if (isRegistryError(err)) {
    const entry: Record<string, unknown> = { code: err.code, message: err.message };
    if (err.detail !== undefined) entry.detail = err.detail;
    return { status: err.status, headers: err.headers, body: JSON.stringify({ errors: [entry] }) };
  }
  return {
    status: 500,
    headers: {},
    body: JSON.stringify({ errors: [{ code: 'UNKNOWN', message: errorDescriptors.UNKNOWN.message }] }),
  };
}
