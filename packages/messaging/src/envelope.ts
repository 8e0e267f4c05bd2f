import { type KeyPair, peerIdOf, sign, verifySignature } from '@parley/crypto'
import { concatBytes, fromBase64Url, isValidName, LIMITS, toBase64Url } from '@parley/protocol'
import { type BodyOf, checkBody, isKind, type Kind } from './bodies.ts'
import { canonicalJson, isPlainObject } from './canonical-json.ts'
import { MessagingError } from './errors.ts'
import { directConversation, isConversationId, isMessageId, newMessageId } from './ids.ts'
import { deviceKeyHandle } from './peer-key.ts'

/**
 * One signed message between users (or between one user's devices). The
 * device that wrote it signs it; whoever holds it can check it offline with
 * the key inside `device`. That the device belongs to `from` is for the
 * receiver to check against the device's credential (the hello of the
 * connection it came over, or the sender's user record).
 */
export interface Envelope {
  v: 1
  /** 16 random bytes, base64url (22 characters). */
  id: string
  /** `directConversation(a, b)` or a group id from `newGroupId()`. */
  conv: string
  kind: Kind
  /** The author's user name. */
  from: string
  /** The signing device's peer id ("12D3KooW..."), which holds its Ed25519 key. */
  device: string
  /** The author's Lamport time in this conversation: one more than the highest it had seen. */
  lamport: number
  /** The author's wall clock when writing, ms since the epoch: for display only, never for order. */
  sentAt: number
  body: Record<string, unknown>
  /** Ed25519 signature by the device key over `ENVELOPE_CONTEXT` ‖ the canonical JSON of every other field, base64url. */
  sig: string
}

/** An envelope whose body has been checked for its kind (every decoded or signed envelope). */
export type EnvelopeOf<K extends Kind> = Omit<Envelope, 'kind' | 'body'> & { kind: K; body: BodyOf[K] & Record<string, unknown> }

/** Narrows an envelope to one kind, with its body's type. */
export function isEnvelopeOf<K extends Kind>(e: Envelope, kind: K): e is Envelope & EnvelopeOf<K> {
  return e.kind === kind
}

export const ENVELOPE_VERSION = 1
/** Domain separation: an envelope signature can never be taken for another signed thing. */
export const ENVELOPE_CONTEXT = new TextEncoder().encode('parley/envelope/v1\0')

const SIG_FIELD_BYTES = ',"sig":""'.length + 86
const FIELDS = ['body', 'conv', 'device', 'from', 'id', 'kind', 'lamport', 'sentAt', 'sig', 'v'] as const
const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
/** The envelope is depth 1, its body depth 2. */
const MAX_DEPTH = LIMITS.messaging.bodyMaxDepth + 1

function malformed(message: string): never {
  throw new MessagingError('MALFORMED', message)
}

function signedBytes(e: Omit<Envelope, 'sig'>): Uint8Array {
  const unsigned = {
    v: e.v,
    id: e.id,
    conv: e.conv,
    kind: e.kind,
    from: e.from,
    device: e.device,
    lamport: e.lamport,
    sentAt: e.sentAt,
    body: e.body
  }
  return concatBytes(ENVELOPE_CONTEXT, encoder.encode(canonicalJson(unsigned, MAX_DEPTH)))
}

/** Everything but the signature and the size: field types, the body for its kind. */
function checkFields(e: Record<string, unknown>): asserts e is Record<string, unknown> & Omit<Envelope, 'sig'> {
  if (e.v !== ENVELOPE_VERSION) {
    if (typeof e.v === 'number') throw new MessagingError('UNSUPPORTED_VERSION', `envelope version ${e.v} is not known here`)
    malformed('v must be 1')
  }
  if (!isMessageId(e.id)) malformed('id must be 16 bytes of base64url')
  if (!isConversationId(e.conv)) malformed('conv must be a conversation id')
  if (!isKind(e.kind)) {
    if (typeof e.kind === 'string' && /^[a-z][a-z0-9-]{0,31}$/.test(e.kind))
      throw new MessagingError('UNKNOWN_KIND', `unknown kind ${e.kind}`)
    malformed('kind must be a kind')
  }
  if (!isValidName(e.from)) malformed('from must be a user name')
  if (typeof e.device !== 'string') malformed('device must be a peer id')
  if (!Number.isSafeInteger(e.lamport) || (e.lamport as number) < 1) malformed('lamport must be a positive integer')
  if (!Number.isSafeInteger(e.sentAt) || (e.sentAt as number) < 0) malformed('sentAt must be a non-negative integer')
  if (!isPlainObject(e.body)) malformed('body must be an object')
  const from = e.from
  checkBody(e.kind, e.body, e.conv, () => directConversation(from, from))
}

