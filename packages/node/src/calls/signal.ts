import { LIMITS } from '@parley/protocol'

/**
 * Call signalling on `/parley/call/1.0.0`: the caller's device opens one
 * stream to each device of the callee, on a hello-verified connection, and
 * both sides write length-prefixed JSON messages (at most
 * LIMITS.calls.signalMaxBytes each) until the call ends. The SDP travels
 * only here, so the DTLS fingerprints in it are those of the authenticated
 * peer: libwebrtc refuses media from any other certificate, and the call
 * service checks the fingerprint it sees again once media flows.
 *
 * caller → callee: invite (the offer), cancel (with why), and any time after
 * the answer: ice, offer/answer (renegotiation: video, screen share), hold,
 * mute, hangup. callee → caller: ringing, accept (the answer), reject (with
 * why), then the same in-call messages.
 */
export const CALL_PROTOCOL = '/parley/call/1.0.0'

export const CALL_REFUSALS = [
  /** A message that does not decode, or a message that makes no sense now. */
  'MALFORMED',
  /** A message or an SDP over its limit. */
  'TOO_LARGE',
  /** The caller has not said hello with a valid credential. */
  'NO_CREDENTIAL',
  /** The callee takes calls from contacts only, and the caller is not one. */
  'NOT_ALLOWED',
  /** Too many invites from this user. */
  'RATE_LIMITED',
  /** The DTLS certificate of the media is not the one in the signalled SDP. */
  'FINGERPRINT_MISMATCH'
] as const

export type CallRefusal = (typeof CALL_REFUSALS)[number]

export class CallError extends Error {
  override name = 'CallError'
  readonly code: CallRefusal

  constructor(code: CallRefusal, message: string) {
    super(message)
    this.code = code
  }
}

export const REJECT_REASONS = ['declined', 'busy', 'not-allowed', 'unavailable'] as const
export type RejectReason = (typeof REJECT_REASONS)[number]
export const CANCEL_REASONS = ['cancelled', 'no-answer', 'answered-elsewhere', 'declined-elsewhere'] as const
export type CancelReason = (typeof CANCEL_REASONS)[number]

export type Signal =
  | { t: 'invite'; call: string; video: boolean; sdp: string }
  | { t: 'ringing' }
  | { t: 'accept'; sdp: string }
  | { t: 'reject'; reason: RejectReason }
  | { t: 'cancel'; reason: CancelReason }
  /** A trickled candidate; an empty `candidate` says there are no more. */
  | { t: 'ice'; candidate: string; mid: string | null; index: number | null }
  | { t: 'offer'; sdp: string }
  | { t: 'answer'; sdp: string }
  | { t: 'hold'; on: boolean }
  | { t: 'mute'; audio: boolean; video: boolean }
  | { t: 'hangup' }
  | { t: 'refused'; code: CallRefusal; message: string }

export type SignalType = Signal['t']

const CALL_ID = /^[A-Za-z0-9_-]{16,64}$/
const MID = /^[A-Za-z0-9_-]{1,32}$/
const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** The fields each message has: no more, no fewer. */
const FIELDS: Record<SignalType, readonly string[]> = {
  invite: ['call', 'video', 'sdp'],
  ringing: [],
  accept: ['sdp'],
  reject: ['reason'],
  cancel: ['reason'],
  ice: ['candidate', 'mid', 'index'],
  offer: ['sdp'],
  answer: ['sdp'],
  hold: ['on'],
  mute: ['audio', 'video'],
  hangup: [],
  refused: ['code', 'message']
}

export function encodeSignal(signal: Signal): Uint8Array {
  const bytes = encoder.encode(JSON.stringify(signal))
  if (bytes.length > LIMITS.calls.signalMaxBytes)
    throw new CallError('TOO_LARGE', `a signalling message is at most ${LIMITS.calls.signalMaxBytes} bytes (this one: ${bytes.length})`)
  return bytes
}

