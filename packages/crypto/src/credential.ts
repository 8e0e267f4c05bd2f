import { bytesEqual, concatBytes, fromBase64Url, isValidName, LIMITS, toBase64Url } from '@parley/protocol'
import { ed25519 } from '#ed25519'
import type { PrivateKeyHandle, PublicKeyHandle } from './backend.ts'
import { keyIdOf } from './keys.ts'

/**
 * A credential: the login server's signed statement that a device key belongs
 * to a user until a given time.
 *
 * Wire form (version 1), all integers big-endian:
 *
 * | bytes | field |
 * |---|---|
 * | 1 | version = 1 |
 * | 1 + n | name length n (6..32), then the name in ASCII |
 * | 32 | device Ed25519 public key |
 * | 8 | issued at, ms since the Unix epoch |
 * | 8 | expires at, ms since the Unix epoch |
 * | 8 | serial (unsigned) |
 * | 1 + k | key id length k (1..32), then the key id in ASCII [A-Za-z0-9_-] |
 * | 64 | Ed25519 signature by the login key over `CREDENTIAL_CONTEXT` ‖ all bytes above |
 *
 * The decoder accepts exactly one byte string per credential: any other length,
 * character or ordering is MALFORMED.
 */
export interface Credential {
  version: 1
  name: string
  deviceKey: Uint8Array
  issuedAt: number
  expiresAt: number
  serial: bigint
  keyId: string
}

export interface SignedCredential extends Credential {
  signature: Uint8Array
  /** The whole encoding, signature included. */
  bytes: Uint8Array
}

export const CREDENTIAL_VERSION = 1
/** Domain separation: a credential signature can never be mistaken for another signed thing. */
export const CREDENTIAL_CONTEXT = new TextEncoder().encode('parley/credential/v1\0')

const KEY_ID_PATTERN = new RegExp(`^[A-Za-z0-9_-]{1,${LIMITS.credential.maxKeyIdLength}}$`)
const MAX_U64 = (1n << 64n) - 1n

export type CredentialRefusal = 'MALFORMED' | 'UNKNOWN_KEY_ID' | 'BAD_SIGNATURE' | 'EXPIRED' | 'NOT_YET_VALID' | 'DEVICE_KEY_MISMATCH'

export class CredentialError extends Error {
  override name = 'CredentialError'
  readonly code: CredentialRefusal
  constructor(code: CredentialRefusal, message: string) {
    super(message)
    this.code = code
  }
}

function ascii(text: string): Uint8Array {
  const out = new Uint8Array(text.length)
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i)
  return out
}

function checkFields(c: Credential): void {
  if (c.version !== CREDENTIAL_VERSION) throw new RangeError('unknown credential version')
  if (!isValidName(c.name)) throw new RangeError('credential name breaks the naming rule')
  if (c.deviceKey.length !== 32) throw new RangeError('device key must have 32 bytes')
  if (!Number.isSafeInteger(c.issuedAt) || c.issuedAt < 0) throw new RangeError('issuedAt must be a non-negative safe integer')
  if (!Number.isSafeInteger(c.expiresAt) || c.expiresAt <= c.issuedAt) throw new RangeError('expiresAt must be after issuedAt')
  if (c.serial < 0n || c.serial > MAX_U64) throw new RangeError('serial must fit in 64 bits')
  if (!KEY_ID_PATTERN.test(c.keyId)) throw new RangeError('key id must be 1-32 of [A-Za-z0-9_-]')
}

/** The signed part of a credential (everything but the signature). */
export function encodeCredentialBody(c: Credential): Uint8Array {
  checkFields(c)
  const name = ascii(c.name)
  const keyId = ascii(c.keyId)
  const out = new Uint8Array(1 + 1 + name.length + 32 + 24 + 1 + keyId.length)
  const view = new DataView(out.buffer)
  let o = 0
  out[o++] = c.version
  out[o++] = name.length
  out.set(name, o)
  o += name.length
  out.set(c.deviceKey, o)
  o += 32
  view.setBigUint64(o, BigInt(c.issuedAt))
  o += 8
  view.setBigUint64(o, BigInt(c.expiresAt))
  o += 8
  view.setBigUint64(o, c.serial)
  o += 8
  out[o++] = keyId.length
  out.set(keyId, o)
  return out
}

/** Signs a credential with a login key. */
export function signCredential(c: Credential, loginKey: PrivateKeyHandle): SignedCredential {
  const body = encodeCredentialBody(c)
  const signature = ed25519.sign(loginKey, concatBytes(CREDENTIAL_CONTEXT, body))
  return { ...c, deviceKey: Uint8Array.from(c.deviceKey), signature, bytes: concatBytes(body, signature) }
}