export interface EnvelopeFields {
  conv: string
  kind: Kind
  from: string
  lamport: number
  body: Record<string, unknown>
  /** Default: a fresh random id. */
  id?: string
  /** Default: Date.now(). */
  sentAt?: number
}

/**
 * Makes a signed envelope. Checks everything decodeEnvelope checks, so what
 * one device signs every other accepts.
 *
 * @throws MessagingError: TOO_LARGE (a text or the whole envelope over its limit), BAD_BODY, MALFORMED, UNKNOWN_KIND
 */
export function signEnvelope(fields: EnvelopeFields, device: KeyPair): Envelope {
  const draft: Record<string, unknown> = {
    v: ENVELOPE_VERSION,
    id: fields.id ?? newMessageId(),
    conv: fields.conv,
    kind: fields.kind,
    from: fields.from,
    device: peerIdOf(device.publicKey),
    lamport: fields.lamport,
    sentAt: fields.sentAt ?? Date.now(),
    // A copy in canonical form, detached from the caller's object: what decodeEnvelope will return.
    body: isPlainObject(fields.body) ? (JSON.parse(canonicalJson(fields.body, MAX_DEPTH - 1)) as Record<string, unknown>) : fields.body
  }
  checkFields(draft)
  const message = signedBytes(draft)
  // The encoding is the signed JSON with `,"sig":"<86 characters>"` added.
  const size = message.length - ENVELOPE_CONTEXT.length + SIG_FIELD_BYTES
  if (size > LIMITS.messaging.envelopeMaxBytes) throw new MessagingError('TOO_LARGE', `envelope of ${size} bytes is over the limit`)
  return { ...draft, sig: toBase64Url(sign(device, message)) }
}

/**
 * The envelope's canonical bytes, as they travel and are stored: UTF-8 JSON,
 * keys sorted, no whitespace. Does not check the envelope (signEnvelope and
 * decodeEnvelope did).
 */
export function encodeEnvelope(e: Envelope): Uint8Array {
  const { v, id, conv, kind, from, device, lamport, sentAt, body, sig } = e
  return encoder.encode(canonicalJson({ v, id, conv, kind, from, device, lamport, sentAt, body, sig }, MAX_DEPTH))
}

/**
 * Reads an envelope from the wire and checks all of it: size, canonical
 * form, every field, the body for its kind, and the signature against the
 * key inside `device`. The only error it throws is MessagingError.
 */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  if (!(bytes instanceof Uint8Array)) malformed('an envelope is bytes')
  if (bytes.length > LIMITS.messaging.envelopeMaxBytes)
    throw new MessagingError('TOO_LARGE', `envelope of ${bytes.length} bytes is over the limit`)
  let text: string
  let parsed: unknown
  try {
    text = decoder.decode(bytes)
    parsed = JSON.parse(text)
  } catch {
    return malformed('not UTF-8 JSON')
  }
  if (!isPlainObject(parsed)) malformed('an envelope is an object')
  // A newer version may have other fields: say so before complaining about them.
  if (parsed.v !== ENVELOPE_VERSION && typeof parsed.v === 'number') {
    throw new MessagingError('UNSUPPORTED_VERSION', `envelope version ${parsed.v} is not known here`)
  }
  const keys = Object.keys(parsed)
  if (keys.length !== FIELDS.length || !FIELDS.every((f) => Object.hasOwn(parsed, f)))
    malformed(`an envelope has exactly ${FIELDS.join(', ')}`)
  if (typeof parsed.sig !== 'string' || fromBase64Url(parsed.sig)?.length !== 64) malformed('sig must be 64 bytes of base64url')
  checkFields(parsed)
  // One byte string per envelope: re-encode what was read and refuse any other spelling of it.
  if (canonicalJson(parsed, MAX_DEPTH) !== text) malformed('not in canonical form')
  const envelope = parsed as unknown as Envelope
  const key = deviceKeyHandle(envelope.device)
  if (key === undefined) throw new MessagingError('BAD_DEVICE', 'device is not the peer id of an Ed25519 key')
  if (!verifySignature(key, signedBytes(envelope), fromBase64Url(envelope.sig) as Uint8Array)) {
    throw new MessagingError('BAD_SIGNATURE', 'the signature does not verify with the device key')
  }
  return envelope
}
