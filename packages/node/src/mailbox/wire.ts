import { peerIdOf } from '@parley/crypto'
import { assertNever, isValidName, LIMITS } from '@parley/protocol'
import { ByteReader, ByteWriter } from './codec.ts'
import { isMailboxRefusal, MailboxError, type MailboxRefusal } from './errors.ts'
import { deviceKeyOf, ITEM_ID_PATTERN, type MailboxItemRef } from './item.ts'

/**
 * The frames of `/parley/mailbox/1.0.0`: one request and one answer per
 * stream, each an unsigned-varint length-prefixed binary frame of at most
 * LIMITS.mailbox.messageMaxBytes. Binary rather than JSON: items are mostly
 * opaque bytes, which JSON would carry as base64 (a third more, on relays too).
 *
 * Requests (first byte the op):
 * - `0x01 PUT`    the item's encoding (the rest of the frame)
 * - `0x02 FETCH`  u64 cursor (0 for the start): the asking device's items after it
 * - `0x03 DELETE` u16 n (1..deleteMaxItems), n × (32 sender device key, u8 n + id, u64 expiresAt)
 * - `0x04 PLACES` u8 n + user name: which supernodes keep that user's mailbox, as this supernode sees it
 *
 * Answers (first byte the kind):
 * - `0x81 PUT_OK`    u8 outcome (0 stored, 1 unchanged: this very item was already here)
 * - `0x82 FETCH_OK`  u8 more (0/1), u64 next cursor, u16 n, n × (u32 n + item encoding)
 * - `0x83 DELETE_OK` u16 items deleted (tombstones are left for every one named)
 * - `0x84 PLACES_OK` u8 n (≤ 8), n × (32 device key, u8 m (≤ 4), m × (u16 n + multiaddr text))
 * - `0xff REFUSED`   u8 n + code (ASCII, one of MAILBOX_REFUSALS), u32 retryAfterMs, u16 n + message (UTF-8)
 */
export type MailboxRequest =
  | { op: 'put'; item: Uint8Array }
  | { op: 'fetch'; after: number }
  | { op: 'delete'; items: MailboxItemRef[] }
  | { op: 'places'; name: string }

/** A supernode named in a PLACES answer, with the addresses its namer knows. */
export interface MailboxPlace {
  peerId: string
  addrs: string[]
}

export type MailboxPutOutcome = 'stored' | 'unchanged'

export type MailboxAnswer =
  | { ok: true; op: 'put'; outcome: MailboxPutOutcome }
  | { ok: true; op: 'fetch'; items: Uint8Array[]; next: number; more: boolean }
  | { ok: true; op: 'delete'; deleted: number }
  | { ok: true; op: 'places'; supernodes: MailboxPlace[] }
  | { ok: false; code: MailboxRefusal; message: string; retryAfterMs: number }

const OP = { put: 0x01, fetch: 0x02, delete: 0x03, places: 0x04 } as const
const ANSWER = { put: 0x81, fetch: 0x82, delete: 0x83, places: 0x84, refused: 0xff } as const
/** Supernodes one PLACES answer names, and addresses per supernode. */
export const PLACES_MAX = 8
export const PLACE_ADDRS_MAX = 4
const ADDR_MAX_LENGTH = 256
const NAME_CHARS = /^[\x21-\x7e]{1,64}$/
const ADDR_CHARS = /^[\x21-\x7e]+$/
const OUTCOMES: readonly MailboxPutOutcome[] = ['stored', 'unchanged']
const CODE_CHARS = /^[A-Z_]{1,32}$/
const MESSAGE_MAX_BYTES = 512
const encoder = new TextEncoder()

export function encodeMailboxRequest(request: MailboxRequest): Uint8Array {
  const w = new ByteWriter()
  switch (request.op) {
    case 'put':
      return w.u8(OP.put).bytes(request.item).finish()
    case 'fetch':
      return w.u8(OP.fetch).u53(request.after).finish()
    case 'delete': {
      w.u8(OP.delete).u16(request.items.length)
      for (const ref of request.items) w.bytes(deviceKeyOf(ref.fromDevice)).u8(ref.id.length).ascii(ref.id).u53(ref.expiresAt)
      return w.finish()
    }
    case 'places':
      if (!isValidName(request.name)) throw new MailboxError('MALFORMED', 'not a user name')
      return w.u8(OP.places).u8(request.name.length).ascii(request.name).finish()
    default:
      return assertNever(request)
  }
}

/** Decodes a request frame; throws MailboxError (MALFORMED, TOO_LARGE) and nothing else. The item itself is `decodeItem`'s. */
export function decodeMailboxRequest(frame: Uint8Array): MailboxRequest {
  if (frame.length > LIMITS.mailbox.messageMaxBytes) throw new MailboxError('TOO_LARGE', 'request over the frame limit')
  const r = new ByteReader(frame)
  const op = r.u8('op')
  if (op === OP.put) return { op: 'put', item: r.rest() }
  if (op === OP.fetch) {
    const after = r.u53('cursor')
    r.end('the cursor')
    return { op: 'fetch', after }
  }
  if (op === OP.delete) {
    const n = r.u16('count')
    if (n === 0 || n > LIMITS.mailbox.deleteMaxItems)
      throw new MailboxError('MALFORMED', `a delete names 1 to ${LIMITS.mailbox.deleteMaxItems} items`)
    const items: MailboxItemRef[] = []
    for (let i = 0; i < n; i++) {
      const fromDevice = peerIdOf(r.bytes(32, 'sender device key'))
      const id = r.ascii(r.u8('id length'), ITEM_ID_PATTERN, 'id')
      items.push({ fromDevice, id, expiresAt: r.u53('expiresAt') })
    }
    r.end('the items')
    return { op: 'delete', items }
  }
  if (op === OP.places) {
    const name = r.ascii(r.u8('name length'), NAME_CHARS, 'name')
    if (!isValidName(name)) throw new MailboxError('MALFORMED', 'not a user name')
    r.end('the name')
    return { op: 'places', name }
  }
  throw new MailboxError('MALFORMED', `unknown op ${op}`)
}

