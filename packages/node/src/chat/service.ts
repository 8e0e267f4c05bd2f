import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import type { KeyPair } from '@parley/crypto'
import {
  applyShortcodes,
  decodeEnvelope,
  directConversation,
  type Envelope,
  encodeEnvelope,
  groupState,
  isGroupConversation,
  type Kind,
  LamportClock,
  MessagingError,
  newGroupId,
  open,
  publicKeyOfPeerId,
  seal,
  signEnvelope,
  type VoicemailBody
} from '@parley/messaging'
import { type GroupView, LIMITS, ParleyError, type VoicemailView } from '@parley/protocol'
import { TokenBuckets } from '../mailbox/rate.ts'
import type { ParleyNode } from '../node.ts'
import type { ChatStore, Contact, ContactState, MessageState, StoredMessage } from './store.ts'

/**
 * Contacts and messages between users' devices, with no message server.
 *
 * `/parley/chat/1.0.0`: on a hello-verified connection (direct or relayed),
 * the sender writes envelopes (length-prefixed canonical bytes from
 * @parley/messaging, each at most LIMITS.messaging.envelopeMaxBytes) and reads
 * one JSON answer per envelope: `{"id", "ok": true}` or
 * `{"id"?, "refused": {"code", "message"}}`. A refused envelope does not end
 * the stream. The receiver stores before it answers, so an `ok` is durable.
 *
 * Who may send what: a user's own devices forward anything signed (history,
 * contact list, copies of what the user sent); anyone else sends only
 * envelopes it signed itself (`from` is its verified name, `device` its peer
 * id). A blocked user's envelopes are answered `ok` and dropped (it is not
 * told); with the privacy setting "contacts", strangers may not send
 * messages (NOT_ALLOWED), only contact requests when requests are open to anyone.
 */
export const CHAT_PROTOCOL = '/parley/chat/1.0.0'

/**
 * A device catching up from the user's other devices: `/parley/history/1.0.0`,
 * only between devices of the same user. The asker sends
 * `{"since": lamport, "limit": n}`; the other device answers with the
 * envelopes it keeps after that time (newest `limit`, in order), each
 * length-prefixed as on the chat protocol, then closes. They are checked as
 * if they had come one by one (signatures, conversations).
 */
export const HISTORY_PROTOCOL = '/parley/history/1.0.0'

export type Privacy = 'anyone' | 'contacts'
export type ChatRefusal = 'NO_CREDENTIAL' | 'FORGED' | 'NOT_ALLOWED' | 'NOT_FOR_ME' | 'RATE_LIMITED' | MessagingError['code']

/** What one device answered to a batch of envelopes: taken, refused for good (with the code), or to be sent again later. */
interface Delivery {
  acked: Set<string>
  refused: Map<string, string>
  limited: Set<string>
}

export interface ChatComponents {
  node: ParleyNode
  store: ChatStore
  device: KeyPair
  /** This device's user name (from its credential); undefined while logged out. */
  me: () => string | undefined
  /** Live events for the local API. */
  emit: (type: string, data: object) => void
}

export type { GroupView, VoicemailView } from '@parley/protocol'

