/**
 * Every error that crosses a process boundary (HTTP, the local API, the wire)
 * carries one of these codes. The list is closed: add a code here, with its
 * HTTP status and CLI exit code, before using it anywhere.
 */
export const ERROR_CODES = {
  /** The request's shape, types or sizes are wrong. */
  INVALID_REQUEST: { http: 400, exit: 1 },
  /** The body is larger than the route allows. */
  PAYLOAD_TOO_LARGE: { http: 413, exit: 1 },
  /** The body is not JSON. */
  UNSUPPORTED_MEDIA_TYPE: { http: 415, exit: 1 },
  /** The user name breaks the naming rule. */
  INVALID_NAME: { http: 400, exit: 1 },
  /** The e-mail address is not one. */
  INVALID_EMAIL: { http: 400, exit: 1 },
  /** The password is too weak (or too long). */
  WEAK_PASSWORD: { http: 400, exit: 1 },
  /** Someone already has this name (compared case-insensitively). */
  NAME_TAKEN: { http: 409, exit: 1 },
  /** Unknown name or wrong password: deliberately the same answer for both. */
  INVALID_CREDENTIALS: { http: 401, exit: 1 },
  /** Too many attempts: wait `retryAfterMs`. */
  THROTTLED: { http: 429, exit: 1 },
  /** The request needs a signed credential proof and has none or a bad one. */
  UNAUTHENTICATED: { http: 401, exit: 1 },
  /** The credential is not signed by a key the verifier trusts. */
  BAD_SIGNATURE: { http: 401, exit: 1 },
  /** The credential names a key id the verifier does not know. */
  UNKNOWN_KEY_ID: { http: 401, exit: 1 },
  /** The credential has expired. */
  EXPIRED: { http: 401, exit: 1 },
  /** The credential is issued in the future beyond the allowed clock skew. */
  NOT_YET_VALID: { http: 401, exit: 1 },
  /** The credential bytes do not decode canonically. */
  MALFORMED: { http: 400, exit: 1 },
  /** The device key that signed does not match the key in the credential. */
  DEVICE_KEY_MISMATCH: { http: 401, exit: 1 },
  /** A renewal with a credential that is no longer the device's current one. */
  STALE_CREDENTIAL: { http: 401, exit: 1 },
  /** A signed request whose timestamp is outside the allowed window. */
  STALE_REQUEST: { http: 401, exit: 1 },
  /** The device was logged out; log in again. */
  LOGGED_OUT: { http: 401, exit: 1 },
  /** The user's settings or a block do not allow it (a blocked contact, a privacy setting). */
  NOT_ALLOWED: { http: 403, exit: 1 },
  /** No such route or resource. */
  NOT_FOUND: { http: 404, exit: 1 },
  /** The HTTP method is not allowed on this route. */
  METHOD_NOT_ALLOWED: { http: 405, exit: 1 },
  /** The client is older than the network accepts. */
  UPGRADE_REQUIRED: { http: 426, exit: 1 },
  /** The database or another dependency is unavailable: try again. */
  UNAVAILABLE: { http: 503, exit: 1 },
  /** A bug on our side. Never used for a client's mistake. */
  INTERNAL: { http: 500, exit: 1 },
  /** The command line was used wrongly. */
  USAGE: { http: 400, exit: 2 },
  /** The profile is not logged in, has no network, or similar local state problem. */
  NOT_LOGGED_IN: { http: 401, exit: 1 },
  /** No daemon runs for this profile (its local API is not reachable). */
  NO_DAEMON: { http: 503, exit: 1 },
  /** The network file or profile is missing or broken. */
  BAD_CONFIG: { http: 400, exit: 1 },
  /** A network request failed (connection refused, timeout). */
  NETWORK: { http: 503, exit: 1 },
  /** A call ended without being connected (busy, declined, no answer, unavailable) or failed. */
  CALL_NOT_CONNECTED: { http: 409, exit: 1 },
  /** Nothing happened within the time given (an incoming call to answer, for one). */
  TIMEOUT: { http: 408, exit: 1 },
  /** The feature exists in the contract but is not built yet. */
  NOT_IMPLEMENTED: { http: 501, exit: 1 }
} as const satisfies Record<string, { http: number; exit: 0 | 1 | 2 }>

export type ErrorCode = keyof typeof ERROR_CODES

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value)
}

export function httpStatusOf(code: ErrorCode): number {
  return ERROR_CODES[code].http
}

export function exitCodeOf(code: ErrorCode): 0 | 1 | 2 {
  return ERROR_CODES[code].exit
}

/** The JSON body of every error response. */
export interface ErrorBody {
  error: {
    code: ErrorCode
    message: string
    /** Present with THROTTLED: how long to wait. */
    retryAfterMs?: number
  }
}

/**
 * An error with a stable code, safe to show to a client: its message never
 * holds secrets, SQL or stack traces.
 */
export class ParleyError extends Error {
  override name = 'ParleyError'
  readonly code: ErrorCode
  readonly retryAfterMs: number | undefined

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; retryAfterMs?: number } = {}) {
    super(message, { cause: options.cause })
    this.code = code
    this.retryAfterMs = options.retryAfterMs
  }

  toBody(): ErrorBody {
    const error: ErrorBody['error'] = { code: this.code, message: this.message }
    if (this.retryAfterMs !== undefined) error.retryAfterMs = this.retryAfterMs
    return { error }
  }
}

/**
 * An HTTP framework's client error (Fastify's: a body that fails the route's
 * schema, one over the size limit, one that is not JSON, bad headers) as the
 * ParleyError to answer with; undefined for anything else, which is an
 * internal error. `maxBodyBytes` is named in the message.
 */
export function clientErrorOf(err: unknown, maxBodyBytes: number): ParleyError | undefined {
  const e = err as { code?: unknown; validation?: unknown; statusCode?: unknown; message?: unknown } | null
  if (typeof e !== 'object' || e === null) return undefined
  const message = typeof e.message === 'string' ? e.message : 'bad request'
  if (e.validation !== undefined) return new ParleyError('INVALID_REQUEST', `invalid request: ${message}`)
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new ParleyError('PAYLOAD_TOO_LARGE', `request body over ${maxBodyBytes} bytes`)
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
    return new ParleyError('UNSUPPORTED_MEDIA_TYPE', 'send JSON (Content-Type: application/json)')
  // The framework's other client errors: bad JSON, an empty body, bad headers.
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500)
    return new ParleyError('INVALID_REQUEST', `invalid request: ${message}`)
  return undefined
}

export function assertNever(value: never, what = 'value'): never {
  throw new Error(`unexpected ${what}: ${JSON.stringify(value)}`)
}
