import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
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
 * Wire (length-prefixed UTF-8 JSON, at most LIMITS.overlay.recordsMessageMaxBytes):
 * `{"op":"put","record":{record,sig}}` -> `{"ok":true,"outcome":"stored"|"unchanged"}` or
 * `{"refused":{"code","message"}}`; `{"op":"get","name":"..."}` -> `{"records":[{record,sig}, ...]}`.
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
  /** Supernodes asked, and how many answered. */
  asked: number
  answered: number
  ms: number
}

interface Request {
  op?: unknown
  record?: unknown
  name?: unknown
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export class RecordsService {
  readonly #c: RecordsComponents
  #init: RecordsInit
  readonly store = new RecordStore()
  /** Supernodes seen (identify, DHT walks): the local view that lets a lookup skip the walk. */
  readonly #known = new Map<string, PeerId>()
  #seq = 0
  #sweep: ReturnType<typeof setInterval> | undefined

  constructor(components: RecordsComponents, init: RecordsInit) {
    this.#c = components
    this.#init = init
  }

  async start(): Promise<void> {
    this.#c.libp2p.addEventListener('peer:identify', this.#onIdentify)
    if (this.#init.serve) await this.#startServing()
  }

  async stop(): Promise<void> {
    this.#c.libp2p.removeEventListener('peer:identify', this.#onIdentify)
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
    if (this.#sweep === undefined) return
    clearInterval(this.#sweep)
    this.#sweep = undefined
    await this.#c.libp2p.unhandle(RECORDS_PROTOCOL).catch(() => {})
  }

  /** Publishes this device's record to the user's closest supernodes; resolves with how many took it. */
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
    const targets = await this.#closestSupernodes(name, options)
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
    return { stored: took.length, supernodes: took }
  }

  /**
   * Finds a user's online devices from the overlay alone. First from the
   * supernodes this node knows (the closest of them to the user's key, no DHT
   * walk: exact whenever it knows them all, as in a small network); when that
   * finds no device, from the closest supernodes a DHT walk finds.
   */
  async whois(name: string, options: { signal?: AbortSignal } = {}): Promise<WhoisResult> {
    const started = performance.now()
    if (this.#known.size >= LIMITS.overlay.recordReplicas) {
      const quick = await this.#ask(name, this.#nearest(name, this.#known.values()), options)
      if (quick.devices.length > 0) return { ...quick, ms: elapsed(started) }
    }
    const walked = await this.#ask(name, await this.#closestSupernodes(name, options), options)
    return { ...walked, ms: elapsed(started) }
  }

  async #ask(name: string, targets: PeerId[], options: { signal?: AbortSignal }): Promise<Omit<WhoisResult, 'ms'>> {
    let answered = 0
    const found: CheckedRecord[] = []
    await Promise.all(
      targets.map(async (peer) => {
        try {
          const records = peer.equals(this.#c.libp2p.peerId)
            ? this.store.get(name).map((r) => r.signed)
            : (((await this.#request(peer, { op: 'get', name }, options)).records as unknown[]) ?? [])
          answered++
          for (const r of Array.isArray(records) ? records : []) {
            // Never trust the supernode: every record is checked here again.
            try {
              found.push(checkRecord(r, this.#c.verifier, { name }))
            } catch {
              // A forged or stale record from a bad supernode is ignored.
            }
          }
        } catch {
          // An unreachable replica: the others answer.
        }
      })
    )
    const newest = new Map<string, CheckedRecord>()
    for (const r of found) {
      const seen = newest.get(r.peerId)
      if (seen === undefined || r.record.seq > seen.record.seq) newest.set(r.peerId, r)
    }
    const devices = [...newest.values()].map((r) => ({
      peerId: r.peerId,
      presence: r.record.presence,
      addrs: r.record.addrs,
      seq: r.record.seq,
      expiresAt: r.record.expiresAt
    }))
    const canonical = [...newest.values()][0]?.name ?? name
    return { name: canonical, devices, asked: targets.length, answered }
  }

  /** The supernodes (DHT servers, this one included when it serves) closest to the user's key. */
  async #closestSupernodes(name: string, options: { signal?: AbortSignal }): Promise<PeerId[]> {
    const candidates = new Map<string, PeerId>()
    try {
      for await (const event of this.#c.libp2p.services.dht.getClosestPeers(userKey(name), {
        signal: options.signal ?? AbortSignal.timeout(LIMITS.overlay.recordsTimeoutMs)
      })) {
        if (event.name === 'FINAL_PEER') {
          candidates.set(event.peer.id.toString(), event.peer.id)
          this.#remember(event.peer.id)
        }
      }
    } catch (err) {
      // A walk that times out (a busy or partitioned network) falls back on the supernodes this node knows.
      if (options.signal?.aborted === true) throw err
    }
    return this.#nearest(name, candidates.size > 0 ? candidates.values() : this.#known.values())
  }

  /** The replicas' worth of supernodes closest to the user's key, among these (and this node when it serves). */
  #nearest(name: string, peers: Iterable<PeerId>): PeerId[] {
    const target = sha256(userKey(name))
    const all = new Map<string, PeerId>()
    for (const p of peers) all.set(p.toString(), p)
    if (this.#init.serve) all.set(this.#c.libp2p.peerId.toString(), this.#c.libp2p.peerId)
    const distance = (peer: PeerId): Uint8Array => sha256(peer.toMultihash().bytes).map((b, i) => b ^ (target[i] as number))
    return [...all.values()]
      .map((peer) => ({ peer, d: distance(peer) }))
      .sort((a, b) => compareBytes(a.d, b.d))
      .slice(0, LIMITS.overlay.recordReplicas)
      .map((x) => x.peer)
  }

  #remember(peer: PeerId): void {
    if (peer.equals(this.#c.libp2p.peerId)) return
    this.#known.delete(peer.toString())
    this.#known.set(peer.toString(), peer)
    // Bounded: the least recently seen go first.
    if (this.#known.size > LIMITS.overlay.knownSupernodes) this.#known.delete(this.#known.keys().next().value as string)
  }

  readonly #onIdentify = (event: CustomEvent<{ peerId: PeerId; protocols: string[] }>): void => {
    if (event.detail.protocols.includes(RECORDS_PROTOCOL)) this.#remember(event.detail.peerId)
  }

  async #request(peer: PeerId, body: Request, options: { signal?: AbortSignal }): Promise<Record<string, unknown>> {
    const signal = options.signal ?? AbortSignal.timeout(LIMITS.overlay.recordsTimeoutMs)
    const connection = await this.#c.libp2p.dial(peer, { signal })
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
    if (request.op === 'put') {
      let checked: CheckedRecord
      try {
        checked = checkRecord(request.record as SignedRecord, this.#c.verifier)
      } catch (err) {
        const e = err instanceof RecordError ? err : new RecordError('MALFORMED', 'bad record')
        await reply({ refused: { code: e.code, message: e.message } })
        return
      }
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