/** Decodes and checks one message: anything else than a well-formed Signal throws CallError (MALFORMED or TOO_LARGE). */
export function decodeSignal(frame: Uint8Array): Signal {
  if (frame.length > LIMITS.calls.signalMaxBytes)
    throw new CallError('TOO_LARGE', `a signalling message is at most ${LIMITS.calls.signalMaxBytes} bytes`)
  let value: unknown
  try {
    value = JSON.parse(decoder.decode(frame))
  } catch {
    throw new CallError('MALFORMED', 'a signalling message is one JSON object in UTF-8')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new CallError('MALFORMED', 'not a JSON object')
  const o = value as Record<string, unknown>
  const t = o.t
  if (typeof t !== 'string' || !Object.hasOwn(FIELDS, t)) throw new CallError('MALFORMED', 'an unknown kind of signalling message')
  const fields = FIELDS[t as SignalType]
  for (const key of Object.keys(o)) {
    if (key !== 't' && !fields.includes(key)) throw new CallError('MALFORMED', `${t}: unexpected field ${key}`)
  }
  for (const key of fields) if (!Object.hasOwn(o, key)) throw new CallError('MALFORMED', `${t}: missing ${key}`)
  const bool = (key: string): boolean => {
    if (typeof o[key] !== 'boolean') throw new CallError('MALFORMED', `${t}: ${key} is true or false`)
    return o[key] as boolean
  }
  const oneOf = <T extends string>(key: string, allowed: readonly T[]): T => {
    if (typeof o[key] !== 'string' || !allowed.includes(o[key] as T))
      throw new CallError('MALFORMED', `${t}: ${key} is one of ${allowed.join(', ')}`)
    return o[key] as T
  }
  switch (t as SignalType) {
    case 'invite': {
      if (typeof o.call !== 'string' || !CALL_ID.test(o.call))
        throw new CallError('MALFORMED', 'invite: call is 16 to 64 base64url characters')
      return { t: 'invite', call: o.call, video: bool('video'), sdp: checkSdp(o.sdp, 'offer') }
    }
    case 'ringing':
      return { t: 'ringing' }
    case 'accept':
      return { t: 'accept', sdp: checkSdp(o.sdp, 'answer') }
    case 'offer':
      return { t: 'offer', sdp: checkSdp(o.sdp, 'offer') }
    case 'answer':
      return { t: 'answer', sdp: checkSdp(o.sdp, 'answer') }
    case 'reject':
      return { t: 'reject', reason: oneOf('reason', REJECT_REASONS) }
    case 'cancel':
      return { t: 'cancel', reason: oneOf('reason', CANCEL_REASONS) }
    case 'ice': {
      const candidate = o.candidate
      if (typeof candidate !== 'string' || encoder.encode(candidate).length > LIMITS.calls.candidateMaxBytes)
        throw new CallError('MALFORMED', `ice: candidate is a string of at most ${LIMITS.calls.candidateMaxBytes} bytes`)
      if (candidate !== '' && !/^candidate:[\x20-\x7e]+$/.test(candidate)) throw new CallError('MALFORMED', 'ice: not a candidate line')
      const mid = o.mid
      if (mid !== null && (typeof mid !== 'string' || !MID.test(mid))) throw new CallError('MALFORMED', 'ice: mid is a short token or null')
      const index = o.index
      if (index !== null && (!Number.isSafeInteger(index) || (index as number) < 0 || (index as number) > 64))
        throw new CallError('MALFORMED', 'ice: index is 0 to 64 or null')
      return { t: 'ice', candidate, mid: mid as string | null, index: index as number | null }
    }
    case 'hold':
      return { t: 'hold', on: bool('on') }
    case 'mute':
      return { t: 'mute', audio: bool('audio'), video: bool('video') }
    case 'hangup':
      return { t: 'hangup' }
    case 'refused': {
      const code = oneOf('code', CALL_REFUSALS)
      if (typeof o.message !== 'string' || o.message.length > 500) throw new CallError('MALFORMED', 'refused: message is a short string')
      return { t: 'refused', code, message: o.message }
    }
  }
  throw new CallError('MALFORMED', 'an unknown kind of signalling message')
}

/**
 * An SDP as the call accepts it: printable lines, within its limit, with DTLS
 * (a fingerprint) — media without encryption is never offered or taken.
 */
export function checkSdp(sdp: unknown, kind: 'offer' | 'answer'): string {
  if (typeof sdp !== 'string') throw new CallError('MALFORMED', `${kind}: sdp is a string`)
  if (encoder.encode(sdp).length > LIMITS.calls.sdpMaxBytes)
    throw new CallError('TOO_LARGE', `an SDP is at most ${LIMITS.calls.sdpMaxBytes} bytes`)
  if (!sdp.startsWith('v=0\r\n') && !sdp.startsWith('v=0\n')) throw new CallError('MALFORMED', `${kind}: an SDP starts with v=0`)
  if (!/^[\x20-\x7e\r\n]*$/.test(sdp)) throw new CallError('MALFORMED', `${kind}: an SDP is printable ASCII lines`)
  if (fingerprintsOf(sdp).length === 0)
    throw new CallError('MALFORMED', `${kind}: an SDP without a DTLS fingerprint (unencrypted media) is refused`)
  return sdp
}

/** The DTLS fingerprints an SDP names (`a=fingerprint:ALG HEX`), algorithm and value normalized. */
export function fingerprintsOf(sdp: string): Array<{ algorithm: string; value: string }> {
  const found: Array<{ algorithm: string; value: string }> = []
  for (const line of sdp.split(/\r?\n/)) {
    const m = /^a=fingerprint:(\S+) ([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})+)$/.exec(line.trim())
    if (m !== null) found.push({ algorithm: (m[1] as string).toLowerCase(), value: (m[2] as string).toUpperCase() })
  }
  return found
}
