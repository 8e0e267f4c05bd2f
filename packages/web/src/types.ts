/**
 * The shapes the daemon's local API answers with (see packages/node/src/chat/api.ts,
 * calls/api.ts, files/api.ts, api/local-api.ts and daemon.ts). Only what the
 * client reads is typed; the daemon may send more.
 */

export interface Session {
  signedIn: boolean
  name: string | null
  displayName: string | null
  peerId: string
  /** The network's login server. */
  login: string
  /** A prefill for the sign-up form (from `parley up --users`). */
  suggestedName: string | null
  expiresAt?: string | null
}

export type Presence = 'online' | 'away' | 'dnd' | 'invisible' | 'offline'
export type ContactState = 'requested' | 'incoming' | 'accepted' | 'declined' | 'blocked' | 'removed'

export interface Contact {
  name: string
  state: ContactState
  /** The request's message. */
  message: string | null
  updatedAt: number
  /** For accepted contacts: the most present of their devices. */
  presence?: Presence
  mood?: string
  at?: number
}

export interface OwnStatus {
  presence: Presence
  mood: string
}

export type MessageState = 'pending' | 'stored' | 'delivered' | 'read' | 'received' | 'refused'

export interface Message {
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

export interface Group {
  conv: string
  name: string
  topic: string
  creator: string
  members: string[]
}

export type CallState = 'calling' | 'ringing' | 'connecting' | 'active' | 'ended'
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

export interface CallQuality {
  rttMs: number | null
  jitterMs: number | null
  jitterBufferMs?: number | null
  lossFraction: number | null
  sendLossFraction?: number | null
  bitrateInBps?: number | null
  bitrateOutBps?: number | null
  localCandidateType?: string | null
  remoteCandidateType?: string | null
  mos: number | null
}

export interface CallSummary {
  mos: number | null
  rttMs: number | null
  jitterMs: number | null
  lossFraction: number | null
}

export interface Call {
  id: string
  direction: 'outgoing' | 'incoming'
  peer: string
  video: boolean
  state: CallState
  outcome: CallOutcome | null
  reason: string | null
  startedAt: number
  answeredAt: number | null
  endedAt: number | null
  setupMs: number | null
  seconds: number
  path: string | null
  held: boolean
  muted: boolean
  conference: string | null
  sending: string[]
  remoteVideo: boolean
  videoFramesIn: number
  remoteHeld: boolean
  remoteMuted: boolean
  quality: CallQuality | null
  summary?: CallSummary | null
}

export interface CallRecord {
  id: string
  direction: 'outgoing' | 'incoming'
  peer: string
  video: boolean
  outcome: CallOutcome
  reason: string | null
  startedAt: number
  answeredAt: number | null
  endedAt: number
  seconds: number
  setupMs: number | null
  path: string | null
  quality: CallSummary | null
}

export interface Voicemail {
  /** The call it was left after: also its id for `GET /v1/voicemail/:id`. */
  call: string
  from: string
  at: number
  seconds: number
  parts: number
  received: number
  complete: boolean
}

export type TransferState = 'offered' | 'accepted' | 'done' | 'declined' | 'cancelled' | 'refused' | 'failed' | 'quarantined'

export interface OfferedFile {
  path: string
  size: number
  sha256: string
}

export interface Transfer {
  id: string
  direction: 'outgoing' | 'incoming'
  peer: string
  files: OfferedFile[]
  state: TransferState
  reason: string | null
  folder: string | null
  bytes: number
  total: number
  createdAt: number
  updatedAt: number
}

export interface TransferProgress {
  bytes: number
  total: number
  /** Bytes per second. */
  rate: number
  secondsLeft: number | null
  /** Set when a transfer waits to resume: why. */
  retry?: string
}

export type Reachability = 'public' | 'private' | 'nat' | 'firewalled' | 'unknown'
export type NatClass = 'none' | 'cone' | 'symmetric' | 'unknown'

export interface LinkedSupernode {
  peerId: string
  addrs: string[]
  latencyMs?: number | null
}

export interface NetView {
  role: 'client' | 'supernode'
  reachability: Reachability
  natClass: NatClass
  observed: string[]
  mapped: string[]
  checkedAt: string | null
  addrs: string[]
  relays: string[]
  supernodes: LinkedSupernode[]
  hostCache: number
  direct?: Record<string, number>
}

export type PathKind = 'direct' | 'relayed' | 'none'

export interface PeerPath {
  name: string
  devices: Array<{ peerId: string; path: PathKind; rttMs?: number; error?: string }>
}

export interface DeviceEntry {
  peerId: string
  presence: Presence
  addrs: string[]
  expiresAt: number
}

export interface Whois {
  name: string
  devices: DeviceEntry[]
}

export interface DirectoryEntry {
  name: string
  displayName?: string
}

/** One frame of the event stream: `{seq, type, at, data}`; stream frames have no seq. */
export interface EventFrame {
  seq?: number
  type: string
  at: string
  data: unknown
}
