import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { LIMITS, ParleyError } from '@parley/protocol'
import type { ParleyNode } from '../node.ts'
import type { ChatService } from './service.ts'
import type { ChatStore } from './store.ts'

/**
 * Presence between contacts, pushed device to device with no server:
 * `/parley/presence/1.0.0`, one length-prefixed JSON message each way on a
 * hello-verified connection (at most LIMITS.presence.messageMaxBytes): the
 * caller sends `{"presence", "mood"}` (its own, as its contacts may see it) and
 * gets the other side's back. Only accepted contacts that are not blocked are
 * told anything: everyone else gets `offline`. A device pushes on every
 * change and every LIMITS.presence.heartbeatMs; a contact device not heard
 * from for LIMITS.presence.offlineAfterMs, or whose connection closed, is
 * offline. Invisible looks offline to everyone, and still receives.
 */
export const PRESENCE_PROTOCOL = '/parley/presence/1.0.0'

export type PresenceState = 'online' | 'away' | 'dnd' | 'invisible' | 'offline'
const SHOWN = new Set(['online', 'away', 'dnd', 'offline'])

export interface ContactPresence {
  presence: PresenceState
  mood: string
  /** When it was last heard (ms), or 0. */
  at: number
}

interface Heard {
  presence: PresenceState
  mood: string
  at: number
}

