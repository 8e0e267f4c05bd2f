import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import type { CredentialVerifier, KeyPair } from '@parley/crypto'
import { assertNever, LIMITS } from '@parley/protocol'
import type { HelloService, VerifiedPeer } from '../hello/hello.ts'
import { MailboxError, type MailboxRefusal } from './errors.ts'
import { decodeItem, itemKey, type MailboxItem, type MailboxItemRef, signItem, verifyItem } from './item.ts'
import { TokenBuckets } from './rate.ts'
import { type MailboxLimits, MailboxStore, mailboxLimits } from './store.ts'
import {
  decodeMailboxAnswer,
  decodeMailboxRequest,
  encodeMailboxAnswer,
  encodeMailboxRequest,
  type MailboxAnswer,
  type MailboxPlace,
  type MailboxRequest,
  mailboxRefusal,
  PLACE_ADDRS_MAX
} from './wire.ts'

/** The offline mailbox on the overlay; frames in `wire.ts`, the item in `item.ts`. */
export const MAILBOX_PROTOCOL = '/parley/mailbox/1.0.0'
/**
 * A supernode's word to a recipient device connected to it: an item waits
 * here (one frame, `{"op":"waiting"}`). Every node handles it; the device
 * then collects at once instead of at its next round.
 */
export const MAILBOX_WAITING_PROTOCOL = '/parley/mailbox/waiting/1.0.0'
const WAITING_FRAME = new TextEncoder().encode(JSON.stringify({ op: 'waiting' }))

export interface MailboxComponents {
  libp2p: Libp2p
  hello: HelloService
  verifier: CredentialVerifier
  /** This device's key: it signs the items this device sends. */
  device: KeyPair
  /** This device's current credential; undefined while logged out. */
  credential: () => string | undefined
  /**
   * The supernodes that keep a user's mailbox as this node sees them: the
   * same as keep the user's records (`RecordsService.closestSupernodes`),
   * this node included when it serves and is among them.
   */
  closestSupernodes: (name: string, options: { signal?: AbortSignal }) => Promise<PeerId[]>
  /** The replicas' worth of these supernodes closest to a user's key, by the records' metric (`RecordsService.nearestSupernodes`). */
  nearestSupernodes: (name: string, peers: Iterable<PeerId>) => PeerId[]
}

export interface MailboxInit {
  /** Keep mailboxes for others from the start (supernodes; the node switches it with `setServing`). Default: false. */
  serve?: boolean
  /**
   * The SQLite file a supernode keeps items in (`<profile>/mailbox.sqlite`).
   * Default: ':memory:', which loses every item when the node stops or
   * steps back from the supernode role: only for tests.
   */
  path?: string
  /** Lower quotas and rates than LIMITS.mailbox (tests, small supernodes); the wire's sizes are the network's and stay. */
  limits?: Partial<MailboxLimits>
}

/** What the sender gives to make an item; the rest comes from this device. */
export interface NewMailboxItem {
  id: string
  /** The recipient user and device. */
  to: string
  device: string
  sealed: Uint8Array
  /** Default: now. */
  createdAt?: number
  /** How long the item waits for its recipient. Default (and at most): LIMITS.mailbox.itemMaxTtlMs. */
  ttlMs?: number
}

/** A supernode's refusal (or silence), or an item a client dropped, with the reason code. */
export interface MailboxRefused {
  supernode: string
  code: MailboxRefusal
  message: string
  retryAfterMs?: number
}

export interface DepositResult {
  /** How many of the recipient's supernodes keep the item now, and which. */
  stored: number
  supernodes: string[]
  refused: MailboxRefused[]
}

export interface CollectResult {
  /** This device's items, each once (however many supernodes held it), oldest first. */
  items: MailboxItem[]
  /** Supernodes asked, and how many answered. */
  asked: number
  answered: number
  /** Supernodes that refused or could not be reached. */
  failed: MailboxRefused[]
  /** Items a supernode handed over that did not check out (forged, expired, for someone else): ignored. */
  dropped: MailboxRefused[]
}

export interface RemoveResult {
  /** Items the supernodes deleted (an item held by three counts three times). */
  deleted: number
  /** Supernodes that confirmed the deletion (each leaves tombstones). */
  supernodes: string[]
  failed: MailboxRefused[]
}

