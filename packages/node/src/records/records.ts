import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import type { CredentialVerifier, KeyPair } from '@parley/crypto'
import { sha256 } from '@parley/crypto'
import { LIMITS } from '@parley/protocol'
import type { HelloService } from '../hello/hello.ts'
import type { OverlayLibp2p } from '../overlay/libp2p.ts'
import { type CheckedRecord, checkRecord, type Presence, RecordError, type SignedRecord, signRecord, userKey } from './record.ts'
import { RecordStore } from './store.ts'

/**
 * The directory on the overlay: devices publish signed user records to the
 * supernodes closest (in the DHT's XOR metric) to the user's key; anyone asks
 * those supernodes and checks every record itself. No central server is asked.
 *
 * A client does not walk the DHT: it asks the supernodes it is linked to,
 * which know the other supernodes (`lookup`, `publish`); a supernode that
 * relayed a device's record puts it again on the next closest supernode
 * when one holding it goes away, and a device publishes again through
 * another supernode when that one goes away.
 *
 * Wire (length-prefixed UTF-8 JSON, at most LIMITS.overlay.recordsMessageMaxBytes):
 * `{"op":"put","record":{record,sig}}` -> `{"ok":true,"outcome":"stored"|"unchanged"}` or
 * `{"refused":{"code","message"}}`; `{"op":"get","name":"..."}` -> `{"records":[{record,sig}, ...]}`;
 * `{"op":"lookup","name":"..."}` -> `{"records":[...],"asked","answered","hops"}` (the supernode finds them);
 * `{"op":"publish","record":{record,sig}}` -> `{"ok":true,"supernodes":[peer ids]}` (the supernode places it);
 * `{"op":"supernodes"}` -> `{"supernodes":[{"id","addrs"}, ...]}` (some it knows, for host caches).
 * Only peers whose hello checked out are answered.
 */
export const RECORDS_PROTOCOL = '/parley/records/1.0.0'

export interface RecordsComponents {
  libp2p: OverlayLibp2p
  hello: HelloService
  verifier: CredentialVerifier
  device: KeyPair
  credential: () => string | undefined
}

export interface RecordsInit {
  /** Keep records for others (supernodes). */
  serve: boolean
  /** How long a published record lives. Default: 30 minutes (republished before). */
  recordTtlMs?: number
}

export interface DeviceEntry {
  peerId: string
  presence: Presence
  addrs: string[]
  seq: number
  expiresAt: number
}

export interface WhoisResult {
  name: string
  devices: DeviceEntry[]
  /** Supernodes asked for the user's records, and how many answered. */
  asked: number
  answered: number
  /**
   * Requests made one after another: asking the replicas is one, each step of
   * a DHT walk one more, and a client asking through its supernode adds one.
   */
  hops: number
  ms: number
}

/** A supernode another one listed (`supernodes`), with its addresses. */
export interface ListedSupernode {
  peerId: string
  addrs: string[]
}

/** Supernodes one `supernodes` answer lists at most (supernodes ask for that many), and addresses per supernode. */
const SUPERNODES_LISTED = 100
const ADDRS_LISTED = 2
/** Supernodes a node asks for to grow its host cache. */
const HOST_CACHE_LISTED = 20
/** How often a supernode asks another (connected, at random) for its list, besides each one it meets. */
const LISTS_EVERY_MS = 10_000
/** A supernode that could not be dialled is left out of lookups and placements this long (or until it is seen again). */
const UNREACHABLE_MS = 60_000
/** How long a node that has just connected waits for identify to tell which peers are supernodes. */
const IDENTIFY_WAIT_MS = 2_000

interface Found {
  name: string
  records: CheckedRecord[]
  asked: number
  answered: number
  hops: number
}

/** A record this supernode placed for a device linked to it (or its own), and where. */
interface Placed {
  signed: SignedRecord
  name: string
  replicas: Set<string>
}

