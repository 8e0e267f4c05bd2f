/**
 * The local API over fetch: same origin, the token in the daemon's HttpOnly
 * cookie (never in script). Errors come back as `{error: {code, message}}`
 * with an HTTP status and are thrown as ApiError.
 */

export class ApiError extends Error {
  override name = 'ApiError'
  readonly code: string
  readonly status: number
  readonly retryAfterMs: number | undefined

  constructor(code: string, message: string, status: number, retryAfterMs?: number) {
    super(message)
    this.code = code
    this.status = status
    this.retryAfterMs = retryAfterMs
  }
}

type Listener = (error: ApiError) => void
const signedOutListeners = new Set<Listener>()

/** Called whenever a route answers NOT_LOGGED_IN (the device was signed out, here or by another client). */
export function onSignedOut(listener: Listener): () => void {
  signedOutListeners.add(listener)
  return () => signedOutListeners.delete(listener)
}

async function request<T>(method: string, path: string, body?: unknown, options: { signal?: AbortSignal } = {}): Promise<T> {
  let response: Response
  try {
    response = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? { accept: 'application/json' } : { 'content-type': 'application/json', accept: 'application/json' },
      body: body === undefined ? null : JSON.stringify(body),
      ...(options.signal === undefined ? {} : { signal: options.signal })
    })
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err
    throw new ApiError('NO_DAEMON', 'The Parley program on this computer does not answer. Is it still running?', 0)
  }
  const text = await response.text()
  let json: unknown
  try {
    json = text === '' ? {} : JSON.parse(text)
  } catch {
    json = {}
  }
  if (!response.ok) {
    const raw = (json as { error?: { code?: string; message?: string; retryAfterMs?: number }; code?: string; message?: string }) ?? {}
    const e = raw.error ?? raw
    const error = new ApiError(
      e.code ?? 'HTTP_' + response.status,
      e.message ?? response.statusText,
      response.status,
      raw.error?.retryAfterMs
    )
    if (error.code === 'NOT_LOGGED_IN') for (const l of signedOutListeners) l(error)
    throw error
  }
  return json as T
}

export const api = {
  get: <T>(path: string, options?: { signal?: AbortSignal }) => request<T>('GET', path, undefined, options),
  post: <T>(path: string, body: unknown = {}, options?: { signal?: AbortSignal }) => request<T>('POST', path, body, options),
  put: <T>(path: string, body: unknown, options?: { signal?: AbortSignal }) => request<T>('PUT', path, body, options)
}

/** A path segment, escaped. */
export function seg(value: string): string {
  return encodeURIComponent(value)
}

/** The words to show for an error: the daemon's message, with a few codes said more plainly. */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    switch (err.code) {
      case 'INVALID_CREDENTIALS':
        return 'That name and password do not match an account. Check both and try again.'
      case 'NAME_TAKEN':
        return 'Someone already has that name. Please choose another one.'
      case 'THROTTLED':
      case 'RATE_LIMITED': {
        const wait = err.retryAfterMs === undefined ? '' : ` Try again in ${Math.ceil(err.retryAfterMs / 1000)} seconds.`
        return `Too many attempts for now.${wait}`
      }
      case 'NO_DAEMON':
      case 'NETWORK':
      case 'UNAVAILABLE':
        return err.message || 'The network could not be reached. Try again in a moment.'
      default:
        return err.message || `Something went wrong (${err.code}).`
    }
  }
  return err instanceof Error ? err.message : String(err)
}
