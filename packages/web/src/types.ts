/**
 * The shapes the daemon's local API answers with: its own types from
 * @parley/protocol (views.ts) where it has them, and here the ones only the
 * client reads (see the api.ts of each part of packages/node/src, and daemon.ts).
 */

import type {
  CallQualityFigures,
  CallView,
  Contact as ContactRecord,
  GroupView,
  SessionView,
  StoredMessage,
  Transfer as TransferView,
  VoicemailView
} from '@parley/protocol'

// The daemon's own types (packages/protocol/src/views.ts), under the names the client uses.
export type {
  CallOutcome,
  CallQualitySummary as CallSummary,
  CallRecord,
  CallState,
  ContactState,
  MessageState,
  OfferedFile,
  TransferState
} from '@parley/protocol'
export type Session = SessionView
export type Message = StoredMessage
export type Group = GroupView
export type Call = CallView
export type CallQuality = CallQualityFigures
export type Voicemail = VoicemailView
export type Transfer = TransferView

export type Presence = 'online' | 'away' | 'dnd' | 'invisible' | 'offline'
/** A contact as `GET /v1/contacts` lists it: for accepted contacts, the most present of their devices. */
export interface Contact extends ContactRecord {
  presence?: Presence
  mood?: string
  at?: number
}

export interface OwnStatus {
  presence: Presence
  mood: string
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