/** A rate-limited page is asked again when the wait is this short or shorter. */
const RETRY_RATE_LIMITED_MS = 2_000
const RATE_LIMITED_RETRIES = 5
/** Supernodes a collect remembers, to delete on them too. */
const HOLDERS_KEPT = 16
/** Linked supernodes a client asks where a user's mailbox is. */
const PLACES_ASKED = 2
/** How long a client keeps where a user's mailbox is (a burst of messages asks once), and for how many users. */
const PLACES_KEPT_MS = 30_000
const PLACES_KEPT = 256

/**
 * The offline mailbox (issue 4). Every node sends (`deposit`), collects its
 * own items (`collect`) and deletes them once stored locally (`remove`); a
 * supernode also keeps the items of the users it is closest to
 * (`setServing(true)`), in a MailboxStore.
 *
 * A supernode takes an item only from its sender device (the hello-verified
 * peer of the connection is the item's `fromDevice`, of user `from`), after
 * checking its signature, the sender's credential and its times; it hands
 * items only to the recipient device and deletes only at its request. It
 * never sees plaintext: the payload is sealed to the recipient device.
 */
export class MailboxService extends EventTarget {
  readonly #c: MailboxComponents
  readonly #init: MailboxInit
  readonly #limits: MailboxLimits
  readonly #puts: TokenBuckets
  readonly #requests: TokenBuckets
  /** Supernodes the last collect fetched from: `remove` deletes there as well as on the closest. */
  #holders = new Map<string, PeerId>()
  /** Where users' mailboxes are, as linked supernodes named them lately (clients only). */
  readonly #places = new Map<string, { peers: PeerId[]; until: number }>()
  #store: MailboxStore | undefined
  #serving = false
  #sweep: ReturnType<typeof setInterval> | undefined
  /** Recipient devices told lately that items wait (supernodes): whether more came since, and the end of the gap. */
  readonly #told = new Map<string, { again: boolean; timer?: ReturnType<typeof setTimeout> }>()

  constructor(components: MailboxComponents, init: MailboxInit = {}) {
    super()
    this.#c = components
    this.#init = init
    this.#limits = mailboxLimits(init.limits)
    this.#puts = new TokenBuckets(this.#limits.putsPerMinute, this.#limits.putBurst)
    this.#requests = new TokenBuckets(this.#limits.requestsPerMinute, this.#limits.requestBurst)
  }

  /** The items this supernode keeps; undefined while it does not serve. */
  get store(): MailboxStore | undefined {
    return this.#store
  }

  get serving(): boolean {
    return this.#serving
  }

