import { type CredentialVerifier, importPublicKey, type KeyPair, peerIdOf, sha256, sign, verifySignature } from '@parley/crypto'
import { concatBytes, fromBase64Url, LIMITS, toBase64Url } from '@parley/protocol'

/**
 * A user record: what an online device tells the network about itself,
 * signed by its device key. Stored, under a key derived from the user name,
 * on the supernodes closest to that key; anyone checks it offline.
 */
export interface UserRecord {
  v: 1
  /** The device's credential (base64url): who it is, until when. */
  credential: string
  /** Where to reach it (relay addresses when behind NAT); none in a withdrawal. */
  addrs: string[]
  presence: Presence
  /** Grows with every change; a supernode keeps the highest per device. */
  seq: number
  /** ms since the epoch; not after the credential's expiry. */
  expiresAt: number
}

/**
 * 'offline' is a withdrawal: the device signed out. It replaces the device's
 * last record like any newer one (so an older record replayed later is
 * refused), carries no addresses, and lookups leave the device out.
 */
export type Presence = 'online' | 'away' | 'dnd' | 'offline'

/** On the wire: the record's canonical JSON bytes and the device's signature over them. */
export interface SignedRecord {
  record: string
  sig: string
}

export interface CheckedRecord {
  record: UserRecord
  signed: SignedRecord
  /** Canonical user name from the credential. */
  name: string
  deviceKey: Uint8Array
  peerId: string
}

export type RecordRefusal = 'MALFORMED' | 'TOO_LARGE' | 'BAD_SIGNATURE' | 'BAD_CREDENTIAL' | 'WRONG_NAME' | 'EXPIRED' | 'TOO_LONG_LIVED'

export class RecordError extends Error {
  override name = 'RecordError'
  readonly code: RecordRefusal
  constructor(code: RecordRefusal, message: string) {
    super(message)
    this.code = code
  }
}

const RECORD_CONTEXT = new TextEncoder().encode('parley/user-record/v1\0')
const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** The DHT key for a user: SHA-256 of the lower-cased name, with a Parley prefix. */
export function userKey(name: string): Uint8Array {
  return sha256(encoder.encode(`parley/user/${name.toLowerCase()}`))
}

function canonical(record: UserRecord): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      v: record.v,
      credential: record.credential,
      addrs: record.addrs,
      presence: record.presence,
      seq: record.seq,
      expiresAt: record.expiresAt
    })
  )
}

export function signRecord(record: UserRecord, device: KeyPair): SignedRecord {
  const bytes = canonical(record)
  return { record: toBase64Url(bytes), sig: toBase64Url(sign(device, concatBytes(RECORD_CONTEXT, bytes))) }
}

const PRESENCE = new Set(['online', 'away', 'dnd', 'offline'])

/**
 * Checks a signed record completely: size, shape, the credential (trusted
 * login key, not expired), the signature by the credential's device key, the
 * name (when given) and the record's lifetime. Throws RecordError.
 */
export function checkRecord(signed: unknown, verifier: CredentialVerifier, options: { name?: string; now?: number } = {}): CheckedRecord {
  const bad = (code: RecordRefusal, message: string): never => {
    throw new RecordError(code, message)
  }
  if (typeof signed !== 'object' || signed === null) return bad('MALFORMED', 'a record is an object')
  const { record: recordText, sig } = signed as Partial<SignedRecord>
  if (typeof recordText !== 'string' || typeof sig !== 'string') return bad('MALFORMED', 'a record has "record" and "sig"')
  if (recordText.length > Math.ceil((LIMITS.overlay.recordMaxBytes * 4) / 3)) return bad('TOO_LARGE', 'record over the size limit')
  const bytes = fromBase64Url(recordText) ?? bad('MALFORMED', 'record is not base64url')
  const signature = fromBase64Url(sig)
  if (signature?.length !== 64) return bad('MALFORMED', 'signature is not 64 bytes')
  let record: UserRecord
  try {
    record = JSON.parse(decoder.decode(bytes)) as UserRecord
  } catch {
    return bad('MALFORMED', 'record is not JSON')
  }
  if (
    record?.v !== 1 ||
    typeof record.credential !== 'string' ||
    !Array.isArray(record.addrs) ||
    record.addrs.length > 16 ||
    !record.addrs.every((a) => typeof a === 'string' && a.length <= 256) ||
    !PRESENCE.has(record.presence) ||
    !Number.isSafeInteger(record.seq) ||
    record.seq < 0 ||
    !Number.isSafeInteger(record.expiresAt) ||
    (record.presence === 'offline' && record.addrs.length > 0)
  ) {
    return bad('MALFORMED', 'record fields have the wrong types')
  }
  // Only the canonical encoding is accepted: one byte string per record, so a signature covers exactly one meaning.
  const again = canonical(record)
  if (again.length !== bytes.length || !again.every((b, i) => b === bytes[i])) return bad('MALFORMED', 'record is not in canonical form')
  const now = options.now ?? Date.now()
  const verdict = verifier.verify(record.credential, { now })
  if (!verdict.ok) return bad('BAD_CREDENTIAL', `record's credential: ${verdict.reason} ${verdict.message}`)
  const c = verdict.credential
  if (!verifySignature(importPublicKey(c.deviceKey), concatBytes(RECORD_CONTEXT, bytes), signature)) {
    return bad('BAD_SIGNATURE', 'record is not signed by the device key in its credential')
  }
  if (options.name !== undefined && c.name.toLowerCase() !== options.name.toLowerCase())
    return bad('WRONG_NAME', `record is for ${c.name}, not ${options.name}`)
  if (record.expiresAt <= now) return bad('EXPIRED', 'record expired')
  if (record.expiresAt > c.expiresAt || record.expiresAt > now + LIMITS.overlay.recordMaxTtlMs)
    return bad('TOO_LONG_LIVED', 'record outlives its credential or the limit')
  return { record, signed: { record: recordText, sig }, name: c.name, deviceKey: c.deviceKey, peerId: peerIdOf(c.deviceKey) }
}
