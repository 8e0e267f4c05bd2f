import { useSyncExternalStore } from 'react'
import type { StreamStatus } from './events.ts'
import type {
  Call,
  CallQuality,
  CallRecord,
  Contact,
  Group,
  Message,
  NetView,
  OwnStatus,
  PeerPath,
  Session,
  Transfer,
  TransferProgress,
  Voicemail
} from './types.ts'

/** A conversation in the sidebar: one contact (direct) or a group. */
export type ConvRef = { kind: 'direct'; name: string } | { kind: 'group'; conv: string }

export type View = 'chats' | 'contacts' | 'calls' | 'files' | 'network' | 'profile'

export interface QualitySample {
  t: number
  rttMs: number | null
  jitterMs: number | null
  lossPct: number | null
  mos: number | null
}

export interface Toast {
  id: number
  text: string
  tone: 'info' | 'error'
}

export interface State {
  /** undefined while the first answer is awaited. */
  session: Session | undefined
  stream: StreamStatus
  status: OwnStatus
  contacts: Contact[]
  privacy: 'anyone' | 'contacts'
  groups: Group[]
  /** Lines by conversation id, oldest first. */
  messages: Record<string, Message[]>
  /** Direct conversation ids by contact name (lower case), and back. */
  convByName: Record<string, string>
  nameByConv: Record<string, string>
  /** Who is typing, by conversation: name → until (ms). */
  typing: Record<string, Record<string, number>>
  /** Per conversation: the newest line's time the user has seen (kept in localStorage). */
  readUpTo: Record<string, number>
  /** Calls in progress here, by id. */
  calls: Record<string, Call>
  /** The call the browser's media leg belongs to (the first call of a conference). */
  mediaCall: string | undefined
  quality: Record<string, QualitySample[]>
  history: CallRecord[]
  voicemail: Voicemail[]
  /** Missed calls and voicemails not yet looked at. */
  missedSeenAt: number
  transfers: Record<string, Transfer>
  progress: Record<string, TransferProgress>
  net: NetView | undefined
  paths: Record<string, PeerPath | { error: string } | 'checking'>
  view: View
  open: ConvRef | undefined
  /** The call screen is shown (else a compact bar while a call runs). */
  callExpanded: boolean
  toasts: Toast[]
}

const READ_KEY = 'parley.readUpTo'
const MISSED_KEY = 'parley.missedSeenAt'

function loadJson<T>(key: string, fallback: T): T {
  try {
    const raw = localStorage.getItem(key)
    return raw === null ? fallback : (JSON.parse(raw) as T)
  } catch {
    return fallback
  }
}

const initial: State = {
  session: undefined,
  stream: 'connecting',
  status: { presence: 'online', mood: '' },
  contacts: [],
  privacy: 'anyone',
  groups: [],
  messages: {},
  convByName: {},
  nameByConv: {},
  typing: {},
  readUpTo: loadJson<Record<string, number>>(READ_KEY, {}),
  calls: {},
  mediaCall: undefined,
  quality: {},
  history: [],
  voicemail: [],
  missedSeenAt: loadJson<number>(MISSED_KEY, 0),
  transfers: {},
  progress: {},
  net: undefined,
  paths: {},
  view: 'chats',
  open: undefined,
  callExpanded: true,
  toasts: []
}

let state: State = initial
const listeners = new Set<() => void>()

export function getState(): State {
  return state
}

export function setState(update: Partial<State> | ((s: State) => Partial<State>)): void {
  const patch = typeof update === 'function' ? update(state) : update
  const next = { ...state, ...patch }
  if (patch.readUpTo !== undefined && patch.readUpTo !== state.readUpTo) localStorage.setItem(READ_KEY, JSON.stringify(patch.readUpTo))
  if (patch.missedSeenAt !== undefined && patch.missedSeenAt !== state.missedSeenAt)
    localStorage.setItem(MISSED_KEY, JSON.stringify(patch.missedSeenAt))
  state = next
  for (const l of listeners) l()
}

/** Back to the state of a fresh page (signed out): keeps what is per browser (read marks). */
export function resetState(session: Session): void {
  setState({ ...initial, session, readUpTo: state.readUpTo, missedSeenAt: state.missedSeenAt, stream: state.stream })
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener)
  return () => listeners.delete(listener)
}

/** A slice of the state; the selector must return something kept in the state (not a fresh object). */
export function useStore<T>(selector: (s: State) => T): T {
  return useSyncExternalStore(subscribe, () => selector(state))
}

let toastId = 0
export function toast(text: string, tone: Toast['tone'] = 'info'): void {
  const id = ++toastId
  setState((s) => ({ toasts: [...s.toasts, { id, text, tone }].slice(-4) }))
  setTimeout(() => dismissToast(id), tone === 'error' ? 9000 : 5000)
}

export function dismissToast(id: number): void {
  setState((s) => ({ toasts: s.toasts.filter((t) => t.id !== id) }))
}

export function qualitySample(q: CallQuality): QualitySample {
  return {
    t: Date.now(),
    rttMs: q.rttMs,
    jitterMs: q.jitterMs,
    lossPct: q.lossFraction === null ? null : q.lossFraction * 100,
    mos: q.mos
  }
}

export function convKey(ref: ConvRef, s: State): string | undefined {
  return ref.kind === 'group' ? ref.conv : s.convByName[ref.name.toLowerCase()]
}
