import { peerIdFromString } from '@libp2p/peer-id'
import { type CredentialVerifier, decodeCredential, importPublicKey, type KeyPair, peerIdOf, sign, verifySignature } from '@parley/crypto'
import { concatBytes, fromBase64Url, isValidName, LIMITS, toBase64Url } from '@parley/protocol'
import { ByteReader, ByteWriter } from './codec.ts'
import { MailboxError } from './errors.ts'

/**
 * An item in the offline mailbox: a payload sealed to one recipient device
 * (HPKE, by the sender; opaque here), signed by the sender's device key. The
 * supernodes that keep it check the signature and the sender, never see the
 * plaintext, and hand it only to the recipient device.
 *
 * The sender is not a field of its own: the sender's credential travels in the
 * item, so `from` (its name) and `fromDevice` (the peer id of its device key)
 * are read from it, cannot disagree with it, and the recipient checks them
 * offline against the login keys without trusting any supernode.
 */
export interface MailboxItemFields {
  /** Chosen by the sender (base64url, at most LIMITS.mailbox.idMaxLength); unique among its items for this recipient device. */
  id: string
  /** The recipient user's name: the item is kept on the supernodes closest to it. */
  to: string
  /** The recipient device's peer id: only it may fetch or delete the item. */
  device: string
  /** The sender device's credential (base64url), valid when the item was created. */
  credential: string
  /** ms since the epoch, by the sender's clock. */
  createdAt: number
  /** ms since the epoch; after `createdAt`, at most LIMITS.mailbox.itemMaxTtlMs later. */
  expiresAt: number
  /** The sealed payload. */
  sealed: Uint8Array
}

/** A decoded item: its fields, the sender read from the credential, the signature and the whole encoding. */
export interface MailboxItem extends MailboxItemFields {
  v: 1
  /** The sender's user name (from its credential). */
  from: string
  /** The sender device's peer id (from its credential). */
  fromDevice: string
  sig: Uint8Array
  /** The canonical encoding, signature included: what travels and what is stored. */
  bytes: Uint8Array
}

/** An item as the recipient names it to delete it: the sender device and the id make it unique per device. */
export interface MailboxItemRef {
  fromDevice: string
  id: string
  /** The item's expiry: a supernode that never held the item keeps its tombstone until then. */
  expiresAt: number
}

export const MAILBOX_ITEM_VERSION = 1
/** Domain separation: an item signature can never be mistaken for another signed thing. */
export const MAILBOX_ITEM_CONTEXT = new TextEncoder().encode('parley/mailbox-item/v1\0')

const SIG_BYTES = 64
const KEY_BYTES = 32
export const ITEM_ID_PATTERN = new RegExp(`^[A-Za-z0-9_-]{1,${LIMITS.mailbox.idMaxLength}}$`)
const NAME_CHARS = /^[\x21-\x7e]+$/

/** The key an item is unique under, for one recipient device: `fromDevice/id`. */
export function itemKey(item: { fromDevice: string; id: string }): string {
  return `${item.fromDevice}/${item.id}`
}

/** The Ed25519 key inside a peer id string; MALFORMED for anything but the canonical `12D3KooW…` form of an Ed25519 key. */
export function deviceKeyOf(peerId: string): Uint8Array {
  let raw: Uint8Array | undefined
  try {
    const parsed = peerIdFromString(peerId)
    raw = parsed.type === 'Ed25519' ? parsed.publicKey.raw : undefined
  } catch {
    raw = undefined
  }
  if (raw?.length !== KEY_BYTES || peerIdOf(raw) !== peerId) throw new MailboxError('MALFORMED', 'not the peer id of an Ed25519 device key')
  return raw
}

/**
 * Encodes and signs an item with the sender's device key (which should be the
 * key in `fields.credential`; a different key makes an item that fails
 * verification with BAD_SIGNATURE). Throws MailboxError (MALFORMED,
 * TOO_LARGE) for fields that cannot be encoded.
 *
 * Layout (big-endian): u8 version (1) | u8 n, id (ASCII) | u8 n, to (ASCII) |
 * 32 recipient device key | u16 n, sender credential | u64 createdAt |
 * u64 expiresAt | u32 n, sealed | 64 Ed25519 signature over
 * MAILBOX_ITEM_CONTEXT ‖ everything before it.
 */
export function signItem(fields: MailboxItemFields, key: KeyPair): MailboxItem {
  const body = encodeBody(fields)
  return decodeItem(concatBytes(body, sign(key, concatBytes(MAILBOX_ITEM_CONTEXT, body))))
}

function encodeBody(f: MailboxItemFields): Uint8Array {
  const bad = (why: string): never => {
    throw new MailboxError('MALFORMED', why)
  }
  if (typeof f.id !== 'string' || !ITEM_ID_PATTERN.test(f.id)) bad(`an item id is 1 to ${LIMITS.mailbox.idMaxLength} base64url characters`)
  if (!isValidName(f.to)) bad('the recipient is not a valid user name')
  const device = deviceKeyOf(f.device)
  const credential = (typeof f.credential === 'string' ? fromBase64Url(f.credential) : undefined) ?? bad('the credential is not base64url')
  if (credential.length > LIMITS.credential.maxBytes) bad('the credential is too long')
  if (!Number.isSafeInteger(f.createdAt) || f.createdAt < 0 || !Number.isSafeInteger(f.expiresAt) || f.expiresAt <= f.createdAt)
    bad('times are whole ms, expiresAt after createdAt')
  if (!(f.sealed instanceof Uint8Array)) bad('the sealed payload is bytes')
  if (f.sealed.length > LIMITS.mailbox.sealedMaxBytes)
    throw new MailboxError('TOO_LARGE', `a sealed payload has at most ${LIMITS.mailbox.sealedMaxBytes} bytes`)
  return new ByteWriter()
    .u8(MAILBOX_ITEM_VERSION)
    .u8(f.id.length)
    .ascii(f.id)
    .u8(f.to.length)
    .ascii(f.to)
    .bytes(device)
    .u16(credential.length)
    .bytes(credential)
    .u53(f.createdAt)
    .u53(f.expiresAt)
    .u32(f.sealed.length)
    .bytes(f.sealed)
    .finish()
}

