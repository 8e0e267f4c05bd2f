/**
 * The login server's HTTP API, version 1: request and response bodies.
 * docs/login-api.md describes it for people; these types are the contract.
 */
import { LIMITS } from './limits.ts'

export const LOGIN_API_PREFIX = '/v1'

/** The header carrying a signed request proof; see docs/login-api.md. */
export const PROOF_SCHEME = 'Parley'

export interface RegisterRequest {
  name: string
  password: string
  email?: string
  displayName?: string
}

export interface AccountInfo {
  name: string
  displayName: string
}

export interface LoginRequest {
  name: string
  password: string
  /** The device's Ed25519 public key, 32 bytes, base64url. */
  deviceKey: string
  /** The client's version, for the version check. */
  clientVersion?: string
}

/** What login and renew answer. */
export interface CredentialGrant {
  /** The signed credential, base64url. */
  credential: string
  name: string
  keyId: string
  serial: string
  /** ISO 8601. */
  issuedAt: string
  expiresAt: string
  /** When the holder should renew (half-life), ISO 8601. */
  renewAt: string
}

export interface PublishedKey {
  id: string
  /** Ed25519 public key, base64url. */
  publicKey: string
  /** Whether new credentials are signed with it; retired keys still verify until their credentials expire. */
  active: boolean
  createdAt: string
}

export interface KeysResponse {
  keys: PublishedKey[]
}

export interface DirectoryEntry {
  name: string
  displayName: string
}

export interface DirectoryResponse {
  results: DirectoryEntry[]
}

/**
 * `GET /v1/directory?q=TEXT&limit=N`: the query's JSON schema, as the login
 * server checks it and the daemon's local API (which forwards the search)
 * too. `limit` stays a string (query values are), read by `directoryLimit`.
 */
export const DIRECTORY_QUERY_SCHEMA = {
  type: 'object',
  required: ['q'],
  additionalProperties: false,
  properties: {
    q: { type: 'string', minLength: 1, maxLength: LIMITS.search.maxQueryLength },
    limit: { type: 'string', pattern: '^[0-9]{1,3}$' }
  }
} as const

/** How many results a directory query asks for: `limit` within 1 to LIMITS.search.maxLimit, the default without one. */
export function directoryLimit(limit: string | undefined): number {
  return Math.min(Math.max(Number(limit ?? LIMITS.search.defaultLimit), 1), LIMITS.search.maxLimit)
}

export interface VersionResponse {
  latest: string
  minimum: string
  updateAvailable: boolean
  updateRequired: boolean
}

/** The network file: where the login server is, which keys to trust, where to start on the overlay. */
export interface NetworkFile {
  version: 1
  login: string
  keys: Array<{ id: string; publicKey: string }>
  seeds: string[]
}