export interface SendResult {
  id: string
  state: MessageState
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export class ChatService {
  readonly #c: ChatComponents
  readonly clock: LamportClock
  #timer: ReturnType<typeof setInterval> | undefined
  #collector: ReturnType<typeof setInterval> | undefined
  #draining: Promise<void> | undefined
  /** What one other user may send this device (LIMITS.chat): envelopes, and contact requests while not a contact. */
  readonly #senders = new TokenBuckets(LIMITS.chat.senderPerMinute, LIMITS.chat.senderBurst, LIMITS.chat.senderBuckets)
  readonly #requests = new TokenBuckets(LIMITS.chat.requestsPerMinute, LIMITS.chat.requestBurst, LIMITS.chat.senderBuckets)
  #again: Promise<void> | undefined
  /** Collects on supernodes' words that mail waits: one at a time, a gap after each. */
  #collecting = false
  #collectAgain = false
  #collectGap: ReturnType<typeof setTimeout> | undefined
  /** When each user's devices were last looked up in the directory. */
  readonly #lookedUp = new Map<string, number>()

  constructor(components: ChatComponents) {
    this.#c = components
    this.clock = new LamportClock(components.store.maxLamport())
  }

  async start(): Promise<void> {
    await this.#c.node.libp2p.handle(
      CHAT_PROTOCOL,
      async (stream, connection) => {
        await this.#serve(stream, connection).catch((err: unknown) => {
          stream.abort(err instanceof Error ? err : new Error(String(err)))
        })
      },
      { runOnLimitedConnection: true }
    )
    await this.#c.node.libp2p.handle(
      HISTORY_PROTOCOL,
      async (stream, connection) => {
        await this.#serveHistory(stream, connection).catch((err: unknown) => {
          stream.abort(err instanceof Error ? err : new Error(String(err)))
        })
      },
      { runOnLimitedConnection: true }
    )
    this.#timer = setInterval(() => void this.drain().catch(() => {}), LIMITS.chat.outboxEveryMs)
    this.#timer.unref?.()
    this.#collector = setInterval(() => void this.collect().catch(() => {}), LIMITS.chat.collectEveryMs)
    this.#collector.unref?.()
    // A supernode says something waits in this device's mailbox (sent while a direct delivery failed): collect now.
    this.#c.node.mailbox.addEventListener('waiting', this.#onWaiting)
  }

  readonly #onWaiting = (): void => this.#collectSoon()

  /**
   * Collects now; while a collect triggered this way runs (or in the gap
   * after it), further words make one more collect at the end of the gap.
   */
  #collectSoon(): void {
    if (this.#collecting) {
      this.#collectAgain = true
      return
    }
    this.#collecting = true
    void this.collect()
      .catch(() => 0)
      .then(() => {
        this.#collectGap = setTimeout(() => {
          this.#collecting = false
          this.#collectGap = undefined
          if (this.#collectAgain) {
            this.#collectAgain = false
            this.#collectSoon()
          }
        }, LIMITS.mailbox.waitingGapMs)
        this.#collectGap.unref?.()
      })
  }

  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    if (this.#collector !== undefined) clearInterval(this.#collector)
    this.#c.node.mailbox.removeEventListener('waiting', this.#onWaiting)
    clearTimeout(this.#collectGap)
    await this.#draining?.catch(() => {})
    await this.#c.node.libp2p.unhandle(CHAT_PROTOCOL).catch(() => {})
    await this.#c.node.libp2p.unhandle(HISTORY_PROTOCOL).catch(() => {})
  }

  get privacy(): Privacy {
    return this.#c.store.setting('privacy') === 'contacts' ? 'contacts' : 'anyone'
  }

  set privacy(privacy: Privacy) {
    this.#c.store.setSetting('privacy', privacy)
  }

  // Contacts (kept by the user's own devices; every change goes to the other devices too).

  contacts(): Contact[] {
    return this.#c.store.contacts()
  }

  async addContact(name: string, message?: string): Promise<Contact> {
    const me = this.#me()
    if (name === me) throw new ParleyError('INVALID_REQUEST', 'you cannot add yourself as a contact')
    const current = this.#c.store.contact(name)
    // A request from them waiting here: adding them accepts it.
    if (current?.state === 'incoming') return await this.acceptContact(name)
    this.#decide(name, 'requested', message ?? null)
    await this.#send(name, 'contact', { action: 'request', ...(message === undefined ? {} : { message }) }, { toSelf: false })
    await this.#syncContacts([name])
    return this.#c.store.contact(name) as Contact
  }

  async acceptContact(name: string): Promise<Contact> {
    this.#decide(name, 'accepted')
    await this.#send(name, 'contact', { action: 'accept' }, { toSelf: false })
    await this.#syncContacts([name])
    return this.#c.store.contact(name) as Contact
  }

  async declineContact(name: string): Promise<Contact> {
    this.#decide(name, 'declined')
    await this.#send(name, 'contact', { action: 'decline' }, { toSelf: false })
    await this.#syncContacts([name])
    return this.#c.store.contact(name) as Contact
  }

  async removeContact(name: string): Promise<void> {
    this.#decide(name, 'removed')
    await this.#send(name, 'contact', { action: 'remove' }, { toSelf: false })
    await this.#syncContacts([name])
  }

  /** Blocks a user: nothing of theirs reaches storage, they see no presence, and they are not told. */
  block(name: string): Contact {
    this.#decide(name, 'blocked')
    this.#c.emit('contacts.changed', { name, state: 'blocked' })
    void this.#syncContacts([name]).catch(() => {})
    return this.#c.store.contact(name) as Contact
  }

  /** Tells this user's other devices the state of these contacts (the contact list is kept the same on all of them). */
  async #syncContacts(names: string[]): Promise<void> {
    const me = this.#me()
    const mine = (await this.#devicesOf(me)).filter((d) => d !== this.#c.node.peerId)
    // Kept even with no other device yet: a device logged in later catches up on it from this one.
    const contacts = names.flatMap((n) => {
      const c = this.#c.store.contact(n)
      return c === undefined ? [] : [{ name: c.name, state: c.state, ...this.#c.store.contactVersion(n) }]
    })
    const envelope = signEnvelope(
      { conv: directConversation(me, me), kind: 'sync', from: me, lamport: this.clock.tick(), body: { contacts } },
      this.#c.device
    )
    this.#c.store.add(envelope, encodeEnvelope(envelope), 'delivered')
    if (mine.length === 0) return
    this.#c.store.enqueue(envelope.id, me, mine)
    await this.drain()
  }

  /** A decision of this user's, made on this device: newer than any state of that contact this device has seen. */
  #decide(name: string, state: ContactState, message: string | null = null): void {
    const seen = this.#c.store.contactVersion(name)
    const lamport = Math.max(this.clock.tick(), seen.lamport + 1)
    this.clock.observe(lamport)
    this.#c.store.setContact(name, state, message, { lamport, device: this.#c.node.peerId })
  }

  isBlocked(name: string): boolean {
    return this.#c.store.contact(name)?.state === 'blocked'
  }

  isContact(name: string): boolean {
    return this.#c.store.contact(name)?.state === 'accepted'
  }

  // Messages.

  /** Sends a chat line: kept and queued durably before this resolves; delivered directly when a device of the user is online, else stored in mailboxes. */
  async message(to: string, text: string, options: { replyTo?: string } = {}): Promise<SendResult> {
    this.#checkText(text)
    if (this.isBlocked(to)) throw new ParleyError('NOT_ALLOWED', `${to} is blocked: unblock them to write to them`)
    const body = { text: applyShortcodes(text), ...(options.replyTo === undefined ? {} : { replyTo: options.replyTo }) }
    const id = await this.#send(to, 'text', body)
    return { id, state: this.#c.store.message(id)?.state ?? 'pending' }
  }

  async edit(to: string, target: string, text: string): Promise<string> {
    this.#ownLine(target)
    return await this.#send(to, 'edit', { target, text: applyShortcodes(text) })
  }

  async delete(to: string, target: string): Promise<string> {
    this.#ownLine(target)
    return await this.#send(to, 'delete', { target })
  }

  // Voicemail: a message of audio left when a call was not answered, in parts (envelopes of kind voicemail).

  /** Sends the parts of a voicemail to a user's devices (stored in their mailboxes while they are offline). */
  async sendVoicemail(to: string, parts: VoicemailBody[]): Promise<SendResult[]> {
    if (this.isBlocked(to)) throw new ParleyError('NOT_ALLOWED', `${to} is blocked: unblock them to leave them a message`)
    const sent: SendResult[] = []
    for (const part of parts) {
      const id = await this.#send(to, 'voicemail', { ...part }, { toSelf: false })
      sent.push({ id, state: this.#outcomes.get(id) ?? 'pending' })
    }
    return sent
  }

  /** What became of envelopes sent lately that are not chat lines (a chat line keeps its state in the history). */
  readonly #outcomes = new Map<string, MessageState>()

  #noteOutcome(id: string, state: MessageState | undefined): void {
    if (state === undefined) return
    const before = this.#outcomes.get(id)
    if (before === 'delivered' || before === 'refused') return
    this.#outcomes.set(id, state)
    if (this.#outcomes.size > 1_000) this.#outcomes.delete(this.#outcomes.keys().next().value as string)
  }

  /** The voicemails left for this user, newest first (`complete` once every part is here). */
  voicemails(): VoicemailView[] {
    const me = this.#c.me()
    const byCall = new Map<string, VoicemailView>()
    for (const raw of this.#c.store.envelopesByKind('voicemail', LIMITS.messaging.voicemailMaxParts * LIMITS.calls.historyMax)) {
      const e = decodeEnvelope(raw)
      if (e.from === me) continue
      const body = e.body as unknown as VoicemailBody
      const key = `${e.from}/${body.call}`
      const view = byCall.get(key) ?? {
        call: body.call,
        from: e.from,
        at: e.sentAt,
        seconds: body.seconds,
        parts: body.parts,
        received: 0,
        complete: false
      }
      view.received++
      view.complete = view.received >= view.parts
      view.at = Math.min(view.at, e.sentAt)
      byCall.set(key, view)
    }
    return [...byCall.values()].sort((a, b) => b.at - a.at)
  }

  /** The parts of one voicemail that others left here, as they came. */
  #voicemailEnvelopes(call: string): Envelope[] {
    const me = this.#c.me()
    return this.#c.store
      .voicemailEnvelopes(call, LIMITS.messaging.voicemailMaxParts * LIMITS.calls.historyMax)
      .map((raw) => decodeEnvelope(raw))
      .filter((e) => e.from !== me)
  }

  /** The parts of one voicemail, in order; undefined until all of them are here. */
  voicemailParts(call: string): VoicemailBody[] | undefined {
    const parts = this.#voicemailEnvelopes(call).map((e) => e.body as unknown as VoicemailBody)
    const total = parts[0]?.parts
    if (total === undefined) return undefined
    const ordered: VoicemailBody[] = []
    for (let i = 0; i < total; i++) {
      const part = parts.find((p) => p.part === i)
      if (part === undefined) return undefined
      ordered.push(part)
    }
    return ordered
  }

  /** Tells the other user's devices (and this user's) that these of their lines were read. */
  async markRead(name: string, ids: string[]): Promise<number> {
    const me = this.#me()
    const theirs = ids.filter((id) => {
      const line = this.#c.store.message(id)
      return line !== undefined && line.from !== me
    })
    for (let i = 0; i < theirs.length; i += LIMITS.messaging.receiptMaxIds)
      await this.#send(name, 'receipt', { ids: theirs.slice(i, i + LIMITS.messaging.receiptMaxIds), state: 'read' })
    return theirs.length
  }

  /** A typing indicator: to the user's devices that are online now, never stored or queued. */
  async typing(name: string, active: boolean): Promise<void> {
    const me = this.#me()
    const envelope = signEnvelope(
      { conv: directConversation(me, name), kind: 'typing', from: me, lamport: this.clock.now, body: { active } },
      this.#c.device
    )
    const raw = encodeEnvelope(envelope)
    const devices = this.#c.store.devicesOf(name, LIMITS.overlay.devicesPerUser)
    await Promise.all(devices.map(async (d) => await this.#deliver(d, [raw]).catch(() => undefined)))
  }

  history(name: string, limit: number): StoredMessage[] {
    return this.#c.store.history(directConversation(this.#me(), name), limit)
  }

  search(query: string, limit: number): StoredMessage[] {
    return this.#c.store.search(query, limit)
  }

  /** One pass over the outbox: every due entry is tried directly, then left for the mailbox. */
  /** One pass over the outbox; a call during a pass gets another pass right after it (what it queued is tried). */
  async drain(): Promise<void> {
    if (this.#draining !== undefined) {
      this.#again ??= this.#draining
        .catch(() => {})
        .then(async () => {
          this.#again = undefined
          await this.drain()
        })
      await this.#again
      return
    }
    this.#draining = this.#drain().finally(() => {
      this.#draining = undefined
    })
    await this.#draining
  }

  async #drain(): Promise<void> {
    const due = this.#c.store.due(Date.now(), LIMITS.chat.outboxBatch)
    const byDevice = new Map<string, typeof due>()
    for (const entry of due) byDevice.set(entry.device, [...(byDevice.get(entry.device) ?? []), entry])
    await Promise.all(
      [...byDevice.entries()].map(async ([device, entries]) => {
        const {
          acked: delivered,
          refused,
          limited
        } = await this.#deliver(
          device,
          entries.map((e) => e.raw),
          entries[0]?.recipient
        ).catch((): Delivery => ({ acked: new Set(), refused: new Map(), limited: new Set() }))
        // Those not reached now are sealed into the mailboxes first (network), then every outcome is kept in one
        // transaction. Those the device asked to slow down for stay here and are tried again later.
        const stored = new Set<string>()
        for (const e of entries) {
          const reached = refused.has(e.envelopeId) || delivered.has(e.envelopeId) || limited.has(e.envelopeId)
          if (!reached && e.state === 'pending' && (await this.#store(e))) stored.add(e.envelopeId)
        }
        const me = this.#c.me()
        const changes: Array<{ id: string; state: MessageState; reason?: string }> = []
        this.#c.store.transaction(() => {
          for (const e of entries) {
            const refusal = refused.get(e.envelopeId)
            const own = e.recipient === me
            if (!own)
              this.#noteOutcome(
                e.envelopeId,
                refusal !== undefined
                  ? 'refused'
                  : delivered.has(e.envelopeId)
                    ? 'delivered'
                    : stored.has(e.envelopeId)
                      ? 'stored'
                      : undefined
              )
            if (refusal !== undefined) {
              // Refused for good (privacy, not for this user): no retry; the sender sees why.
              this.#c.store.settle(e.envelopeId, device, 'delivered', 0)
              if (!own && this.#c.store.raiseState(e.envelopeId, 'refused'))
                changes.push({ id: e.envelopeId, state: 'refused', reason: refusal })
            } else if (delivered.has(e.envelopeId)) {
              this.#c.store.settle(e.envelopeId, device, 'delivered', 0)
              if (!own && this.#c.store.raiseState(e.envelopeId, 'delivered')) changes.push({ id: e.envelopeId, state: 'delivered' })
            } else if (stored.has(e.envelopeId)) {
              // Left sealed in the device's mailboxes: it fetches it when it comes back.
              this.#c.store.forget(e.envelopeId, device)
              if (!own && this.#c.store.raiseState(e.envelopeId, 'stored')) changes.push({ id: e.envelopeId, state: 'stored' })
            } else {
              const backoff = Math.min(LIMITS.chat.outboxMaxBackoffMs, LIMITS.chat.outboxEveryMs * 2 ** Math.min(e.attempts, 10))
              this.#c.store.settle(e.envelopeId, device, e.state, Date.now() + backoff)
            }
          }
        })
        for (const change of changes) this.#c.emit('message.state', change)
      })
    )
  }

  /** Seals an envelope to one device and deposits it in its user's mailboxes; whether any took it. */
  async #store(entry: { envelopeId: string; recipient: string; device: string; raw: Uint8Array }): Promise<boolean> {
    const key = publicKeyOfPeerId(entry.device)
    if (key === undefined) return false
    try {
      const { mailbox } = this.#c.node
      const item = mailbox.item({ id: entry.envelopeId, to: entry.recipient, device: entry.device, sealed: await seal(entry.raw, key) })
      const result = await mailbox.deposit(item, { signal: AbortSignal.timeout(LIMITS.chat.deliverTimeoutMs) })
      return result.stored > 0
    } catch {
      return false
    }
  }

  /**
   * Fetches what waits for this device in its mailboxes, opens and checks
   * every envelope as if it had come directly, keeps it, then deletes the
   * copies and tells the senders it was delivered. Resolves with how many new envelopes came.
   */
  async collect(): Promise<number> {
    const me = this.#c.me()
    if (me === undefined) return 0
    const { mailbox } = this.#c.node
    const found = await mailbox.collect(me, { signal: AbortSignal.timeout(LIMITS.chat.deliverTimeoutMs * 2) })
    let added = 0
    const receipts = new Map<string, string[]>()
    for (const item of found.items) {
      let frame: Uint8Array
      try {
        frame = await open(item.sealed, this.#c.device.seed)
      } catch {
        continue
      }
      const before = this.#c.store.raw(envelopeIdOf(frame) ?? '') !== undefined
      const outcome = this.#receive(frame, item.from, peerIdFromString(item.fromDevice))
      if (!outcome.ok || before) continue
      added++
      const line = this.#c.store.message(outcome.id)
      if (line !== undefined && item.from !== me) receipts.set(item.from, [...(receipts.get(item.from) ?? []), outcome.id])
    }
    if (found.items.length > 0) await mailbox.remove(found.items).catch(() => {})
    // Receipts go out in the background: the senders may be offline too (then they wait in their mailboxes).
    void (async () => {
      for (const [sender, ids] of receipts) {
        for (let i = 0; i < ids.length; i += LIMITS.messaging.receiptMaxIds) {
          const chunk = ids.slice(i, i + LIMITS.messaging.receiptMaxIds)
          await this.#send(sender, 'receipt', { ids: chunk, state: 'delivered' }, { toSelf: false }).catch(() => {})
        }
      }
    })()
    return added
  }

  /**
   * Catches up from this user's other devices that are online: what they
   * keep after the newest envelope here (all of recent history for a new
   * device). Resolves with how many envelopes were new.
   */
  async catchUp(): Promise<number> {
    const me = this.#me()
    const others = (await this.#devicesOf(me)).filter((d) => d !== this.#c.node.peerId)
    let added = 0
    for (const device of others) {
      try {
        added += await this.#catchUpFrom(device, me)
        return added
      } catch {
        // That device is not online: the next one.
      }
    }
    return added
  }

  async #catchUpFrom(device: string, me: string): Promise<number> {
    const { node } = this.#c
    const signal = AbortSignal.timeout(LIMITS.chat.catchUpTimeoutMs)
    const connection = await node.libp2p.dial(peerIdFromString(device), { signal })
    const hello = await node.hello.greet(connection)
    if (!hello.ok || hello.peer.name !== me) throw new Error('not a device of this user')
    const stream = await connection.newStream(HISTORY_PROTOCOL, { signal, runOnLimitedConnection: true })
    const lp = lpStream(stream, { maxDataLength: LIMITS.messaging.envelopeMaxBytes })
    await lp.write(encoder.encode(JSON.stringify({ since: this.#c.store.maxLamport(), limit: LIMITS.chat.catchUpMax })), { signal })
    let added = 0
    for (let i = 0; i < LIMITS.chat.catchUpMax; i++) {
      let frame: Uint8Array
      try {
        frame = (await lp.read({ signal })).subarray()
      } catch {
        break
      }
      const known = this.#c.store.raw(envelopeIdOf(frame) ?? '') !== undefined
      if (this.#receive(frame, me, connection.remotePeer).ok && !known) added++
    }
    await stream.close().catch(() => {})
    return added
  }

  async #serveHistory(stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(LIMITS.chat.catchUpTimeoutMs)
    const me = this.#c.me()
    const peer = this.#c.node.hello.verified(connection.remotePeer)
    // Only this user's own devices get its history.
    if (me === undefined || peer === undefined || peer.name !== me) {
      stream.abort(new Error("history is for this user's own devices"))
      return
    }
    // A device of this user's that this one may not know yet (newly logged in): later changes go to it too.
    this.#c.store.rememberDevice(me, connection.remotePeer.toString())
    const lp = lpStream(stream, { maxDataLength: LIMITS.messaging.envelopeMaxBytes })
    const request = JSON.parse(decoder.decode((await lp.read({ signal })).subarray())) as { since?: unknown; limit?: unknown }
    const since = Number.isSafeInteger(request.since) ? (request.since as number) : 0
    const limit = Number.isSafeInteger(request.limit) ? Math.min(request.limit as number, LIMITS.chat.catchUpMax) : LIMITS.chat.catchUpMax
    for (const raw of this.#c.store.envelopesSince(since, limit)) await lp.write(raw, { signal })
    await stream.close({ signal }).catch(() => {})
  }

  /** Sends envelopes to one device if it can be reached now; the ids it acknowledged, and those it refused (with the code). */
  async #deliver(device: string, raws: Uint8Array[], recipient?: string): Promise<Delivery> {
    const { node } = this.#c
    const peer = peerIdFromString(device)
    const signal = AbortSignal.timeout(LIMITS.chat.deliverTimeoutMs)
    // An open connection is used as it is (a direct one first); otherwise dial.
    const open = node.libp2p
      .getConnections(peer)
      .filter((c) => c.status === 'open')
      .sort((a, b) => Number(a.limits !== undefined) - Number(b.limits !== undefined))[0]
    let connection = open
    if (connection === undefined) {
      try {
        connection = await node.libp2p.dial(peer, { signal })
      } catch (err) {
        // Its addresses may have changed (a restart, another network): ask the directory, once, and dial again.
        if (recipient === undefined) throw err
        this.#lookedUp.delete(recipient.toLowerCase())
        await this.#devicesOf(recipient)
        connection = await node.libp2p.dial(peer, { signal })
      }
    }
    const hello = await node.hello.greet(connection)
    if (!hello.ok) throw new Error(`hello: ${hello.reason}`)
    const stream = await connection.newStream(CHAT_PROTOCOL, { signal, runOnLimitedConnection: true })
    const lp = lpStream(stream, { maxDataLength: LIMITS.messaging.envelopeMaxBytes })
    const acked = new Set<string>()
    const refused = new Map<string, string>()
    const limited = new Set<string>()
    try {
      // All the envelopes first, then the answers: one round trip per batch, not per envelope.
      const reading = (async () => {
        for (let i = 0; i < raws.length; i++) {
          const answer = JSON.parse(decoder.decode((await lp.read({ signal })).subarray())) as {
            id?: string
            ok?: boolean
            refused?: { code?: string }
          }
          if (typeof answer.id !== 'string') continue
          if (answer.ok === true) acked.add(answer.id)
          else if (answer.refused?.code === 'NOT_ALLOWED' || answer.refused?.code === 'NOT_FOR_ME')
            refused.set(answer.id, answer.refused.code)
          else if (answer.refused?.code === 'RATE_LIMITED') limited.add(answer.id)
        }
      })()
      for (const raw of raws) await lp.write(raw, { signal })
      await reading
      await stream.close({ signal }).catch(() => {})
    } catch (err) {
      stream.abort(err as Error)
    }
    return { acked, refused, limited }
  }

  /** Signs, keeps and queues an envelope for the other user's devices and this user's other devices; tries at once. */
  async #send(to: string, kind: Kind, body: Record<string, unknown>, options: { toSelf?: boolean } = {}): Promise<string> {
    return await this.#sendIn(directConversation(this.#me(), to), [to], kind, body, options)
  }

  /** Signs an envelope in a conversation, keeps it, and queues it for every device of these users (and this user's other devices). */
  async #sendIn(
    conv: string,
    to: string[],
    kind: Kind,
    body: Record<string, unknown>,
    options: { toSelf?: boolean; forward?: Uint8Array[]; forwardTo?: string[] } = {}
  ): Promise<string> {
    const me = this.#me()
    const envelope = signEnvelope({ conv, kind, from: me, lamport: this.clock.tick(), body }, this.#c.device)
    const raw = encodeEnvelope(envelope)
    const recipients = [...new Set(to.filter((n) => n.toLowerCase() !== me.toLowerCase()))]
    const devices = await Promise.all(recipients.map(async (name) => [name, await this.#devicesOf(name)] as const))
    const mine = options.toSelf === false ? [] : (await this.#devicesOf(me)).filter((d) => d !== this.#c.node.peerId)
    // Kept and queued in one transaction: one disk sync, and never one without the other.
    this.#c.store.transaction(() => {
      this.#c.store.add(envelope, raw, 'pending')
      for (const [name, theirs] of devices) {
        // Envelopes of others this one brings along (a group's history for a new member) go first.
        for (const f of options.forwardTo?.includes(name) === true ? (options.forward ?? []) : []) {
          const id = envelopeIdOf(f)
          if (id !== undefined) this.#c.store.enqueue(id, name, theirs)
        }
        this.#c.store.enqueue(envelope.id, name, theirs)
      }
      this.#c.store.enqueue(envelope.id, me, mine)
    })
    await this.drain()
    return envelope.id
  }

  // Groups: a conversation of up to LIMITS.messaging.groupMaxMembers users, each envelope sent by its author to every member's devices.

  /** Creates a group with these members (this user included). */
  async createGroup(name: string, members: string[]): Promise<GroupView> {
    const me = this.#me()
    const conv = newGroupId()
    const others = [...new Set(members.filter((m) => m.toLowerCase() !== me.toLowerCase()))]
    if (others.length + 1 > LIMITS.messaging.groupMaxMembers)
      throw new ParleyError('INVALID_REQUEST', `a group has at most ${LIMITS.messaging.groupMaxMembers} members`)
    await this.#sendIn(conv, others, 'group', { action: 'create', name, members: others })
    return this.group(conv)
  }

  /** Invites more users: they get the group's history of membership and then the invitation; the members get the invitation. */
  async invite(conv: string, members: string[]): Promise<GroupView> {
    const state = this.#memberOf(conv)
    const fresh = members.filter((m) => !state.members.some((x) => x.toLowerCase() === m.toLowerCase()))
    if (fresh.length === 0) return this.group(conv)
    const forward = this.#c.store.envelopesOfKind(conv, 'group')
    await this.#sendIn(conv, [...state.members, ...fresh], 'group', { action: 'invite', members: fresh }, { forward, forwardTo: fresh })
    return this.group(conv)
  }

  async leave(conv: string): Promise<void> {
    const state = this.#memberOf(conv)
    await this.#sendIn(conv, state.members, 'group', { action: 'leave' })
  }

  async setTopic(conv: string, topic: string): Promise<GroupView> {
    const state = this.#memberOf(conv)
    await this.#sendIn(conv, state.members, 'group', { action: 'topic', topic })
    return this.group(conv)
  }

  async groupMessage(conv: string, text: string, options: { replyTo?: string } = {}): Promise<SendResult> {
    const state = this.#memberOf(conv)
    this.#checkText(text)
    const body = { text: applyShortcodes(text), ...(options.replyTo === undefined ? {} : { replyTo: options.replyTo }) }
    const id = await this.#sendIn(conv, state.members, 'text', body)
    return { id, state: this.#c.store.message(id)?.state ?? 'pending' }
  }

  group(conv: string): GroupView {
    if (!isGroupConversation(conv)) throw new ParleyError('NOT_FOUND', `${conv} is not a group`)
    const state = groupState(this.#c.store.envelopesOfKind(conv, 'group').map((raw) => decodeEnvelope(raw)))
    if (!state.created) throw new ParleyError('NOT_FOUND', `no group ${conv} here`)
    return { conv, name: state.name ?? '', topic: state.topic ?? '', creator: state.creator ?? '', members: state.members }
  }

  groups(): GroupView[] {
    return this.#c.store.groupConversations().flatMap((conv) => {
      try {
        return [this.group(conv)]
      } catch {
        return []
      }
    })
  }

  groupHistory(conv: string, limit: number): StoredMessage[] {
    this.group(conv)
    return this.#c.store.history(conv, limit)
  }

  #memberOf(conv: string): GroupView {
    const group = this.group(conv)
    const me = this.#me()
    if (!group.members.some((m) => m.toLowerCase() === me.toLowerCase()))
      throw new ParleyError('NOT_ALLOWED', `you are not a member of ${conv}`)
    return group
  }

  #checkText(text: string): void {
    const bytes = encoder.encode(text).length
    if (text.trim() === '') throw new ParleyError('INVALID_REQUEST', 'an empty message')
    if (bytes > LIMITS.messaging.textMaxBytes)
      throw new ParleyError('PAYLOAD_TOO_LARGE', `a message is at most ${LIMITS.messaging.textMaxBytes} bytes of text (this one: ${bytes})`)
  }

  /**
   * A user's devices (peer ids): online now in the directory, and seen before;
   * this device excluded. `fresh` asks the directory now (a call or a file
   * offer is for the devices online at this moment, one logged in a second ago
   * included).
   */
  async devicesOf(name: string, options: { fresh?: boolean } = {}): Promise<string[]> {
    if (options.fresh === true) this.#lookedUp.delete(name.toLowerCase())
    return (await this.#devicesOf(name)).filter((d) => d !== this.#c.node.peerId)
  }

  /** A user's devices: online now (directory) and seen before. */
  async #devicesOf(name: string): Promise<string[]> {
    // The directory is asked again only now and then: devices seen before are known, and new ones show up through it.
    const known = this.#c.store.devicesOf(name, LIMITS.overlay.devicesPerUser)
    const last = this.#lookedUp.get(name.toLowerCase()) ?? 0
    // This device does not count: until another device of its own user is known, the directory is asked every time.
    const others = known.filter((d) => d !== this.#c.node.peerId)
    if (others.length > 0 && Date.now() - last < LIMITS.chat.devicesFreshMs) return known
    this.#lookedUp.set(name.toLowerCase(), Date.now())
    if (this.#lookedUp.size > LIMITS.chat.devicesFreshEntries) this.#lookedUp.delete(this.#lookedUp.keys().next().value as string)
    try {
      const found = await this.#c.node.records.whois(name, { signal: AbortSignal.timeout(LIMITS.chat.deliverTimeoutMs) })
      for (const d of found.devices) {
        this.#c.store.rememberDevice(name, d.peerId)
        if (d.addrs.length > 0)
          await this.#c.node.libp2p.peerStore
            .merge(peerIdFromString(d.peerId), { multiaddrs: d.addrs.map((a) => multiaddr(a)) })
            .catch(() => {})
      }
    } catch {
      // Not found now: the devices seen before still get it (through the mailboxes).
    }
    return this.#c.store.devicesOf(name, LIMITS.overlay.devicesPerUser)
  }

  #isMember(conv: string, name: string): boolean {
    try {
      return this.group(conv).members.some((m) => m.toLowerCase() === name.toLowerCase())
    } catch {
      return false
    }
  }

  #ownLine(id: string): void {
    const line = this.#c.store.message(id)
    if (line === undefined) throw new ParleyError('NOT_FOUND', `no message ${id}`)
    if (line.from !== this.#me()) throw new ParleyError('NOT_ALLOWED', 'only your own messages can be edited or deleted')
  }

  #me(): string {
    const me = this.#c.me()
    if (me === undefined) throw new ParleyError('NOT_LOGGED_IN', 'this device is not logged in')
    return me
  }

  async #serve(stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(LIMITS.chat.streamIdleMs)
    const lp = lpStream(stream, { maxDataLength: LIMITS.messaging.envelopeMaxBytes })
    const answer = async (body: object): Promise<void> => {
      await lp.write(encoder.encode(JSON.stringify(body)), { signal })
    }
    const peer = this.#c.node.hello.verified(connection.remotePeer)
    if (peer === undefined) {
      await answer({ refused: { code: 'NO_CREDENTIAL', message: 'say hello with a valid credential first' } })
      await stream.close({ signal }).catch(() => {})
      return
    }
    for (;;) {
      let frame: Uint8Array
      try {
        frame = (await lp.read({ signal })).subarray()
      } catch {
        break
      }
      const outcome = this.#receive(frame, peer.name, connection.remotePeer)
      await answer(
        outcome.ok ? { id: outcome.id, ok: true } : { ...(outcome.id === undefined ? {} : { id: outcome.id }), refused: outcome.refused }
      )
    }
    await stream.close({ signal }).catch(() => {})
  }

  /** Checks and keeps one envelope that came from `sender` (a verified user name) over `via`. */
  #receive(
    frame: Uint8Array,
    sender: string,
    via: PeerId | undefined
  ): { ok: true; id: string } | { ok: false; id?: string; refused: { code: ChatRefusal; message: string } } {
    let envelope: Envelope
    try {
      envelope = decodeEnvelope(frame)
    } catch (err) {
      const code = err instanceof MessagingError ? err.code : 'MALFORMED'
      return { ok: false, refused: { code, message: (err as Error).message } }
    }
    // Whatever comes next from this device is after what it has seen.
    this.clock.observe(envelope.lamport)
    const me = this.#c.me()
    const refuse = (code: ChatRefusal, message: string) => ({ ok: false as const, id: envelope.id, refused: { code, message } })
    if (me === undefined) return refuse('NOT_FOR_ME', 'this device is logged out')
    const ownDevice = sender === me
    const group = isGroupConversation(envelope.conv)
    const forwarded = envelope.from !== sender || (via !== undefined && envelope.device !== via.toString())
    // Forwarded envelopes: from the user's own devices, and a group's membership history brought by a member who invites.
    const groupHistory = group && envelope.kind === 'group' && ['create', 'invite', 'topic'].includes(String(envelope.body.action))
    if (!ownDevice && forwarded && !groupHistory) return refuse('FORGED', 'an envelope must be signed by the device that sends it')
    const other = envelope.from === me ? undefined : envelope.from
    if (!ownDevice && !group && envelope.conv !== directConversation(me, envelope.from))
      return refuse('NOT_FOR_ME', 'not a conversation of this user')
    if (!ownDevice && group && envelope.kind !== 'group' && !this.#isMember(envelope.conv, envelope.from))
      return refuse('NOT_FOR_ME', `${envelope.from} is not a member of this group here`)
    // Blocked: taken and dropped, never stored, and the sender is not told.
    if (other !== undefined && this.isBlocked(other)) return { ok: true, id: envelope.id }
    if (!ownDevice) {
      const wait = this.#senders.take(sender.toLowerCase())
      if (wait > 0) return refuse('RATE_LIMITED', `too many messages from ${sender}: try again in ${wait} ms`)
      if (envelope.kind === 'contact' && envelope.body.action === 'request' && !this.isContact(sender)) {
        const requestWait = this.#requests.take(sender.toLowerCase())
        if (requestWait > 0) return refuse('RATE_LIMITED', `too many contact requests from ${sender}: try again in ${requestWait} ms`)
      }
    }
    if (other !== undefined && !ownDevice && envelope.kind !== 'contact' && this.privacy === 'contacts' && !this.isContact(other))
      return refuse('NOT_ALLOWED', `${me} takes messages from contacts only`)
    // Typing is a moment, not history: told, never kept.
    if (envelope.kind === 'typing') {
      if (other !== undefined) this.#c.emit('message.typing', { from: other, conv: envelope.conv, active: envelope.body.active === true })
      return { ok: true, id: envelope.id }
    }
    if (!forwarded) this.#c.store.rememberDevice(envelope.from, envelope.device)
    const added = this.#c.store.add(envelope, frame, envelope.from === me ? 'delivered' : 'received')
    if (added === 'added') this.#apply(envelope, me)
    return { ok: true, id: envelope.id }
  }

  #apply(envelope: Envelope, me: string): void {
    const other = envelope.from === me ? undefined : envelope.from
    switch (envelope.kind) {
      case 'text':
        this.#c.emit('message.received', this.#c.store.message(envelope.id) ?? { id: envelope.id })
        return
      case 'edit':
      case 'delete':
        this.#c.emit('message.changed', this.#c.store.message(String(envelope.body.target)) ?? { id: envelope.body.target })
        return
      case 'contact': {
        // The other user's decision: every device of this user gets the same envelope and makes the same change (its
        // version is the envelope's), so it is not passed on to them.
        const action = envelope.body.action
        if (other === undefined) return
        const current = this.#c.store.contact(other)?.state
        const version = { lamport: envelope.lamport, device: envelope.device }
        if (action === 'request') {
          if (current === 'accepted') {
            // They lost us (a new device, a removal undone): accept again.
            void this.#send(other, 'contact', { action: 'accept' }).catch(() => {})
          } else if (current === 'requested') {
            this.#c.store.setContact(other, 'accepted', null, version)
            void this.#send(other, 'contact', { action: 'accept' }).catch(() => {})
          } else {
            this.#c.store.setContact(other, 'incoming', typeof envelope.body.message === 'string' ? envelope.body.message : null, version)
          }
        } else if (action === 'accept' && (current === 'requested' || current === 'accepted')) {
          this.#c.store.setContact(other, 'accepted', null, version)
        } else if (action === 'decline' && current === 'requested') {
          this.#c.store.setContact(other, 'declined', null, version)
        } else if (action === 'remove' && current !== undefined) {
          this.#c.store.setContact(other, 'removed', null, version)
        }
        this.#c.emit('contacts.changed', this.#c.store.contact(other) ?? { name: other })
        return
      }
      case 'voicemail': {
        // A part of a voicemail; once all parts are here, it is announced whole.
        if (other === undefined) return
        // Only this call's parts are looked at (and only when the last one may have come).
        const body = envelope.body as unknown as VoicemailBody
        const parts = this.#voicemailEnvelopes(body.call).filter((e) => e.from === envelope.from)
        if (parts.length < body.parts) return
        const at = Math.min(...parts.map((e) => e.sentAt))
        const view: VoicemailView = {
          call: body.call,
          from: envelope.from,
          at,
          seconds: body.seconds,
          parts: body.parts,
          received: parts.length,
          complete: true
        }
        this.#c.emit('voicemail.received', view)
        return
      }
      case 'group':
        this.#c.emit('group.changed', { conv: envelope.conv, action: envelope.body.action, from: envelope.from })
        return
      case 'sync': {
        // Another device of this user: its contact states become this one's.
        if (envelope.from !== me) return
        const states = new Set(['requested', 'incoming', 'accepted', 'declined', 'blocked', 'removed'])
        // Each state carries its version: an older one (a replay, a change that crossed a newer one) changes nothing.
        const entries =
          (envelope.body.contacts as Array<{ name?: unknown; state?: unknown; lamport?: unknown; device?: unknown }> | undefined) ?? []
        for (const c of entries) {
          if (typeof c.name !== 'string' || typeof c.state !== 'string' || !states.has(c.state) || c.name === me) continue
          const version = {
            lamport: Number.isSafeInteger(c.lamport) ? (c.lamport as number) : 0,
            device: typeof c.device === 'string' ? c.device : ''
          }
          if (this.#c.store.setContact(c.name, c.state as ContactState, null, version))
            this.#c.emit('contacts.changed', this.#c.store.contact(c.name) ?? { name: c.name })
        }
        return
      }
      case 'receipt': {
        // The other side got (or read) lines this user wrote.
        const state = envelope.body.state === 'read' ? 'read' : 'delivered'
        for (const id of (envelope.body.ids as string[] | undefined) ?? []) {
          if (this.#c.store.message(id)?.from === me && this.#c.store.raiseState(id, state)) this.#c.emit('message.state', { id, state })
        }
        return
      }
      default:
        this.#c.emit(`message.${envelope.kind}`, { id: envelope.id, from: envelope.from, body: envelope.body })
    }
  }
}

/** The id of an envelope in canonical JSON, without checking it (to tell a new arrival from a known one). */
function envelopeIdOf(frame: Uint8Array): string | undefined {
  try {
    const id = (JSON.parse(decoder.decode(frame)) as { id?: unknown }).id
    return typeof id === 'string' ? id : undefined
  } catch {
    return undefined
  }
}