  /** Listens for supernodes' words that items wait (event `waiting`), and serves when asked to. */
  async start(): Promise<void> {
    await this.#c.libp2p.handle(MAILBOX_WAITING_PROTOCOL, this.#onWaiting, { runOnLimitedConnection: true })
    if (this.#init.serve === true) await this.setServing(true)
  }

  /** Stops serving and closes the store (after committing what is pending); safe twice. */
  async stop(): Promise<void> {
    await this.setServing(false)
    await this.#c.libp2p.unhandle(MAILBOX_WAITING_PROTOCOL).catch(() => {})
    this.#holders.clear()
    this.#places.clear()
  }

  /** Starts or stops keeping mailboxes for others (the supernode role). */
  async setServing(serving: boolean): Promise<void> {
    if (serving === this.#serving) return
    this.#serving = serving
    if (serving) {
      this.#store = new MailboxStore(this.#init.path ?? ':memory:', this.#limits)
      await this.#c.libp2p.handle(MAILBOX_PROTOCOL, this.#onStream, { runOnLimitedConnection: true })
      this.#sweep = setInterval(() => {
        try {
          this.#store?.sweep()
        } catch {
          // A closed or failing store: the next sweep tries again.
        }
        this.#puts.prune()
        this.#requests.prune()
      }, this.#limits.sweepEveryMs)
      this.#sweep.unref?.()
      return
    }
    await this.#c.libp2p.unhandle(MAILBOX_PROTOCOL).catch(() => {})
    clearInterval(this.#sweep)
    this.#sweep = undefined
    for (const told of this.#told.values()) clearTimeout(told.timer)
    this.#told.clear()
    const store = this.#store
    this.#store = undefined
    this.#puts.clear()
    this.#requests.clear()
    await store?.close()
  }

  /** Makes and signs an item from this device (its credential and key). Throws MailboxError. */
  item(args: NewMailboxItem): MailboxItem {
    const credential = this.#c.credential()
    if (credential === undefined) throw new MailboxError('NO_CREDENTIAL', 'this device is not logged in')
    const createdAt = args.createdAt ?? Date.now()
    const ttlMs = Math.min(args.ttlMs ?? this.#limits.itemMaxTtlMs, LIMITS.mailbox.itemMaxTtlMs)
    return signItem(
      { id: args.id, to: args.to, device: args.device, credential, createdAt, expiresAt: createdAt + ttlMs, sealed: args.sealed },
      this.#c.device
    )
  }

  /**
   * Deposits an item on the supernodes closest to its recipient (in parallel);
   * resolves with those that stored it and the refusals of the others.
   */
  async deposit(item: MailboxItem, options: { signal?: AbortSignal } = {}): Promise<DepositResult> {
    const targets = await this.#placesFor(item.to, options)
    const supernodes: string[] = []
    const refused: MailboxRefused[] = []
    await Promise.all(
      targets.map(async (peer) => {
        const answer = await this.#ask(peer, { op: 'put', item: item.bytes }, options)
        if (answer.ok) supernodes.push(peer.toString())
        else refused.push(refusedBy(peer, answer))
      })
    )
    this.#forgetPlacesIfUnreachable(item.to, refused)
    return { stored: supernodes.length, supernodes, refused }
  }

  /**
   * Fetches this device's items from the supernodes closest to its user
   * (`name`, this device's user), checks every one (signature, the sender's
   * credential, addressed to this user and device, not expired) and returns
   * each once. Items stay on the supernodes until `remove`.
   */
  async collect(name: string, options: { signal?: AbortSignal } = {}): Promise<CollectResult> {
    const self = this.#c.libp2p.peerId.toString()
    const targets = await this.#placesFor(name, options)
    const found = new Map<string, MailboxItem>()
    const failed: MailboxRefused[] = []
    const dropped: MailboxRefused[] = []
    const holders = new Map<string, PeerId>()
    await Promise.all(
      targets.map(async (peer) => {
        const fetched = await this.#fetchAll(peer, options)
        if (!Array.isArray(fetched)) {
          failed.push(refusedBy(peer, fetched))
          return
        }
        holders.set(peer.toString(), peer)
        for (const bytes of fetched) {
          try {
            // Never trust the supernode: every item is checked here again.
            const item = verifyItem(decodeItem(bytes), this.#c.verifier, { recipient: { name, device: self } })
            if (!found.has(itemKey(item))) found.set(itemKey(item), item)
          } catch (err) {
            dropped.push(refusedBy(peer, mailboxRefusal(err)))
          }
        }
      })
    )
    this.#holders = new Map([...holders].slice(0, HOLDERS_KEPT))
    this.#forgetPlacesIfUnreachable(name, failed)
    const items = [...found.values()].sort((a, b) => a.createdAt - b.createdAt || (itemKey(a) < itemKey(b) ? -1 : 1))
    return { items, asked: targets.length, answered: holders.size, failed, dropped }
  }

  /**
   * Deletes items of this device (as `collect` returned them, or their refs) on
   * the supernodes closest to its user and on those the last collect fetched
   * from; each leaves tombstones, so the same items are never stored again.
   */
  async remove(items: Iterable<MailboxItemRef>, options: { signal?: AbortSignal } = {}): Promise<RemoveResult> {
    const refs = [...items].map(({ fromDevice, id, expiresAt }) => ({ fromDevice, id, expiresAt }))
    const result: RemoveResult = { deleted: 0, supernodes: [], failed: [] }
    if (refs.length === 0) return result
    const targets = new Map(this.#holders)
    for (const peer of await this.#placesFor(this.#self().name, options)) targets.set(peer.toString(), peer)
    await Promise.all(
      [...targets.values()].map(async (peer) => {
        let deleted = 0
        for (let i = 0; i < refs.length; i += LIMITS.mailbox.deleteMaxItems) {
          const answer = await this.#ask(peer, { op: 'delete', items: refs.slice(i, i + LIMITS.mailbox.deleteMaxItems) }, options)
          if (!answer.ok || answer.op !== 'delete') {
            result.failed.push(refusedBy(peer, answer.ok ? unexpected() : answer))
            return
          }
          deleted += answer.deleted
        }
        result.deleted += deleted
        result.supernodes.push(peer.toString())
      })
    )
    return result
  }

  /**
   * The supernodes that keep a user's mailbox. A supernode knows the others
   * and answers from its own view. A client knows few supernodes (its links),
   * so it asks two of its linked supernodes, and keeps the closest of all they
   * name by the same metric (one supernode alone cannot steer it away from
   * the supernodes the other names); when none answers, its own view.
   */
  async #placesFor(name: string, options: { signal?: AbortSignal }): Promise<PeerId[]> {
    if (this.#serving) return await this.#c.closestSupernodes(name, options)
    const key = name.toLowerCase()
    const kept = this.#places.get(key)
    if (kept !== undefined && kept.until > Date.now()) return kept.peers
    const named = new Map<string, PeerId>()
    const linked = (await this.#linkedSupernodes()).slice(0, PLACES_ASKED)
    await Promise.all(
      linked.map(async (peer) => {
        const answer = await this.#ask(peer, { op: 'places', name }, options)
        if (!answer.ok || answer.op !== 'places') return
        for (const place of answer.supernodes) {
          const id = peerIdFromString(place.peerId)
          named.set(place.peerId, id)
          const addrs = place.addrs.flatMap((a) => {
            try {
              return [multiaddr(a)]
            } catch {
              return []
            }
          })
          if (addrs.length > 0 && !id.equals(this.#c.libp2p.peerId))
            await this.#c.libp2p.peerStore.merge(id, { multiaddrs: addrs }).catch(() => {})
        }
      })
    )
    if (named.size === 0) return await this.#c.closestSupernodes(name, options)
    const peers = this.#c.nearestSupernodes(name, named.values())
    this.#places.delete(key)
    this.#places.set(key, { peers, until: Date.now() + PLACES_KEPT_MS })
    if (this.#places.size > PLACES_KEPT) this.#places.delete(this.#places.keys().next().value as string)
    return peers
  }

  /** A supernode that did not answer: ask again where the user's mailbox is next time. */
  #forgetPlacesIfUnreachable(name: string, refused: MailboxRefused[]): void {
    if (refused.some((r) => r.code === 'UNREACHABLE')) this.#places.delete(name.toLowerCase())
  }

  /** Supernodes this node has a connection to (identify said they serve the mailbox). */
  async #linkedSupernodes(): Promise<PeerId[]> {
    const linked = new Map<string, PeerId>()
    for (const connection of this.#c.libp2p.getConnections()) {
      const id = connection.remotePeer.toString()
      if (linked.has(id)) continue
      const peer = await this.#c.libp2p.peerStore.get(connection.remotePeer).catch(() => undefined)
      if (peer?.protocols.includes(MAILBOX_PROTOCOL) === true) linked.set(id, connection.remotePeer)
    }
    return [...linked.values()]
  }

  /** Every page of this device's items on one supernode, or the refusal that stopped it. */
  async #fetchAll(peer: PeerId, options: { signal?: AbortSignal }): Promise<Uint8Array[] | (MailboxAnswer & { ok: false })> {
    const items: Uint8Array[] = []
    let after = 0
    let retries = 0
    for (let page = 0; page < this.#limits.collectMaxPages; page++) {
      const answer = await this.#ask(peer, { op: 'fetch', after }, options)
      if (
        !answer.ok &&
        answer.code === 'RATE_LIMITED' &&
        answer.retryAfterMs <= RETRY_RATE_LIMITED_MS &&
        retries++ < RATE_LIMITED_RETRIES
      ) {
        await sleep(answer.retryAfterMs, options.signal)
        page--
        continue
      }
      if (!answer.ok) return answer
      if (answer.op !== 'fetch') return unexpected()
      items.push(...answer.items)
      // A supernode that does not move on is not asked again.
      if (!answer.more || answer.next <= after) break
      after = answer.next
    }
    return items
  }

  /** One request to one supernode; its failures become refusals (UNREACHABLE when it did not answer). */
  async #ask(peer: PeerId, request: MailboxRequest, options: { signal?: AbortSignal }): Promise<MailboxAnswer> {
    const signal = AbortSignal.any([
      ...(options.signal === undefined ? [] : [options.signal]),
      AbortSignal.timeout(this.#limits.requestTimeoutMs)
    ])
    try {
      if (peer.equals(this.#c.libp2p.peerId)) return await this.#handle(encodeMailboxRequest(request), this.#self())
      return await this.#request(peer, request, signal)
    } catch (err) {
      if (options.signal?.aborted === true) throw err
      if (err instanceof MailboxError) return mailboxRefusal(err)
      return { ok: false, code: 'UNREACHABLE', message: `no answer: ${(err as Error).message}`, retryAfterMs: 0 }
    }
  }

  async #request(peer: PeerId, request: MailboxRequest, signal: AbortSignal): Promise<MailboxAnswer> {
    const connection = await this.#c.libp2p.dial(peer, { signal })
    const hello = await this.#c.hello.greet(connection)
    if (!hello.ok) throw new MailboxError('NO_CREDENTIAL', `hello with ${peer.toString()} failed: ${hello.reason}`)
    const stream = await connection.newStream(MAILBOX_PROTOCOL, { signal, runOnLimitedConnection: true })
    const lp = lpStream(stream, { maxDataLength: LIMITS.mailbox.messageMaxBytes })
    try {
      await lp.write(encodeMailboxRequest(request), { signal })
      const answer = decodeMailboxAnswer((await lp.read({ signal })).subarray())
      await stream.close({ signal }).catch(() => {})
      return answer
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    }
  }

  /** This device as a supernode sees it (for requests to itself). */
  #self(): VerifiedPeer {
    const credential = this.#c.credential()
    const verdict = credential === undefined ? undefined : this.#c.verifier.verify(credential, { deviceKey: this.#c.device.publicKey })
    if (verdict?.ok !== true) throw new MailboxError('NO_CREDENTIAL', 'this device has no valid credential')
    const c = verdict.credential
    return { peerId: this.#c.libp2p.peerId.toString(), name: c.name, expiresAt: c.expiresAt, serial: c.serial }
  }

  /**
   * Serves one request on a stream: one frame in, one answer out. A frame
   * that does not decode gets a refusal; a stream that breaks is aborted
   * alone (the connection and the process go on).
   */
  readonly #onStream = async (stream: Stream, connection: Connection): Promise<void> => {
    const signal = AbortSignal.timeout(this.#limits.requestTimeoutMs)
    const lp = lpStream(stream, { maxDataLength: LIMITS.mailbox.messageMaxBytes })
    try {
      let answer: MailboxAnswer
      try {
        const frame = (await lp.read({ signal })).subarray()
        const peer = this.#c.hello.verified(connection.remotePeer)
        answer =
          peer === undefined
            ? mailboxRefusal(new MailboxError('NO_CREDENTIAL', 'say hello with a valid credential first'))
            : await this.#handle(frame, peer)
      } catch (err) {
        const name = (err as Error | undefined)?.name
        if (name !== 'InvalidDataLengthError' && name !== 'InvalidDataLengthLengthError') throw err
        answer = mailboxRefusal(new MailboxError('TOO_LARGE', `a frame has at most ${LIMITS.mailbox.messageMaxBytes} bytes`))
      }
      await lp.write(encodeMailboxAnswer(answer), { signal })
      await stream.close({ signal })
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }

  /** The supernode's side of a request, from a verified peer; never throws: failures are refusals. */
  async #handle(frame: Uint8Array, peer: VerifiedPeer): Promise<MailboxAnswer> {
    try {
      const store = this.#store
      if (store === undefined) throw new MailboxError('UNAVAILABLE', 'this node keeps no mailboxes now')
      const now = Date.now()
      const request = decodeMailboxRequest(frame)
      switch (request.op) {
        case 'put': {
          // Per sender user: its devices share one bucket.
          this.#admit(this.#puts, peer.name.toLowerCase(), now)
          const item = decodeItem(request.item)
          if (item.fromDevice !== peer.peerId || item.from.toLowerCase() !== peer.name.toLowerCase())
            throw new MailboxError('NOT_SENDER', 'only the sender device deposits its items')
          verifyItem(item, this.#c.verifier, { now })
          const outcome = await store.put(item, now)
          if (outcome === 'stored') this.#tell(item.device, item.to)
          return { ok: true, op: 'put', outcome }
        }
        case 'fetch': {
          this.#admit(this.#requests, peer.peerId, now)
          // Only the recipient device's own items, whoever asks.
          return { ok: true, op: 'fetch', ...store.fetch(peer.peerId, request.after, now) }
        }
        case 'delete': {
          this.#admit(this.#requests, peer.peerId, now)
          return { ok: true, op: 'delete', deleted: store.delete(peer.peerId, request.items, now) }
        }
        case 'places': {
          this.#admit(this.#requests, peer.peerId, now)
          // No signal of ours: the records' own deadline falls back on the supernodes this one knows.
          const supernodes = await this.#c.closestSupernodes(request.name, {})
          return { ok: true, op: 'places', supernodes: await Promise.all(supernodes.map(async (s) => await this.#place(s))) }
        }
        default:
          return assertNever(request)
      }
    } catch (err) {
      return mailboxRefusal(err)
    }
  }

  /**
   * Tells a recipient device that is connected here, and said hello as its
   * user, that an item waits for it: at once, then at most once per
   * LIMITS.mailbox.waitingGapMs (one more word at the end of the gap when
   * items kept coming). A device not connected is not dialled: it collects
   * when it comes online.
   */
  #tell(device: string, user: string): void {
    const told = this.#told.get(device)
    if (told !== undefined) {
      told.again = true
      return
    }
    if (this.#told.size >= LIMITS.mailbox.waitingTracked) return
    const state: { again: boolean; timer?: ReturnType<typeof setTimeout> } = { again: false }
    this.#told.set(device, state)
    void this.#sendWaiting(device, user).finally(() => {
      if (this.#told.get(device) !== state) return
      state.timer = setTimeout(() => {
        this.#told.delete(device)
        if (state.again && this.#serving) this.#tell(device, user)
      }, LIMITS.mailbox.waitingGapMs)
      state.timer.unref?.()
    })
  }

  async #sendWaiting(device: string, user: string): Promise<void> {
    try {
      const peer = peerIdFromString(device)
      const connection = this.#c.libp2p.getConnections(peer).find((c) => c.status === 'open')
      if (connection === undefined || this.#c.hello.verified(peer)?.name.toLowerCase() !== user.toLowerCase()) return
      const signal = AbortSignal.timeout(this.#limits.requestTimeoutMs)
      const stream = await connection.newStream(MAILBOX_WAITING_PROTOCOL, { signal, runOnLimitedConnection: true })
      try {
        await lpStream(stream, { maxDataLength: LIMITS.mailbox.waitingMaxBytes }).write(WAITING_FRAME, { signal })
        await stream.close({ signal })
      } catch (err) {
        stream.abort(err instanceof Error ? err : new Error(String(err)))
      }
    } catch {
      // Not told: the device's own collect finds the item.
    }
  }

  /** A supernode's word that items wait: one frame checked, then the event (only from a peer that said hello). */
  readonly #onWaiting = async (stream: Stream, connection: Connection): Promise<void> => {
    const signal = AbortSignal.timeout(this.#limits.requestTimeoutMs)
    try {
      const frame = (await lpStream(stream, { maxDataLength: LIMITS.mailbox.waitingMaxBytes }).read({ signal })).subarray()
      let word: unknown
      try {
        word = JSON.parse(new TextDecoder().decode(frame))
      } catch {
        word = undefined
      }
      if ((word as { op?: unknown } | undefined)?.op !== 'waiting') throw new MailboxError('MALFORMED', 'expected {"op":"waiting"}')
      await stream.close({ signal })
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      return
    }
    if (this.#c.hello.verified(connection.remotePeer) === undefined) return
    this.dispatchEvent(new CustomEvent('waiting', { detail: connection.remotePeer.toString() }))
  }

  /** A supernode and the addresses this node knows for it. */
  async #place(peer: PeerId): Promise<MailboxPlace> {
    const addrs = peer.equals(this.#c.libp2p.peerId)
      ? this.#c.libp2p.getMultiaddrs()
      : ((await this.#c.libp2p.peerStore.get(peer).catch(() => undefined))?.addresses.map((a) => a.multiaddr) ?? [])
    return { peerId: peer.toString(), addrs: addrs.map((a) => a.toString()).slice(0, PLACE_ADDRS_MAX) }
  }

  #admit(buckets: TokenBuckets, key: string, now: number): void {
    const wait = buckets.take(key, now)
    if (wait > 0) throw new MailboxError('RATE_LIMITED', `too many requests: retry in ${wait} ms`, { retryAfterMs: wait })
  }
}

function refusedBy(peer: PeerId, answer: MailboxAnswer & { ok: false }): MailboxRefused {
  return {
    supernode: peer.toString(),
    code: answer.code,
    message: answer.message,
    ...(answer.retryAfterMs > 0 ? { retryAfterMs: answer.retryAfterMs } : {})
  }
}

function unexpected(): MailboxAnswer & { ok: false } {
  return { ok: false, code: 'MALFORMED', message: 'the supernode answered another request', retryAfterMs: 0 }
}

async function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer)
        reject(signal.reason)
      },
      { once: true }
    )
  })
}