/** Decodes a credential without checking its signature or times. Throws CredentialError('MALFORMED'). */
export function decodeCredential(input: Uint8Array | string): SignedCredential {
  const malformed = (why: string): never => {
    throw new CredentialError('MALFORMED', `malformed credential: ${why}`)
  }
  let bytes: Uint8Array
  if (typeof input === 'string') {
    if (input.length > Math.ceil((LIMITS.credential.maxBytes * 4) / 3)) malformed('too long')
    bytes = fromBase64Url(input) ?? malformed('not base64url')
  } else {
    bytes = input
  }
  if (bytes.length > LIMITS.credential.maxBytes) malformed('too long')
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let o = 0
  const need = (n: number): void => {
    if (o + n > bytes.length) malformed('truncated')
  }
  need(2)
  const version = bytes[o++]
  if (version !== CREDENTIAL_VERSION) malformed(`unknown version ${version}`)
  const nameLength = bytes[o++] as number
  need(nameLength)
  const name = String.fromCharCode(...bytes.subarray(o, o + nameLength))
  o += nameLength
  if (!isValidName(name)) malformed('name breaks the naming rule')
  need(32 + 24 + 1)
  const deviceKey = bytes.slice(o, o + 32)
  o += 32
  const issuedAt = view.getBigUint64(o)
  o += 8
  const expiresAt = view.getBigUint64(o)
  o += 8
  const serial = view.getBigUint64(o)
  o += 8
  if (issuedAt > BigInt(Number.MAX_SAFE_INTEGER) || expiresAt > BigInt(Number.MAX_SAFE_INTEGER)) malformed('time out of range')
  if (expiresAt <= issuedAt) malformed('expires before it is issued')
  const keyIdLength = bytes[o++] as number
  need(keyIdLength)
  const keyId = String.fromCharCode(...bytes.subarray(o, o + keyIdLength))
  o += keyIdLength
  if (!KEY_ID_PATTERN.test(keyId)) malformed('bad key id')
  if (bytes.length - o !== 64) malformed(bytes.length - o < 64 ? 'truncated signature' : 'trailing bytes')
  const signature = bytes.slice(o, o + 64)
  return {
    version: CREDENTIAL_VERSION,
    name,
    deviceKey,
    issuedAt: Number(issuedAt),
    expiresAt: Number(expiresAt),
    serial,
    keyId,
    signature,
    bytes: Uint8Array.from(bytes)
  }
}

export function credentialToString(c: SignedCredential): string {
  return toBase64Url(c.bytes)
}

export interface TrustedKey {
  id: string
  /** Ed25519 public key, raw 32 bytes or base64url. */
  publicKey: Uint8Array | string
}

export interface VerifyOptions {
  /** Default: Date.now(). */
  now?: number
  /** How far the issuer's clock may run ahead. Default: LIMITS.credential.clockSkewMs. */
  clockSkewMs?: number
  /** When given, the credential must be for this device key (the key the channel authenticated). */
  deviceKey?: Uint8Array
}

export type Verdict = { ok: true; credential: SignedCredential } | { ok: false; reason: CredentialRefusal; message: string }

/**
 * Checks credentials offline against a fixed set of trusted login keys.
 * Build one per key set and reuse it: imported keys are cached.
 */
export class CredentialVerifier {
  readonly #keys = new Map<string, PublicKeyHandle>()

  constructor(trusted: Iterable<TrustedKey>) {
    for (const k of trusted) {
      const raw = typeof k.publicKey === 'string' ? fromBase64Url(k.publicKey) : k.publicKey
      if (raw?.length !== 32) throw new RangeError(`trusted key ${k.id} is not a 32-byte Ed25519 key`)
      if (keyIdOf(raw) !== k.id) throw new RangeError(`trusted key id ${JSON.stringify(k.id)} is not the id of its key`)
      this.#keys.set(k.id, ed25519.importPublicKey(raw))
    }
  }

  get keyIds(): string[] {
    return [...this.#keys.keys()]
  }

  /** The verdict on a credential; never throws for any input. */
  verify(input: Uint8Array | string, options: VerifyOptions = {}): Verdict {
    let c: SignedCredential
    try {
      c = decodeCredential(input)
    } catch (err) {
      if (err instanceof CredentialError) return { ok: false, reason: err.code, message: err.message }
      return { ok: false, reason: 'MALFORMED', message: 'malformed credential' }
    }
    const key = this.#keys.get(c.keyId)
    if (key === undefined) return { ok: false, reason: 'UNKNOWN_KEY_ID', message: `credential signed by unknown key id ${c.keyId}` }
    const body = c.bytes.subarray(0, c.bytes.length - 64)
    if (!ed25519.verify(key, concatBytes(CREDENTIAL_CONTEXT, body), c.signature)) {
      return { ok: false, reason: 'BAD_SIGNATURE', message: 'credential signature does not verify' }
    }
    const now = options.now ?? Date.now()
    const skew = options.clockSkewMs ?? LIMITS.credential.clockSkewMs
    if (c.issuedAt > now + skew)
      return { ok: false, reason: 'NOT_YET_VALID', message: `credential issued ${c.issuedAt - now} ms in the future` }
    if (now >= c.expiresAt) return { ok: false, reason: 'EXPIRED', message: `credential expired ${new Date(c.expiresAt).toISOString()}` }
    if (options.deviceKey !== undefined && !bytesEqual(options.deviceKey, c.deviceKey)) {
      return { ok: false, reason: 'DEVICE_KEY_MISMATCH', message: 'credential is for another device key' }
    }
    return { ok: true, credential: c }
  }
}

/** One-shot verification; prefer a long-lived CredentialVerifier on hot paths. */
export function verifyCredential(input: Uint8Array | string, trusted: Iterable<TrustedKey>, options: VerifyOptions = {}): Verdict {
  return new CredentialVerifier(trusted).verify(input, options)
}
