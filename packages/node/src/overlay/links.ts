import type { PeerId } from '@libp2p/interface'
import { LIMITS } from '@parley/protocol'
import type { ParleyNode } from '../node.ts'
import { RECORDS_PROTOCOL } from '../records/records.ts'
import type { HostCache } from '../store/host-cache.ts'

export interface SupernodeLinksInit {
  /** Connected supernodes to keep. Default: 3 for clients. */
  target: number
  /** Seed supernodes (multiaddrs with /p2p/), tried after the host cache. */
  seeds: string[]
  /** Per dial. Default: 1500 ms (a lost supernode is replaced within 2 s). */
  dialTimeoutMs?: number
  /** How often to look for more supernodes (from a linked supernode, else the DHT). Default: 60 s. */
  discoverEveryMs?: number
  /** Whether this node may link now: a signed-out daemon stays off the overlay (its hellos would all be refused). Default: always. */
  online?: () => boolean
}

export interface LinkedSupernode {
  peerId: string
  addrs: string[]
  latencyMs: number | undefined
}

/**
 * Keeps a node attached to `target` supernodes: from the host cache first,
 * then the seeds; a supernode that goes away is replaced at once. Every
 * supernode seen (identify, DHT) goes into the host cache.
 */
export class SupernodeLinks extends EventTarget {
  readonly #node: ParleyNode
  readonly #cache: HostCache
  readonly #init: SupernodeLinksInit
  readonly #linked = new Map<string, LinkedSupernode>()
  #filling: Promise<void> | undefined
  #timer: ReturnType<typeof setInterval> | undefined
  #stopped = true

  constructor(node: ParleyNode, cache: HostCache, init: SupernodeLinksInit) {
    super()
    this.#node = node
    this.#cache = cache
    this.#init = init
  }