export interface PresenceComponents {
  node: ParleyNode
  store: ChatStore
  chat: ChatService
  me: () => string | undefined
  emit: (type: string, data: object) => void
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export class PresenceService {
  readonly #c: PresenceComponents
  /** Per contact name, per device: what was heard last. */
  readonly #heard = new Map<string, Map<string, Heard>>()
  readonly #shown = new Map<string, PresenceState>()
  #timers: Array<ReturnType<typeof setInterval>> = []
  #idleTimer: ReturnType<typeof setTimeout> | undefined
  #autoAway = false

  constructor(components: PresenceComponents) {
    this.#c = components
  }

  get own(): { presence: PresenceState; mood: string } {
    const presence = (this.#c.store.setting('presence') ?? 'online') as PresenceState
    return { presence, mood: this.#c.store.setting('mood') ?? '' }
  }

  async start(): Promise<void> {
    await this.#c.node.libp2p.handle(
      PRESENCE_PROTOCOL,
      async (stream, connection) => {
        await this.#answer(stream, connection).catch((err: unknown) => {
          stream.abort(err instanceof Error ? err : new Error(String(err)))
        })
      },
      { runOnLimitedConnection: true }
    )
    this.#c.node.libp2p.addEventListener('peer:disconnect', this.#onDisconnect)
    const every = (ms: number, work: () => Promise<void> | void): void => {
      const timer = setInterval(() => void Promise.resolve(work()).catch(() => {}), ms)
      timer.unref?.()
      this.#timers.push(timer)
    }
    every(LIMITS.presence.heartbeatMs, () => this.push())
    every(LIMITS.presence.sweepMs, () => this.#sweep())
    this.activity()
    void this.push().catch(() => {})
  }

  async stop(): Promise<void> {
    for (const t of this.#timers) clearInterval(t)
    this.#timers = []
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer)
    this.#c.node.libp2p.removeEventListener('peer:disconnect', this.#onDisconnect)
    await this.#c.node.libp2p.unhandle(PRESENCE_PROTOCOL).catch(() => {})
  }

  /** Sets this user's presence (and mood) and tells the online contacts at once. */
  async set(presence: PresenceState, mood?: string): Promise<{ presence: PresenceState; mood: string }> {
    if (presence === 'offline' || !['online', 'away', 'dnd', 'invisible'].includes(presence))
      throw new ParleyError('INVALID_REQUEST', 'presence is online, away, dnd or invisible')
    if (mood !== undefined && mood.length > LIMITS.presence.moodMaxLength)
      throw new ParleyError('INVALID_REQUEST', `a mood is at most ${LIMITS.presence.moodMaxLength} characters`)
    this.#autoAway = false
    this.#c.store.setSetting('presence', presence)
    if (mood !== undefined) this.#c.store.setSetting('mood', mood)
    this.#c.emit('presence.own', this.own)
    await this.push()
    return this.own
  }

  /** The user did something (the API was used): back from auto-away, and the idle clock starts again. */
  activity(): void {
    if (this.#autoAway && this.own.presence === 'away') {
      this.#autoAway = false
      this.#c.store.setSetting('presence', 'online')
      void this.push().catch(() => {})
    }
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer)
    this.#idleTimer = setTimeout(() => {
      if (this.own.presence !== 'online') return
      this.#autoAway = true
      this.#c.store.setSetting('presence', 'away')
      this.#c.emit('presence.own', this.own)
      void this.push().catch(() => {})
    }, LIMITS.presence.idleAwayMs)
    this.#idleTimer.unref?.()
  }

  /** A contact's presence as this device sees it: the most present of their devices. */
  of(name: string): ContactPresence {
    const devices = this.#heard.get(name)
    let best: ContactPresence = { presence: 'offline', mood: '', at: 0 }
    const rank = (p: PresenceState): number => ({ online: 4, dnd: 3, away: 2, invisible: 0, offline: 0 })[p]
    for (const heard of devices?.values() ?? []) {
      if (rank(heard.presence) > rank(best.presence) || (rank(heard.presence) === rank(best.presence) && heard.at > best.at))
        best = { ...heard }
    }
    return best
  }

  /** Tells every known device of every accepted contact this user's presence, and hears theirs back. */
  async push(): Promise<void> {
    const me = this.#c.me()
    if (me === undefined) return
    const contacts = this.#c.store.contacts().filter((c) => c.state === 'accepted')
    await Promise.all(
      contacts.flatMap((contact) =>
        this.#c.store.devicesOf(contact.name, LIMITS.overlay.devicesPerUser).map(async (device) => {
          const answer = await this.#tell(device).catch(() => undefined)
          if (answer !== undefined) this.#hear(contact.name, device, answer.presence, answer.mood)
        })
      )
    )
  }

  /** What this user shows to `name`: nothing at all to strangers and the blocked, offline while invisible. */
  #shownTo(name: string): { presence: PresenceState; mood: string } {
    const { presence, mood } = this.own
    if (!this.#c.chat.isContact(name) || this.#c.chat.isBlocked(name) || presence === 'invisible') return { presence: 'offline', mood: '' }
    return { presence, mood }
  }

  async #tell(device: string): Promise<{ presence: PresenceState; mood: string } | undefined> {
    const { node } = this.#c
    const peer = peerIdFromString(device)
    const signal = AbortSignal.timeout(LIMITS.presence.pushTimeoutMs)
    const connection = await node.libp2p.dial(peer, { signal })
    const hello = await node.hello.greet(connection)
    if (!hello.ok) return undefined
    const stream = await connection.newStream(PRESENCE_PROTOCOL, { signal, runOnLimitedConnection: true })
    const lp = lpStream(stream, { maxDataLength: LIMITS.presence.messageMaxBytes })
    try {
      await lp.write(encoder.encode(JSON.stringify(this.#shownTo(hello.peer.name))), { signal })
      const answer = parsePresence(decoder.decode((await lp.read({ signal })).subarray()))
      await stream.close({ signal }).catch(() => {})
      return answer
    } catch (err) {
      stream.abort(err as Error)
      return undefined
    }
  }

  async #answer(stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(LIMITS.presence.pushTimeoutMs)
    const lp = lpStream(stream, { maxDataLength: LIMITS.presence.messageMaxBytes })
    const peer = this.#c.node.hello.verified(connection.remotePeer)
    let heard: { presence: PresenceState; mood: string } | undefined
    try {
      heard = parsePresence(decoder.decode((await lp.read({ signal })).subarray()))
    } catch {
      heard = undefined
    }
    const name = peer?.name
    // Strangers and blocked users learn nothing, and what they say is not kept.
    const reply = name === undefined ? { presence: 'offline', mood: '' } : this.#shownTo(name)
    await lp.write(encoder.encode(JSON.stringify(reply)), { signal })
    await stream.close({ signal }).catch(() => {})
    if (name !== undefined && heard !== undefined && this.#c.chat.isContact(name) && !this.#c.chat.isBlocked(name)) {
      this.#c.store.rememberDevice(name, connection.remotePeer.toString())
      this.#hear(name, connection.remotePeer.toString(), heard.presence, heard.mood)
    }
  }

  #hear(name: string, device: string, presence: PresenceState, mood: string): void {
    let devices = this.#heard.get(name)
    if (devices === undefined) {
      devices = new Map()
      this.#heard.set(name, devices)
    }
    devices.set(device, { presence, mood, at: Date.now() })
    this.#announce(name)
  }

  #announce(name: string): void {
    const now = this.of(name)
    const key = `${now.presence}\u0000${now.mood}`
    if (this.#shown.get(name) === key) return
    this.#shown.set(name, key as PresenceState)
    this.#c.emit('presence.changed', { name, presence: now.presence, mood: now.mood })
  }

  #sweep(): void {
    const now = Date.now()
    for (const [name, devices] of this.#heard) {
      for (const [device, heard] of devices) {
        if (heard.presence !== 'offline' && now - heard.at > LIMITS.presence.offlineAfterMs)
          devices.set(device, { ...heard, presence: 'offline' })
      }
      this.#announce(name)
    }
  }

  readonly #onDisconnect = (event: CustomEvent<PeerId>): void => {
    const device = event.detail.toString()
    for (const [name, devices] of this.#heard) {
      const heard = devices.get(device)
      if (heard === undefined) continue
      devices.set(device, { ...heard, presence: 'offline' })
      this.#announce(name)
    }
  }
}

function parsePresence(text: string): { presence: PresenceState; mood: string } {
  const value = JSON.parse(text) as { presence?: unknown; mood?: unknown }
  if (typeof value.presence !== 'string' || !SHOWN.has(value.presence)) throw new Error('presence')
  const mood = typeof value.mood === 'string' ? value.mood.slice(0, LIMITS.presence.moodMaxLength) : ''
  return { presence: value.presence as PresenceState, mood }
}
