import { type KeyPair, proveRequest } from '@parley/crypto'
import {
  type AccountInfo,
  type CredentialGrant,
  type DirectoryResponse,
  type ErrorBody,
  isErrorCode,
  type KeysResponse,
  ParleyError,
  type RegisterRequest,
  toBase64Url,
  type VersionResponse
} from '@parley/protocol'

export interface LoginClientInit {
  /** The login server's base URL, from the network file. */
  url: string
  /** Per request. Default: 15_000 ms. */
  timeoutMs?: number
  fetch?: typeof fetch
}

export interface AbortOptions {
  signal?: AbortSignal
}

/** The device and its current credential, for signed requests. */
export interface DeviceSession {
  device: KeyPair
  credential: string
}

/**
 * Talks to the login server (docs/login-api.md). Every failure is a
 * ParleyError with the server's code, or NETWORK when it cannot be reached.
 * Runs in Node and in browsers.
 */
export class LoginClient {
  readonly #url: string
  readonly #timeoutMs: number
  readonly #fetch: typeof fetch

  constructor(init: LoginClientInit) {
    this.#url = init.url.replace(/\/+$/, '')
    this.#timeoutMs = init.timeoutMs ?? 15_000
    this.#fetch = init.fetch ?? globalThis.fetch
  }

  async register(request: RegisterRequest, options: AbortOptions = {}): Promise<AccountInfo> {
    return await this.#request('POST', '/v1/accounts', request, undefined, options)
  }

  async login(
    args: { name: string; password: string; device: KeyPair; clientVersion?: string },
    options: AbortOptions = {}
  ): Promise<CredentialGrant> {
    const body = {
      name: args.name,
      password: args.password,
      deviceKey: toBase64Url(args.device.publicKey),
      ...(args.clientVersion === undefined ? {} : { clientVersion: args.clientVersion })
    }
    return await this.#request('POST', '/v1/sessions', body, undefined, options)
  }

  async renew(session: DeviceSession, options: AbortOptions = {}): Promise<CredentialGrant> {
    return await this.#request('POST', '/v1/sessions/renew', {}, session, options)
  }

  async logout(session: DeviceSession, options: AbortOptions = {}): Promise<{ ok: true; wasLoggedIn: boolean }> {
    return await this.#request('DELETE', '/v1/sessions', undefined, session, options)
  }

  async keys(options: AbortOptions = {}): Promise<KeysResponse> {
    return await this.#request('GET', '/v1/keys', undefined, undefined, options)
  }

  async search(
    query: string,
    session: DeviceSession,
    args: { limit?: number } = {},
    options: AbortOptions = {}
  ): Promise<DirectoryResponse> {
    const params = new URLSearchParams({ q: query })
    if (args.limit !== undefined) params.set('limit', String(args.limit))
    return await this.#request('GET', `/v1/directory?${params.toString()}`, undefined, session, options)
  }

  async version(current: string, event: 'installed' | 'startup', options: AbortOptions = {}): Promise<VersionResponse> {
    const params = new URLSearchParams({ current, event })
    return await this.#request('GET', `/v1/version?${params.toString()}`, undefined, undefined, options)
  }

  async #request<T>(method: string, path: string, body: unknown, session: DeviceSession | undefined, options: AbortOptions): Promise<T> {
    const text = body === undefined ? undefined : JSON.stringify(body)
    const headers: Record<string, string> = {}
    if (text !== undefined) headers['content-type'] = 'application/json'
    if (session !== undefined) headers.authorization = proveRequest({ method, path, body: text ?? '' }, session.credential, session.device)
    const signal =
      options.signal === undefined
        ? AbortSignal.timeout(this.#timeoutMs)
        : AbortSignal.any([options.signal, AbortSignal.timeout(this.#timeoutMs)])
    let response: Response
    try {
      response = await this.#fetch(`${this.#url}${path}`, { method, headers, signal, ...(text === undefined ? {} : { body: text }) })
    } catch (err) {
      const why =
        (err as Error).name === 'TimeoutError'
          ? 'timed out'
          : ((err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message)
      throw new ParleyError('NETWORK', `cannot reach the login server at ${this.#url} (${why})`, { cause: err })
    }
    let parsed: unknown
    try {
      parsed = await response.json()
    } catch (err) {
      throw new ParleyError('NETWORK', `the login server answered ${response.status} with a body that is not JSON`, { cause: err })
    }
    if (!response.ok) {
      const error = (parsed as Partial<ErrorBody>)?.error
      if (error !== undefined && isErrorCode(error.code) && typeof error.message === 'string') {
        throw new ParleyError(error.code, error.message, typeof error.retryAfterMs === 'number' ? { retryAfterMs: error.retryAfterMs } : {})
      }
      throw new ParleyError('NETWORK', `the login server answered ${response.status}`)
    }
    return parsed as T
  }
}