  get linked(): LinkedSupernode[] {
    return [...this.#linked.values()]
  }

  get target(): number {
    return this.#init.target
  }

  /** A node that changes role keeps another number of supernodes (a supernode links to more of its peers). */
  set target(target: number) {
    this.#init.target = target
    void this.fill().catch(() => {})
  }

  async start(): Promise<void> {
    this.#stopped = false
    const libp2p = this.#node.libp2p
    libp2p.addEventListener('peer:identify', this.#onIdentify)
    libp2p.addEventListener('peer:disconnect', this.#onDisconnect)
    await this.fill()
    // What the first supernodes know fills the remaining links at once (a seed list is often one supernode).
    const discoverAndFill = async (): Promise<void> => {
      await this.discover().catch(() => {})
      await this.fill()
    }
    this.#timer = setInterval(() => void discoverAndFill().catch(() => {}), this.#init.discoverEveryMs ?? 60_000)
    this.#timer.unref?.()
    void discoverAndFill().catch(() => {})
  }

  async stop(): Promise<void> {
    this.#stopped = true
    if (this.#timer !== undefined) clearInterval(this.#timer)
    if (this.#retry !== undefined) clearTimeout(this.#retry)
    const libp2p = this.#node.libp2p
    libp2p.removeEventListener('peer:identify', this.#onIdentify)
    libp2p.removeEventListener('peer:disconnect', this.#onDisconnect)
    await this.#filling?.catch(() => {})
  }

  /** Connects to supernodes until `target` are linked (one fill at a time). */
  async fill(): Promise<void> {
    if (this.#init.online?.() === false) return
    if (this.#filling !== undefined) {
      // The fill under way may have looked before this call's loss: once it is done, fill again if still short.
      await this.#filling
      if (this.#stopped || this.#linked.size >= this.#init.target) return
    }
    this.#filling ??= this.#fill().finally(() => {
      this.#filling = undefined
    })
    await this.#filling
    this.#retryWhileAlone()
  }

  #retry: ReturnType<typeof setTimeout> | undefined
  #retryMs = 0

  /**
   * A node with no supernode at all (every candidate failed: the seed was still
   * starting, the network was down) tries again soon, backing off from 1 s to
   * LIMITS.overlay.aloneRetryMaxMs, instead of waiting for the next discovery round.
   */
  #retryWhileAlone(): void {
    if (this.#linked.size > 0 || this.#stopped || this.#init.online?.() === false) {
      this.#retryMs = 0
      return
    }
    if (this.#retry !== undefined) return
    this.#retryMs = Math.min(Math.max(1_000, this.#retryMs * 2), LIMITS.overlay.aloneRetryMaxMs)
    this.#retry = setTimeout(() => {
      this.#retry = undefined
      void this.fill().catch(() => {})
    }, this.#retryMs)
    this.#retry.unref?.()
  }

  /**
   * Grows the host cache: asks a linked supernode which supernodes it knows
   * (one request; a DHT walk from here would dial a score of them), and walks
   * the DHT towards a random key only when no linked supernode answers.
   */
  async discover(): Promise<void> {
    const own = this.#node.peerId
    const listed = await this.#node.records.supernodes({ signal: AbortSignal.timeout(5_000) })
    for (const s of listed) if (s.peerId !== own) this.#cache.seen(s.peerId, s.addrs)
    if (listed.length > 0) return
    const key = crypto.getRandomValues(new Uint8Array(32))
    for await (const event of this.#node.libp2p.services.dht.getClosestPeers(key, { signal: AbortSignal.timeout(5_000) })) {
      if (event.name === 'FINAL_PEER' && !event.peer.id.equals(this.#node.libp2p.peerId)) {
        this.#cache.seen(
          event.peer.id.toString(),
          event.peer.multiaddrs.map((a) => a.toString())
        )
      }
    }
  }

  async #fill(): Promise<void> {
    const own = this.#node.peerId
    const tried = new Set<string>([own, ...this.#linked.keys()])
    const candidates: Array<{ peerId: string; addr: string }> = []
    for (const host of this.#cache.candidates(50, tried)) {
      for (const a of host.addrs) candidates.push({ peerId: host.peerId, addr: a.includes('/p2p/') ? a : `${a}/p2p/${host.peerId}` })
    }
    for (const seed of this.#init.seeds) {
      const peerId = seed.split('/p2p/')[1]
      if (peerId !== undefined && !tried.has(peerId)) candidates.push({ peerId, addr: seed })
    }
    // Happy Eyeballs (RFC 8305) over the candidates: one dial starts, the next when it fails or after a short
    // stagger, with at most a few more in flight than are missing. A candidate that is gone (the cache's last
    // view) costs a stagger, not its dial timeout, so a lost supernode is replaced within 2 s.
    const pending = candidates.filter((c, i) => c.peerId !== own && candidates.findIndex((d) => d.peerId === c.peerId) === i)
    const inFlight = new Set<Promise<void>>()
    const missing = (): number => this.#init.target - this.#linked.size
    for (const c of pending) {
      if (this.#stopped || missing() <= 0) break
      const attempt: Promise<void> = this.#attempt(c).finally(() => inFlight.delete(attempt))
      inFlight.add(attempt)
      await Promise.race([new Promise((resolve) => setTimeout(resolve, LIMITS.overlay.dialStaggerMs)), ...inFlight])
      while (inFlight.size >= missing() + LIMITS.overlay.extraDialsPerWave && missing() > 0) await Promise.race(inFlight)
    }
    // The last ones: until the links are full or every dial is done.
    while (inFlight.size > 0 && missing() > 0 && !this.#stopped) await Promise.race(inFlight)
  }

  /** Dials and greets one candidate, and links it if a link is still missing. */
  async #attempt(c: { peerId: string; addr: string }): Promise<void> {
    if (this.#linked.has(c.peerId)) return
    const started = performance.now()
    try {
      const outcome = await this.#node.connect(c.addr, { signal: AbortSignal.timeout(this.#init.dialTimeoutMs ?? 1_500) })
      if (!outcome.ok) throw new Error(outcome.reason)
      const latencyMs = Math.round((performance.now() - started) * 100) / 100
      this.#cache.seen(c.peerId, [c.addr])
      this.#cache.succeeded(c.peerId, latencyMs)
      if (this.#stopped || this.#linked.size >= this.#init.target || this.#linked.has(c.peerId)) return
      const linked = { peerId: c.peerId, addrs: [c.addr], latencyMs }
      this.#linked.set(c.peerId, linked)
      this.dispatchEvent(new CustomEvent('linked', { detail: linked }))
    } catch {
      this.#cache.failed(c.peerId)
    }
  }

  readonly #onIdentify = (
    event: CustomEvent<{ peerId: PeerId; protocols: string[]; listenAddrs: Array<{ toString(): string }> }>
  ): void => {
    const { peerId, protocols, listenAddrs } = event.detail
    if (!protocols.includes(RECORDS_PROTOCOL)) return
    this.#cache.seen(
      peerId.toString(),
      listenAddrs.map((a) => `${a.toString()}/p2p/${peerId.toString()}`)
    )
  }

  readonly #onDisconnect = (event: CustomEvent<PeerId>): void => {
    const peerId = event.detail.toString()
    if (!this.#linked.delete(peerId)) return
    // A supernode that has just gone away is tried after the others.
    this.#cache.failed(peerId)
    this.dispatchEvent(new CustomEvent('unlinked', { detail: peerId }))
    if (!this.#stopped) void this.fill().catch(() => {})
  }
}