interface Request {
  op?: unknown
  record?: unknown
  name?: unknown
  count?: unknown
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export class RecordsService {
  readonly #c: RecordsComponents
  #init: RecordsInit
  readonly store = new RecordStore()
  /** Supernodes seen (identify, DHT walks): the local view that lets a lookup skip the walk. */
  readonly #known = new Map<string, PeerId>()
  /** Their listen addresses (from identify or another supernode's list), to list them in turn. */
  readonly #addrs = new Map<string, string[]>()
  /** Supernodes a dial to failed, and when. */
  readonly #unreachable = new Map<string, number>()
  /** Supernodes this supernode has asked for their list (once each). */
  readonly #listsAsked = new Set<string>()
  /** Connected peers whose identify has come in (a connection to any other has not finished it). */
  readonly #identified = new Set<string>()
  /** Records this supernode placed, by device: put again elsewhere when a replica goes away. */
  readonly #placed = new Map<string, Placed>()
  /** What this device last published, and the supernode it published through. */
  #published: { addrs: string[]; presence: Presence } | undefined
  #publishedThrough: string | undefined
  #republishing: Promise<void> | undefined
  #republishWhenLinked = false
  #running = false
  #seq = 0
  #sweep: ReturnType<typeof setInterval> | undefined
  #gossip: ReturnType<typeof setInterval> | undefined

  constructor(components: RecordsComponents, init: RecordsInit) {
    this.#c = components
    this.#init = init
  }

  async start(): Promise<void> {
    this.#running = true
    this.#c.libp2p.addEventListener('peer:identify', this.#onIdentify)
    this.#c.libp2p.addEventListener('peer:disconnect', this.#onDisconnect)
    if (this.#init.serve) await this.#startServing()
  }

  async stop(): Promise<void> {
    this.#running = false
    this.#c.libp2p.removeEventListener('peer:identify', this.#onIdentify)
    this.#c.libp2p.removeEventListener('peer:disconnect', this.#onDisconnect)
    this.#identified.clear()
    this.#listsAsked.clear()
    await this.#stopServing()
  }

  /** Keeps records for others, or stops (a node that changes role). */
  async setServing(serve: boolean): Promise<void> {
    this.#init = { ...this.#init, serve }
    if (serve) await this.#startServing()
    else await this.#stopServing()
  }

  async #startServing(): Promise<void> {
    if (this.#sweep !== undefined) return
    this.#sweep = setInterval(() => this.store.sweep(), 60_000)
    this.#sweep.unref?.()
    this.#gossip = setInterval(() => {
      const peers = this.#linkedSupernodes()
      if (peers.length > 0) void this.#learnFrom(peers[Math.floor(Math.random() * peers.length)] as PeerId)
    }, LISTS_EVERY_MS)
    this.#gossip.unref?.()
    await this.#c.libp2p.handle(
      RECORDS_PROTOCOL,
      async (stream, connection) => {
        await this.#serve(stream, connection).catch((err: unknown) => {
          stream.abort(err instanceof Error ? err : new Error(String(err)))
        })
      },
      { runOnLimitedConnection: true }
    )
  }

  async #stopServing(): Promise<void> {
    this.#placed.clear()
    if (this.#sweep === undefined) return
    clearInterval(this.#sweep)
    clearInterval(this.#gossip)
    this.#sweep = undefined
    this.#gossip = undefined
    await this.#c.libp2p.unhandle(RECORDS_PROTOCOL).catch(() => {})
  }

  /**
   * Publishes this device's record to the user's closest supernodes; resolves
   * with those that took it. A client hands it to a supernode it is linked to
   * (one request; that supernode places it), a supernode places it itself.
   */
  async publish(
    args: { addrs: string[]; presence: Presence },
    options: { signal?: AbortSignal } = {}
  ): Promise<{ stored: number; supernodes: string[] }> {
    const credential = this.#c.credential()
    if (credential === undefined) throw new RecordError('BAD_CREDENTIAL', 'not logged in: nothing to publish')
    const verdict = this.#c.verifier.verify(credential)
    if (!verdict.ok) throw new RecordError('BAD_CREDENTIAL', `own credential: ${verdict.message}`)
    const now = Date.now()
    this.#seq = Math.max(now, this.#seq + 1)
    const expiresAt = Math.min(now + (this.#init.recordTtlMs ?? 30 * 60_000), verdict.credential.expiresAt)
    const signed = signRecord({ v: 1, credential, addrs: args.addrs, presence: args.presence, seq: this.#seq, expiresAt }, this.#c.device)
    const name = verdict.credential.name
    this.#published = args
    if (!this.#init.serve) {
      const relayed = await this.#publishThroughSupernode(signed, options)
      if (relayed !== undefined) return relayed
    }
    const took = await this.#placeNearest(signed, name, await this.#targets(name, options), options)
    if (this.#init.serve) this.#placed.set(this.#c.libp2p.peerId.toString(), { signed, name, replicas: new Set(took) })
    return { stored: took.length, supernodes: took }
  }

  /**
   * Withdraws this device from the directory (at sign-out, while its
   * credential still signs): a newer record saying 'offline', with no
   * addresses, replaces the last one on the supernodes, and lookups leave
   * the device out. Nothing is published again after it.
   */
  async withdraw(options: { signal?: AbortSignal } = {}): Promise<{ stored: number; supernodes: string[] }> {
    try {
      return await this.publish({ addrs: [], presence: 'offline' }, options)
    } finally {
      this.#published = undefined
    }
  }

  async #publishThroughSupernode(
    signed: SignedRecord,
    options: { signal?: AbortSignal }
  ): Promise<{ stored: number; supernodes: string[] } | undefined> {
    for (const peer of await this.#supernodesToAsk(options)) {
      try {
        const answer = await this.#request(peer, { op: 'publish', record: signed }, options)
        const supernodes = Array.isArray(answer.supernodes) ? answer.supernodes.filter((s) => typeof s === 'string') : []
        if (answer.ok !== true || supernodes.length === 0) continue
        this.#publishedThrough = peer.toString()
        return { stored: supernodes.length, supernodes }
      } catch (err) {
        if (options.signal?.aborted === true) throw err
      }
    }
    return undefined
  }

  /**
   * Puts a record on these supernodes; a supernode that cannot be reached is
   * forgotten, and the next closest known stands in for it.
   */
  async #placeNearest(signed: SignedRecord, name: string, targets: PeerId[], options: { signal?: AbortSignal }): Promise<string[]> {
    let took = await this.#place(signed, name, targets, options)
    for (let round = 0; round < 2 && took.length < LIMITS.overlay.recordReplicas; round++) {
      const next = this.#nearest(name, this.#known.values())
      if (next.every((p) => targets.some((t) => t.equals(p)))) break
      targets = next
      took = await this.#place(signed, name, targets, options)
    }
    return took
  }

  /** Puts a record on these supernodes (this one included); resolves with those that took it. */
  async #place(signed: SignedRecord, name: string, targets: PeerId[], options: { signal?: AbortSignal }): Promise<string[]> {
    const took: string[] = []
    await Promise.all(
      targets.map(async (peer) => {
        try {
          if (peer.equals(this.#c.libp2p.peerId)) {
            const outcome = this.store.put(checkRecord(signed, this.#c.verifier, { name }))
            if (outcome === 'stored' || outcome === 'unchanged') took.push(peer.toString())
            return
          }
          const answer = await this.#request(peer, { op: 'put', record: signed }, options)
          if (answer.ok === true) took.push(peer.toString())
        } catch {
          // Another replica may take it; the caller sees how many did.
        }
      })
    )
    return took
  }

  /**
   * Finds a user's online devices from the overlay alone. A client asks a
   * supernode it is linked to (a second one when the first finds nothing, so
   * that one supernode cannot hide a user alone) and checks every record
   * itself. A supernode, or a client whose supernodes do not answer, asks the
   * closest of the supernodes it knows (no DHT walk: exact whenever it knows
   * them all, as in a small network); when that finds no device, the closest
   * supernodes a DHT walk finds.
   */
  async whois(name: string, options: { signal?: AbortSignal } = {}): Promise<WhoisResult> {
    const started = performance.now()
    if (!this.#init.serve) {
      const relayed = await this.#whoisThroughSupernodes(name, options)
      if (relayed !== undefined) return { ...relayed, ms: elapsed(started) }
    }
    const found = await this.#find(name, options)
    return {
      name: found.name,
      devices: devicesOf(found.records),
      asked: found.asked,
      answered: found.answered,
      hops: found.hops,
      ms: elapsed(started)
    }
  }

  async #whoisThroughSupernodes(name: string, options: { signal?: AbortSignal }): Promise<Omit<WhoisResult, 'ms'> | undefined> {
    let nothing: Omit<WhoisResult, 'ms'> | undefined
    let empty = 0
    for (const peer of await this.#supernodesToAsk(options)) {
      let answer: Record<string, unknown>
      try {
        answer = await this.#request(peer, { op: 'lookup', name }, options)
      } catch (err) {
        if (options.signal?.aborted === true) throw err
        continue
      }
      if (!Array.isArray(answer.records)) continue
      const records = this.#checkAll(name, answer.records)
      const result = {
        name: records[0]?.name ?? name,
        devices: devicesOf(records),
        asked: count(answer.asked),
        answered: count(answer.answered),
        hops: 1 + count(answer.hops)
      }
      if (result.devices.length > 0) return result
      nothing = result
      if (++empty >= 2) return nothing
    }
    return undefined
  }

  /** The user's newest records from the closest known supernodes, else from the closest a DHT walk finds. */
  async #find(name: string, options: { signal?: AbortSignal }): Promise<Found> {
    let hops = 0
    // The supernodes known (and this one when it serves) first, even fewer than the replicas: a small network has no more.
    for (let attempt = 0; attempt < 2 && (this.#known.size > 0 || this.#init.serve); attempt++) {
      const quick = await this.#ask(name, this.#nearest(name, this.#known.values()), options)
      hops++
      if (quick.records.length > 0) return { ...quick, hops }
      // Supernodes that could not be reached are forgotten: once more with the next closest.
      if (quick.answered === quick.asked) break
    }
    const walked = await this.#closestSupernodes(name, options)
    const found = await this.#ask(name, walked.peers, options)
    return { ...found, hops: hops + walked.hops + 1 }
  }

  async #ask(name: string, targets: PeerId[], options: { signal?: AbortSignal }): Promise<Omit<Found, 'hops'>> {
    let answered = 0
    const found: CheckedRecord[] = []
    await Promise.all(
      targets.map(async (peer) => {
        try {
          const records = peer.equals(this.#c.libp2p.peerId)
            ? this.store.get(name).map((r) => r.signed)
            : (((await this.#request(peer, { op: 'get', name }, options)).records as unknown[]) ?? [])
          answered++
          found.push(...this.#checkAll(name, Array.isArray(records) ? records : []))
        } catch {
          // An unreachable replica: the others answer.
        }
      })
    )
    const records = newestPerDevice(found)
    return { name: records[0]?.name ?? name, records, asked: targets.length, answered }
  }

  /** Never trust the supernode: every record is checked here again; forged or stale ones are ignored. */
  #checkAll(name: string, records: unknown[]): CheckedRecord[] {
    const checked: CheckedRecord[] = []
    for (const r of records) {
      try {
        checked.push(checkRecord(r, this.#c.verifier, { name }))
      } catch {
        // A forged or stale record from a bad supernode.
      }
    }
    return newestPerDevice(checked)
  }

  /**
   * The linked supernodes to ask. A node that has just connected may not know
   * yet which of its peers are supernodes (identify runs after the hello):
   * with none known, it waits for those identifies, up to IDENTIFY_WAIT_MS.
   */
  async #supernodesToAsk(options: { signal?: AbortSignal }): Promise<PeerId[]> {
    const linked = this.#linkedSupernodes()
    const libp2p = this.#c.libp2p
    const pending = new Set(libp2p.getConnections().map((c) => c.remotePeer.toString()))
    for (const id of this.#identified) pending.delete(id)
    if (linked.length > 0 || pending.size === 0) return linked
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        libp2p.removeEventListener('peer:identify', identified)
        options.signal?.removeEventListener('abort', done)
        resolve()
      }
      const identified = (event: CustomEvent<{ peerId: PeerId }>): void => {
        pending.delete(event.detail.peerId.toString())
        if (pending.size === 0 || this.#linkedSupernodes().length > 0) done()
      }
      const timer = setTimeout(done, IDENTIFY_WAIT_MS)
      libp2p.addEventListener('peer:identify', identified)
      options.signal?.addEventListener('abort', done)
    })
    return this.#linkedSupernodes()
  }

  /** Supernodes this node has a connection to (its links first: the oldest connections). */
  #linkedSupernodes(): PeerId[] {
    const linked = new Map<string, PeerId>()
    for (const c of this.#c.libp2p.getConnections()) {
      const id = c.remotePeer.toString()
      if (this.#known.has(id)) linked.set(id, c.remotePeer)
    }
    return [...linked.values()]
  }

  /** Supernodes a supernode this node is linked to knows, with addresses: for the host cache, without a DHT walk. */
  async supernodes(options: { signal?: AbortSignal } = {}): Promise<ListedSupernode[]> {
    for (const peer of await this.#supernodesToAsk(options)) {
      try {
        const answer = await this.#request(peer, { op: 'supernodes', count: HOST_CACHE_LISTED }, options)
        if (Array.isArray(answer.supernodes)) return this.#parseListed(answer.supernodes, HOST_CACHE_LISTED)
      } catch (err) {
        if (options.signal?.aborted === true) throw err
      }
    }
    return []
  }

  /**
   * The supernodes that keep a user's records, found as this node places
   * them: other things kept for the user go there too (the mailbox).
   */
  async closestSupernodes(name: string, options: { signal?: AbortSignal } = {}): Promise<PeerId[]> {
    return await this.#targets(name, options)
  }

  /** The replicas' worth of these supernodes closest to a user's key (this node among them when it serves). */
  nearestSupernodes(name: string, peers: Iterable<PeerId>): PeerId[] {
    return this.#nearest(name, peers)
  }

  /**
   * Where a record goes: on a supernode, the closest of the supernodes it
   * knows (no DHT walk: a walk costs a score of requests, and supernodes know
   * each other), else those a DHT walk finds.
   */
  async #targets(name: string, options: { signal?: AbortSignal }): Promise<PeerId[]> {
    // A client knows only a few supernodes (its links): it walks.
    if (this.#init.serve && this.#known.size >= LIMITS.overlay.recordReplicas) return this.#nearest(name, this.#known.values())
    return (await this.#closestSupernodes(name, options)).peers
  }

  /**
   * The supernodes (DHT servers, this one included when it serves) closest to
   * the user's key, by a DHT walk, and the walk's depth in requests.
   */
  async #closestSupernodes(name: string, options: { signal?: AbortSignal }): Promise<{ peers: PeerId[]; hops: number }> {
    const candidates = new Map<string, PeerId>()
    // The walk's depth: the routing table's peers are one request away, each peer they name one more.
    const depth = new Map<string, number>()
    let hops = 0
    // An empty routing table (no other DHT server known: a one-supernode network) has nobody to walk to.
    const table = (this.#c.libp2p.services.dht as unknown as { routingTable?: { size: number } }).routingTable
    if (table !== undefined && table.size === 0) return { peers: this.#nearest(name, this.#known.values()), hops }
    try {
      // Bounded on its own: in a small network (an empty routing table) libp2p's walk waits for peers until stopped.
      const walkSignal = AbortSignal.timeout(LIMITS.overlay.walkTimeoutMs)
      for await (const event of this.#c.libp2p.services.dht.getClosestPeers(userKey(name), {
        signal: options.signal === undefined ? walkSignal : AbortSignal.any([options.signal, walkSignal])
      })) {
        if (event.name === 'PEER_RESPONSE') {
          const d = depth.get(event.from.toString()) ?? 1
          hops = Math.max(hops, d)
          for (const peer of event.closer) if (!depth.has(peer.id.toString())) depth.set(peer.id.toString(), d + 1)
        } else if (event.name === 'FINAL_PEER') {
          candidates.set(event.peer.id.toString(), event.peer.id)
          this.#remember(event.peer.id)
        }
      }
    } catch (err) {
      // A walk that times out (a busy or partitioned network) falls back on the supernodes this node knows.
      if (options.signal?.aborted === true) throw err
    }
    return { peers: this.#nearest(name, candidates.size > 0 ? candidates.values() : this.#known.values()), hops }
  }

  /**
   * The replicas' worth of supernodes closest to the user's key, among these
   * (and this node when it serves), leaving out those recently unreachable.
   */
  #nearest(name: string, peers: Iterable<PeerId>): PeerId[] {
    const target = sha256(userKey(name))
    const all = new Map<string, PeerId>()
    const now = Date.now()
    for (const p of peers) if ((this.#unreachable.get(p.toString()) ?? 0) < now - UNREACHABLE_MS) all.set(p.toString(), p)
    if (this.#init.serve) all.set(this.#c.libp2p.peerId.toString(), this.#c.libp2p.peerId)
    const distance = (peer: PeerId): Uint8Array => sha256(peer.toMultihash().bytes).map((b, i) => b ^ (target[i] as number))
    return [...all.values()]
      .map((peer) => ({ peer, d: distance(peer) }))
      .sort((a, b) => compareBytes(a.d, b.d))
      .slice(0, LIMITS.overlay.recordReplicas)
      .map((x) => x.peer)
  }

  #remember(peer: PeerId, addrs: string[] = []): void {
    if (peer.equals(this.#c.libp2p.peerId)) return
    const id = peer.toString()
    this.#known.delete(id)
    this.#known.set(id, peer)
    if (addrs.length > 0) this.#addrs.set(id, addrs.slice(0, ADDRS_LISTED))
    // Bounded: the least recently seen go first.
    if (this.#known.size > LIMITS.overlay.knownSupernodes) {
      const oldest = this.#known.keys().next().value as string
      this.#known.delete(oldest)
      this.#addrs.delete(oldest)
      this.#unreachable.delete(oldest)
      this.#listsAsked.delete(oldest)
    }
  }

  #forget(id: string): void {
    this.#known.delete(id)
    this.#addrs.delete(id)
    this.#unreachable.delete(id)
    this.#listsAsked.delete(id)
  }

  /** Entries of a `supernodes` answer: well-formed, not this node, at most `max`. */
  #parseListed(entries: unknown[], max: number): ListedSupernode[] {
    const listed: ListedSupernode[] = []
    for (const entry of entries.slice(0, max) as Array<{ id?: unknown; addrs?: unknown }>) {
      if (typeof entry?.id !== 'string' || !Array.isArray(entry.addrs) || entry.id === this.#c.libp2p.peerId.toString()) continue
      const addrs = entry.addrs.filter((a): a is string => typeof a === 'string' && a.length <= 256).slice(0, ADDRS_LISTED)
      if (addrs.length > 0) listed.push({ peerId: entry.id, addrs })
    }
    return listed
  }

  readonly #onIdentify = (
    event: CustomEvent<{ peerId: PeerId; protocols: string[]; listenAddrs: Array<{ toString(): string }> }>
  ): void => {
    const { peerId, protocols, listenAddrs } = event.detail
    const id = peerId.toString()
    if (this.#c.libp2p.getConnections(peerId).length > 0) this.#identified.add(id)
    if (!protocols.includes(RECORDS_PROTOCOL)) {
      // A supernode that stepped back to the client role.
      this.#forget(id)
      return
    }
    this.#unreachable.delete(id)
    this.#remember(
      peerId,
      listenAddrs.map((a) => a.toString())
    )
    if (this.#republishWhenLinked) this.#republish()
    if (this.#init.serve && !this.#listsAsked.has(id)) {
      this.#listsAsked.add(id)
      void this.#learnFrom(peerId)
    }
  }

  /**
   * Supernodes learn each other from each other: a supernode asks each one it
   * meets, once, and one at random every LISTS_EVERY_MS, which supernodes it
   * knows, so that the closest it knows to a
   * key are the closest there are, without DHT walks. A listed supernode that
   * cannot be reached is left out at the first failed dial.
   */
  async #learnFrom(peer: PeerId): Promise<void> {
    try {
      const answer = await this.#request(peer, { op: 'supernodes', count: SUPERNODES_LISTED }, {})
      for (const listed of this.#parseListed(Array.isArray(answer.supernodes) ? answer.supernodes : [], SUPERNODES_LISTED)) {
        if (this.#known.has(listed.peerId)) continue
        try {
          const id = peerIdFromString(listed.peerId)
          if (!(await this.#c.libp2p.peerStore.has(id))) {
            await this.#c.libp2p.peerStore.merge(id, { multiaddrs: listed.addrs.map((a) => multiaddr(a)) })
          }
          this.#remember(id, listed.addrs)
        } catch {
          // Not a peer id or not an address: skipped.
        }
      }
    } catch {
      // A shortcut only: identify and walks teach the rest.
    }
  }

  /**
   * When a supernode goes away, the records this supernode placed on it are
   * put on the next closest, and a device that published through it
   * publishes again through another. (It stays known until a dial to it
   * fails: a closed connection is not a dead supernode.)
   */
  readonly #onDisconnect = (event: CustomEvent<PeerId>): void => {
    const id = event.detail.toString()
    this.#identified.delete(id)
    if (!this.#running) return
    // A device that left this supernode publishes again through another one.
    this.#placed.delete(id)
    for (const [device, placed] of this.#placed) {
      if (placed.replicas.has(id)) void this.#placeAgain(device, placed, id)
    }
    if (id === this.#publishedThrough) {
      this.#publishedThrough = undefined
      this.#republish()
    }
  }

  async #placeAgain(device: string, placed: Placed, gone: string): Promise<void> {
    placed.replicas.delete(gone)
    try {
      checkRecord(placed.signed, this.#c.verifier)
    } catch {
      // Expired meanwhile: the device publishes a new one.
      this.#placed.delete(device)
      return
    }
    // On the closest it knows now that do not hold it yet (no walk: many records move at once when a supernode leaves).
    const closest = this.#nearest(
      placed.name,
      [...this.#known.values()].filter((p) => p.toString() !== gone)
    )
    const took = await this.#place(
      placed.signed,
      placed.name,
      closest.filter((p) => !placed.replicas.has(p.toString())),
      {}
    )
    for (const id of took) placed.replicas.add(id)
  }

  /** Publishes the last record again (through another supernode), once at a time; waits for a link if there is none. */
  #republish(): void {
    this.#republishWhenLinked = false
    const args = this.#published
    if (args === undefined || !this.#running || this.#republishing !== undefined) return
    if (!this.#init.serve && this.#linkedSupernodes().length === 0) {
      this.#republishWhenLinked = true
      return
    }
    this.#republishing = this.publish(args)
      .then(() => {})
      .catch(() => {})
      .finally(() => {
        this.#republishing = undefined
      })
  }

  /** This supernode and up to `count` - 1 others it knows (a random sample; not the asker, not unreachable ones), with addresses. */
  #listSupernodes(asker: PeerId, count: number): Array<{ id: string; addrs: string[] }> {
    const own = this.#c.libp2p.getMultiaddrs().map((a) => a.toString())
    const listed = [{ id: this.#c.libp2p.peerId.toString(), addrs: own.slice(0, ADDRS_LISTED) }]
    const ids = [...this.#known.keys()]
    // A partial Fisher-Yates shuffle: each answer passes on a different sample of a long list.
    for (let i = 0; i < ids.length && listed.length < count; i++) {
      const j = i + Math.floor(Math.random() * (ids.length - i))
      const id = ids[j] as string
      ids[j] = ids[i] as string
      const addrs = this.#addrs.get(id)
      if (id === asker.toString() || addrs === undefined || this.#unreachable.has(id)) continue
      listed.push({ id, addrs })
    }
    return listed
  }

  async #request(peer: PeerId, body: Request, options: { signal?: AbortSignal }): Promise<Record<string, unknown>> {
    const signal = options.signal ?? AbortSignal.timeout(LIMITS.overlay.recordsTimeoutMs)
    let connection: Connection
    try {
      connection = await this.#c.libp2p.dial(peer, { signal })
    } catch (err) {
      // Unreachable: left out of lookups and placements for a while.
      if (!signal.aborted && this.#known.has(peer.toString())) this.#unreachable.set(peer.toString(), Date.now())
      throw err
    }
    this.#unreachable.delete(peer.toString())
    const hello = await this.#c.hello.greet(connection)
    if (!hello.ok) throw new RecordError('BAD_CREDENTIAL', `hello with ${peer.toString()} failed: ${hello.reason}`)
    const stream = await connection.newStream(RECORDS_PROTOCOL, { signal, runOnLimitedConnection: true })
    const lp = lpStream(stream, { maxDataLength: LIMITS.overlay.recordsMessageMaxBytes })
    try {
      await lp.write(encoder.encode(JSON.stringify(body)), { signal })
      const answer = JSON.parse(decoder.decode((await lp.read({ signal })).subarray())) as Record<string, unknown>
      await stream.close({ signal }).catch(() => {})
      return answer
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }

  async #serve(stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(LIMITS.overlay.recordsTimeoutMs)
    const lp = lpStream(stream, { maxDataLength: LIMITS.overlay.recordsMessageMaxBytes })
    const reply = async (body: object): Promise<void> => {
      await lp.write(encoder.encode(JSON.stringify(body)), { signal })
      await stream.close({ signal }).catch(() => {})
    }
    if (this.#c.hello.verified(connection.remotePeer) === undefined) {
      await reply({ refused: { code: 'NO_CREDENTIAL', message: 'say hello with a valid credential first' } })
      return
    }
    let request: Request
    try {
      request = JSON.parse(decoder.decode((await lp.read({ signal })).subarray())) as Request
      if (typeof request !== 'object' || request === null) throw new Error('not an object')
    } catch {
      await reply({ refused: { code: 'MALFORMED', message: 'a request is a length-prefixed JSON object' } }).catch(() => {})
      return
    }
    if (request.op === 'get' && typeof request.name === 'string' && request.name.length <= LIMITS.name.maxLength) {
      await reply({ records: this.store.get(request.name).map((r) => r.signed) })
      return
    }
    if (request.op === 'lookup' && typeof request.name === 'string' && request.name.length <= LIMITS.name.maxLength) {
      const found = await this.#find(request.name, { signal })
      await reply({ records: found.records.map((r) => r.signed), asked: found.asked, answered: found.answered, hops: found.hops })
      return
    }
    if (request.op === 'supernodes') {
      const wanted =
        typeof request.count === 'number' && request.count >= 1 ? Math.min(Math.floor(request.count), SUPERNODES_LISTED) : HOST_CACHE_LISTED
      await reply({ supernodes: this.#listSupernodes(connection.remotePeer, wanted) })
      return
    }
    if (request.op === 'publish') {
      const checked = await checkedOrRefused(request.record, this.#c.verifier, reply)
      if (checked === undefined) return
      const took = await this.#placeNearest(checked.signed, checked.name, await this.#targets(checked.name, { signal }), { signal })
      // Kept while the device stays linked here, to put it elsewhere when a replica goes away.
      if (checked.peerId === connection.remotePeer.toString())
        this.#placed.set(checked.peerId, { signed: checked.signed, name: checked.name, replicas: new Set(took) })
      await reply({ ok: took.length > 0, supernodes: took })
      return
    }
    if (request.op === 'put') {
      const checked = await checkedOrRefused(request.record, this.#c.verifier, reply)
      if (checked === undefined) return
      const outcome = this.store.put(checked)
      if (outcome === 'REPLAYED' || outcome === 'FULL') {
        await reply({
          refused: {
            code: outcome,
            message: outcome === 'REPLAYED' ? 'an older or conflicting record of this device' : 'this supernode is full'
          }
        })
        return
      }
      await reply({ ok: true, outcome })
      return
    }
    await reply({ refused: { code: 'MALFORMED', message: 'unknown op' } })
  }
}

function newestPerDevice(records: CheckedRecord[]): CheckedRecord[] {
  const newest = new Map<string, CheckedRecord>()
  for (const r of records) {
    const seen = newest.get(r.peerId)
    if (seen === undefined || r.record.seq > seen.record.seq) newest.set(r.peerId, r)
  }
  return [...newest.values()]
}

/** The devices online: a withdrawn one ('offline', the newest record of its device) is left out. */
function devicesOf(records: CheckedRecord[]): DeviceEntry[] {
  return records
    .filter((r) => r.record.presence !== 'offline')
    .map((r) => ({
      peerId: r.peerId,
      presence: r.record.presence,
      addrs: r.record.addrs,
      seq: r.record.seq,
      expiresAt: r.record.expiresAt
    }))
}

/** A count from another peer's answer: a small non-negative integer, else 0. */
function count(value: unknown): number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value < 1000 ? value : 0
}

/** A record that checks out, or undefined after answering the refusal with its code. */
async function checkedOrRefused(
  record: unknown,
  verifier: CredentialVerifier,
  reply: (body: object) => Promise<void>
): Promise<CheckedRecord | undefined> {
  try {
    return checkRecord(record as SignedRecord, verifier)
  } catch (err) {
    const e = err instanceof RecordError ? err : new RecordError('MALFORMED', 'bad record')
    await reply({ refused: { code: e.code, message: e.message } })
    return undefined
  }
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 100) / 100
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) {
    const d = (a[i] as number) - (b[i] as number)
    if (d !== 0) return d
  }
  return 0
}