export function encodeMailboxAnswer(answer: MailboxAnswer): Uint8Array {
  const w = new ByteWriter()
  if (!answer.ok) {
    let message = encoder.encode(answer.message)
    if (message.length > MESSAGE_MAX_BYTES) message = encoder.encode(answer.message.slice(0, MESSAGE_MAX_BYTES / 4))
    return w
      .u8(ANSWER.refused)
      .u8(answer.code.length)
      .ascii(answer.code)
      .u32(Math.min(Math.max(0, Math.ceil(answer.retryAfterMs)), 0xffff_ffff))
      .u16(message.length)
      .bytes(message)
      .finish()
  }
  switch (answer.op) {
    case 'put':
      return w.u8(ANSWER.put).u8(OUTCOMES.indexOf(answer.outcome)).finish()
    case 'fetch': {
      w.u8(ANSWER.fetch)
        .u8(answer.more ? 1 : 0)
        .u53(answer.next)
        .u16(answer.items.length)
      for (const item of answer.items) w.u32(item.length).bytes(item)
      return w.finish()
    }
    case 'delete':
      return w.u8(ANSWER.delete).u16(answer.deleted).finish()
    case 'places': {
      const places = answer.supernodes.slice(0, PLACES_MAX)
      w.u8(ANSWER.places).u8(places.length)
      for (const place of places) {
        const addrs = place.addrs.filter((a) => a.length <= ADDR_MAX_LENGTH && ADDR_CHARS.test(a)).slice(0, PLACE_ADDRS_MAX)
        w.bytes(deviceKeyOf(place.peerId)).u8(addrs.length)
        for (const a of addrs) w.u16(a.length).ascii(a)
      }
      return w.finish()
    }
    default:
      return assertNever(answer)
  }
}

/** Decodes an answer frame; throws MailboxError MALFORMED (or TOO_LARGE) and nothing else. Items inside are left to `decodeItem`. */
export function decodeMailboxAnswer(frame: Uint8Array): MailboxAnswer {
  if (frame.length > LIMITS.mailbox.messageMaxBytes) throw new MailboxError('TOO_LARGE', 'answer over the frame limit')
  const r = new ByteReader(frame)
  const kind = r.u8('kind')
  let answer: MailboxAnswer
  if (kind === ANSWER.refused) {
    const code = r.ascii(r.u8('code length'), CODE_CHARS, 'code')
    if (!isMailboxRefusal(code)) throw new MailboxError('MALFORMED', `unknown refusal code ${code}`)
    const retryAfterMs = r.u32('retryAfterMs')
    const length = r.u16('message length')
    if (length > MESSAGE_MAX_BYTES) throw new MailboxError('MALFORMED', 'refusal message too long')
    answer = { ok: false, code, retryAfterMs, message: r.utf8(length, 'message') }
  } else if (kind === ANSWER.put) {
    const outcome = OUTCOMES[r.u8('outcome')]
    if (outcome === undefined) throw new MailboxError('MALFORMED', 'unknown put outcome')
    answer = { ok: true, op: 'put', outcome }
  } else if (kind === ANSWER.fetch) {
    const more = r.u8('more')
    if (more > 1) throw new MailboxError('MALFORMED', 'bad more flag')
    const next = r.u53('cursor')
    const n = r.u16('count')
    if (n > LIMITS.mailbox.fetchPageItems) throw new MailboxError('MALFORMED', 'too many items in a page')
    const items: Uint8Array[] = []
    for (let i = 0; i < n; i++) {
      const length = r.u32('item length')
      if (length > LIMITS.mailbox.itemMaxBytes) throw new MailboxError('MALFORMED', 'item over its limit in a page')
      items.push(r.bytes(length, 'item').slice())
    }
    answer = { ok: true, op: 'fetch', items, next, more: more === 1 }
  } else if (kind === ANSWER.delete) {
    answer = { ok: true, op: 'delete', deleted: r.u16('deleted') }
  } else if (kind === ANSWER.places) {
    const n = r.u8('count')
    if (n > PLACES_MAX) throw new MailboxError('MALFORMED', 'too many supernodes')
    const supernodes: MailboxPlace[] = []
    for (let i = 0; i < n; i++) {
      const peerId = peerIdOf(r.bytes(32, 'supernode key'))
      const m = r.u8('address count')
      if (m > PLACE_ADDRS_MAX) throw new MailboxError('MALFORMED', 'too many addresses')
      const addrs: string[] = []
      for (let k = 0; k < m; k++) {
        const length = r.u16('address length')
        if (length > ADDR_MAX_LENGTH) throw new MailboxError('MALFORMED', 'address too long')
        addrs.push(r.ascii(length, ADDR_CHARS, 'address'))
      }
      supernodes.push({ peerId, addrs })
    }
    answer = { ok: true, op: 'places', supernodes }
  } else {
    throw new MailboxError('MALFORMED', `unknown answer kind ${kind}`)
  }
  r.end('the answer')
  return answer
}

/** A refusal answer from an error (codes and messages only: no stack, no SQL). */
export function mailboxRefusal(err: unknown): MailboxAnswer & { ok: false } {
  if (err instanceof MailboxError) return { ok: false, code: err.code, message: err.message, retryAfterMs: err.retryAfterMs ?? 0 }
  return { ok: false, code: 'UNAVAILABLE', message: 'the supernode failed to handle the request', retryAfterMs: 0 }
}