/**
 * Decodes an item's canonical encoding: its structure only (the signature,
 * credential and times are `verifyItem`'s). Exactly one byte string per item;
 * anything else throws MailboxError MALFORMED or TOO_LARGE, and nothing else.
 */
export function decodeItem(input: unknown): MailboxItem {
  if (!(input instanceof Uint8Array)) throw new MailboxError('MALFORMED', 'an item is bytes')
  if (input.length > LIMITS.mailbox.itemMaxBytes)
    throw new MailboxError('TOO_LARGE', `an item has at most ${LIMITS.mailbox.itemMaxBytes} bytes`)
  const r = new ByteReader(input)
  const version = r.u8('version')
  if (version !== MAILBOX_ITEM_VERSION) throw new MailboxError('MALFORMED', `unknown item version ${version}`)
  const id = r.ascii(r.u8('id length'), ITEM_ID_PATTERN, 'id')
  const to = r.ascii(r.u8('name length'), NAME_CHARS, 'recipient')
  if (!isValidName(to)) throw new MailboxError('MALFORMED', 'the recipient is not a valid user name')
  const device = peerIdOf(r.bytes(KEY_BYTES, 'device key'))
  const credentialLength = r.u16('credential length')
  if (credentialLength > LIMITS.credential.maxBytes) throw new MailboxError('MALFORMED', 'the credential is too long')
  const credentialBytes = r.bytes(credentialLength, 'credential')
  let sender: { name: string; deviceKey: Uint8Array }
  try {
    sender = decodeCredential(credentialBytes)
  } catch (err) {
    throw new MailboxError('MALFORMED', 'the sender credential does not decode', { cause: err })
  }
  const createdAt = r.u53('createdAt')
  const expiresAt = r.u53('expiresAt')
  if (expiresAt <= createdAt) throw new MailboxError('MALFORMED', 'the item expires before it is created')
  const sealedLength = r.u32('sealed length')
  if (sealedLength > LIMITS.mailbox.sealedMaxBytes) throw new MailboxError('TOO_LARGE', 'the sealed payload is over its limit')
  const sealed = r.bytes(sealedLength, 'sealed payload').slice()
  const sig = r.bytes(SIG_BYTES, 'signature').slice()
  r.end('the signature')
  return {
    v: MAILBOX_ITEM_VERSION,
    id,
    to,
    device,
    from: sender.name,
    fromDevice: peerIdOf(sender.deviceKey),
    credential: toBase64Url(credentialBytes),
    createdAt,
    expiresAt,
    sealed,
    sig,
    bytes: input.slice()
  }
}

export interface VerifyItemOptions {
  /** Default: Date.now(). */
  now?: number
  /** The recipient's check: the item must be addressed to this user and device. */
  recipient?: { name: string; device: string }
}

/**
 * Checks a decoded item: its times are within the limits, it is addressed to
 * the recipient (when one is given), the sender's credential verifies
 * against the login keys at the item's creation time, and the signature is by
 * that credential's device key — cheap checks first. Throws MailboxError
 * (NOT_YET_VALID, EXPIRED, TOO_LONG_LIVED, WRONG_RECIPIENT, BAD_CREDENTIAL,
 * BAD_SIGNATURE) and nothing else.
 */
export function verifyItem(item: MailboxItem, verifier: CredentialVerifier, options: VerifyItemOptions = {}): MailboxItem {
  const now = options.now ?? Date.now()
  if (item.createdAt > now + LIMITS.credential.clockSkewMs) throw new MailboxError('NOT_YET_VALID', 'the item is created in the future')
  if (item.expiresAt <= now) throw new MailboxError('EXPIRED', 'the item has expired')
  if (item.expiresAt - item.createdAt > LIMITS.mailbox.itemMaxTtlMs)
    throw new MailboxError('TOO_LONG_LIVED', `an item lives at most ${LIMITS.mailbox.itemMaxTtlMs} ms`)
  const r = options.recipient
  if (r !== undefined && (item.device !== r.device || item.to.toLowerCase() !== r.name.toLowerCase()))
    throw new MailboxError('WRONG_RECIPIENT', 'the item is addressed to another user or device')
  const verdict = verifier.verify(item.credential, { now: item.createdAt })
  if (!verdict.ok) throw new MailboxError('BAD_CREDENTIAL', `the sender's credential: ${verdict.reason} ${verdict.message}`)
  const body = item.bytes.subarray(0, item.bytes.length - SIG_BYTES)
  let signed: boolean
  try {
    signed = verifySignature(importPublicKey(verdict.credential.deviceKey), concatBytes(MAILBOX_ITEM_CONTEXT, body), item.sig)
  } catch {
    signed = false
  }
  if (!signed) throw new MailboxError('BAD_SIGNATURE', "the item is not signed by the device key in the sender's credential")
  return item
}
