/**
 * What the daemon's local API answers and its events carry: one set of
 * types for the daemon that sends them and the clients that read them (the
 * web client, scripts). Plain data only (JSON as it goes on the wire).
 */

/** `GET /v1/session`: whether this device is signed in, and as whom. */
export interface SessionView {
  signedIn: boolean
  name: string | null
  displayName: string | null
  peerId: string
  /** The network's login server. */
  login: string
  /** For the sign-up form: the profile's owner, or the name `parley up --users` gave this daemon. */
  suggestedName: string | null
  expiresAt: string | null
}

export type ContactState = 'requested' | 'incoming' | 'accepted' | 'declined' | 'blocked' | 'removed'

/** A contact as this user's devices keep it (the list adds presence and mood). */
export interface Contact {
  name: string
  state: ContactState
  /** The request's message. */
  message: string | null
  updatedAt: number
}

/**
 * A line's state: for one's own lines `pending` (in the outbox), `stored` (in
 * the recipient's mailboxes), `delivered`, `read` or `refused`; `received` for
 * others' lines.
 */
export type MessageState = 'pending' | 'stored' | 'delivered' | 'read' | 'received' | 'refused'

export interface StoredMessage {
  id: string
  conv: string
  from: string
  device: string
  lamport: number
  at: number
  text: string
  replyTo: string | null
  edited: boolean
  deleted: boolean
  state: MessageState
}

export interface GroupView {
  conv: string
  name: string
  topic: string
  creator: string
  members: string[]
}

export interface VoicemailView {
  /** The call it was left after (also its id for `GET /v1/voicemail/:id`). */
  call: string
  from: string
  at: number
  seconds: number
  parts: number
  received: number
  complete: boolean
}

export type CallState = 'calling' | 'ringing' | 'connecting' | 'active' | 'ended'

/**
 * How a call ended, from this device's side: `completed` (it was connected),
 * `missed` (rang here, not answered), `no-answer` (this side called, nobody
 * answered), `declined`, `busy`, `cancelled` (the caller gave up, or this side
 * hung up before an answer), `answered-elsewhere` (another device of this
 * user took it), `unavailable` (no device of the callee could be reached) or
 * `failed` (media did not connect, or its certificate was not the signalled
 * one).
 */
export type CallOutcome =
  | 'completed'
  | 'missed'
  | 'no-answer'
  | 'declined'
  | 'busy'
  | 'cancelled'
  | 'answered-elsewhere'
  | 'unavailable'
  | 'failed'

/** A connected call's live figures (event `call.quality`, and a call's view). */
export interface CallQualityFigures {
  /** Round-trip time, ms. */
  rttMs: number | null
  /** Interarrival jitter of what this side receives, ms. */
  jitterMs: number | null
  /** Mean time a received sample spent in the jitter buffer, ms. */
  jitterBufferMs: number | null
  /** Packets lost of those sent to this side, 0 to 1. */
  lossFraction: number | null
  /** Packets lost of those this side sends, 0 to 1, as the other side reported. */
  sendLossFraction: number | null
  bitrateInBps: number | null
  bitrateOutBps: number | null
  localCandidateType: string | null
  remoteCandidateType: string | null
  /** The E-model's estimate of what this side hears, 1 to 5. */
  mos: number | null
}

/** The figures a call's history keeps: the last live ones of the call. */
export interface CallQualitySummary {
  mos: number | null
  rttMs: number | null
  jitterMs: number | null
  lossFraction: number | null
}

export interface CallView {
  id: string
  direction: 'outgoing' | 'incoming'
  peer: string
  /** Video went one way or the other during the call. */
  video: boolean
  state: CallState
  outcome: CallOutcome | null
  reason: string | null
  startedAt: number
  answeredAt: number | null
  endedAt: number | null
  /** From the dial (or the answer, for the callee) to the first audio heard here, ms. */
  setupMs: number | null
  /** Connected time so far, s. */
  seconds: number
  /** local/remote candidate types of the selected pair ('host/host', 'srflx/host', 'relay/relay'). */
  path: string | null
  held: boolean
  muted: boolean
  /** The conference (the id of its first call) when this device hosts one with this call in it. */
  conference: string | null
  /** Video this side sends: 'camera', 'screen'. */
  sending: string[]
  /** Whether the other side sends video now, and the video frames received so far. */
  remoteVideo: boolean
  videoFramesIn: number
  /** The other side's hold and mute. */
  remoteHeld: boolean
  remoteMuted: boolean
  /** Whether the web client's media is in this call (its microphone and camera, through its leg to this daemon). */
  browser: boolean
  quality: CallQualityFigures | null
  /** Once ended: the last figures of the call, as kept in the history. */
  summary?: CallQualitySummary | null
}

/** A call in the history (`GET /v1/calls`). */
export interface CallRecord {
  id: string
  direction: 'outgoing' | 'incoming'
  /** The other user. */
  peer: string
  video: boolean
  outcome: CallOutcome
  /** Why, in a few words (a refusal code, a failure). */
  reason: string | null
  startedAt: number
  answeredAt: number | null
  endedAt: number
  /** Connected time, seconds. */
  seconds: number
  /** From the dial (or the answer) to the first audio heard here, ms. */
  setupMs: number | null
  /** The media path: the local and remote ICE candidate types of the selected pair. */
  path: string | null
  quality: CallQualitySummary | null
}

/** One file of an offer: its path in the offer (POSIX, relative), size and SHA-256 (hex). */
export interface OfferedFile {
  path: string
  size: number
  sha256: string
}

/** A file the recipient's virus scanner flagged: its path in the offer and the signature clamd named. */
export interface InfectedFile {
  path: string
  signature: string
}

export type TransferState = 'offered' | 'accepted' | 'done' | 'quarantined' | 'declined' | 'cancelled' | 'refused' | 'failed'

export interface Transfer {
  id: string
  direction: 'outgoing' | 'incoming'
  /** The other user. */
  peer: string
  files: OfferedFile[]
  state: TransferState
  /** Why it ended so (a refusal code and words), when it did not end well. */
  reason: string | null
  /** Incoming: where it goes once accepted. Outgoing: null. */
  folder: string | null
  /** Bytes verified and kept so far (incoming), or sent in the last attempt (outgoing). */
  bytes: number
  /** `quarantined`: the files the recipient's scanner flagged (the others were moved into place). */
  infected: InfectedFile[]
  total: number
  createdAt: number
  updatedAt: number
  /** Incoming, once bytes came: how ('direct' or 'relayed'). */
  path?: string
}
