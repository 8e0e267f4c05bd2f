import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { LIMITS } from '@parley/protocol'
import type { HelloService, VerifiedPeer } from '../hello/hello.ts'
import type { NatService } from '../nat/nat.ts'
import { hostPort, isRelayed } from './addrs.ts'
import type { OverlayLibp2p } from './libp2p.ts'

/**
 * Going direct from a relayed connection. libp2p's DCUtR does this on the
 * internet but skips every reserved range; Parley's attempt works wherever
 * its own NAT determination has something to offer: over the relayed
 * connection the two peers swap the addresses where they might be reached
 * (those a supernode's dial-back reached, their own listen addresses for a
 * shared LAN, and the address a supernode saw them at), then both dial at
 * once: a peer that is reachable is dialled by the other (connection
 * reversal), and two peers behind NATs that keep one mapping per source
 * address get their SYNs through the mappings the other's dial opened. When a
 * direct connection is up, the relayed one is closed.
 *
 * Wire (`/parley/direct/1.0.0`, on a limited connection between
 * hello-verified peers; one length-prefixed JSON message each way, at most
 * LIMITS.overlay.direct.messageMaxBytes): `{"addrs": [multiaddr, …]}` both
 * ways (at most LIMITS.overlay.direct.candidates), or `{"refused": {"code", "message"}}`.
 */
export const DIRECT_PROTOCOL = '/parley/direct/1.0.0'

export type Path = 'direct' | 'relayed' | 'none'

export interface DirectComponents {
  libp2p: OverlayLibp2p
  hello: HelloService
  nat: NatService
}

export interface DirectStats {
  attempts: number
  direct: number
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export class DirectService {
  readonly #c: DirectComponents
  readonly #attempts = new Map<string, Promise<Path>>()
  readonly stats: DirectStats = { attempts: 0, direct: 0 }
  #started = false

  constructor(components: DirectComponents) {
    this.#c = components
  }

  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    await this.#c.libp2p.handle(
      DIRECT_PROTOCOL,
      async (stream, connection) => {
        await this.#answer(stream, connection).catch((err: unknown) => {
          stream.abort(err instanceof Error ? err : new Error(String(err)))
        })
      },
      { runOnLimitedConnection: true }
    )
    this.#c.hello.addEventListener('peer:verified', this.#onVerified)
  }

  async stop(): Promise<void> {
    if (!this.#started) return
    this.#started = false
    this.#c.hello.removeEventListener('peer:verified', this.#onVerified)
    await this.#c.libp2p.unhandle(DIRECT_PROTOCOL).catch(() => {})
  }

  pathTo(peer: PeerId | string): Path {
    const connections = this.#c.libp2p.getConnections().filter((c) => c.remotePeer.toString() === peer.toString() && c.status === 'open')
    if (connections.some((c) => c.limits === undefined)) return 'direct'
    return connections.length > 0 ? 'relayed' : 'none'
  }

  /** Tries to replace a relayed connection to `peer` by a direct one (once at a time per peer); the path afterwards. */
  async upgrade(peer: PeerId): Promise<Path> {
    const key = peer.toString()
    let attempt = this.#attempts.get(key)
    if (attempt === undefined) {
      attempt = this.#upgrade(peer).finally(() => this.#attempts.delete(key))
      this.#attempts.set(key, attempt)
    }
    return await attempt
  }

  readonly #onVerified = (event: Event): void => {
    const peer = (event as CustomEvent<VerifiedPeer>).detail.peerId
    // The dialer of the relayed connection starts the attempt.
    const relayed = this.#c.libp2p
      .getConnections()
      .find((c) => c.remotePeer.toString() === peer && c.limits !== undefined && c.direction === 'outbound')
    if (relayed !== undefined && this.pathTo(peer) === 'relayed') void this.upgrade(relayed.remotePeer).catch(() => {})
  }

  async #upgrade(peer: PeerId): Promise<Path> {
    if (this.pathTo(peer) !== 'relayed') return this.pathTo(peer)
    const relayed = this.#c.libp2p.getConnections(peer).find((c) => c.limits !== undefined && c.status === 'open')
    if (relayed === undefined) return this.pathTo(peer)
    this.stats.attempts++
    const signal = AbortSignal.timeout(LIMITS.overlay.direct.attemptTimeoutMs)
    let theirs: string[]
    const stream = await relayed.newStream(DIRECT_PROTOCOL, { signal, runOnLimitedConnection: true })
    const lp = lpStream(stream, { maxDataLength: LIMITS.overlay.direct.messageMaxBytes })
    try {
      await lp.write(encoder.encode(JSON.stringify({ addrs: this.#candidates() })), { signal })
      theirs = parseAddrs(JSON.parse(decoder.decode((await lp.read({ signal })).subarray())))
      await stream.close({ signal }).catch(() => {})
    } catch (err) {
      stream.abort(err as Error)
      return this.pathTo(peer)
    }
    await this.#dialAll(peer, theirs, signal)
    return this.#finish(peer)
  }

  async #answer(stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(LIMITS.overlay.direct.attemptTimeoutMs)
    const lp = lpStream(stream, { maxDataLength: LIMITS.overlay.direct.messageMaxBytes })
    if (this.#c.hello.verified(connection.remotePeer) === undefined) {
      await lp.write(encoder.encode(JSON.stringify({ refused: { code: 'NO_CREDENTIAL', message: 'say hello first' } })), { signal })
      await stream.close({ signal }).catch(() => {})
      return
    }
    let theirs: string[]
    try {
      theirs = parseAddrs(JSON.parse(decoder.decode((await lp.read({ signal })).subarray())))
    } catch {
      await lp
        .write(encoder.encode(JSON.stringify({ refused: { code: 'MALFORMED', message: 'expected {"addrs": [multiaddr, …]}' } })), {
          signal
        })
        .catch(() => {})
      await stream.close({ signal }).catch(() => {})
      return
    }
    await lp.write(encoder.encode(JSON.stringify({ addrs: this.#candidates() })), { signal })
    await stream.close({ signal }).catch(() => {})
    // Dial at the same time as the other side: each dial opens this side's NAT mapping for the other's.
    await this.#dialAll(connection.remotePeer, theirs, signal)
  }

  async #dialAll(peer: PeerId, addrs: string[], signal: AbortSignal): Promise<void> {
    await Promise.any(
      addrs.map(async (a) => {
        const connection = await this.#c.libp2p.dial(multiaddr(`${a}/p2p/${peer.toString()}`), { signal })
        if (connection.limits !== undefined) throw new Error('still relayed')
      })
    ).catch(() => {})
  }

  /** Waits briefly for the other side's dial to land, then closes the relayed connections if a direct one is up. */
  async #finish(peer: PeerId): Promise<Path> {
    for (let i = 0; i < 10 && this.pathTo(peer) !== 'direct'; i++) await new Promise((r) => setTimeout(r, 50))
    if (this.pathTo(peer) !== 'direct') return 'relayed'
    this.stats.direct++
    for (const c of this.#c.libp2p.getConnections(peer)) if (c.limits !== undefined) await c.close().catch(() => {})
    return 'direct'
  }

  /** Where this node might be reached directly: dial-back successes, the address a supernode saw (with each listen port), own listen addresses. */
  #candidates(): string[] {
    const verdict = this.#c.nat.verdict
    const own = this.#c.libp2p
      .getMultiaddrs()
      .map((a) => a.decapsulateCode(421))
      .filter((a) => !isRelayed(a) && hostPort(a)?.transport === 'tcp')
    const ports = new Set(own.flatMap((a) => hostPort(a)?.port ?? []))
    const seen = verdict.observed.flatMap((o) => {
      const m = /^\/(ip[46])\/([^/]+)\/tcp\//.exec(o)
      return m === null ? [] : [...ports].map((p) => `/${m[1]}/${m[2]}/tcp/${p}`)
    })
    return [...new Set([...verdict.dialable, ...seen, ...own.map((a) => a.toString())])].slice(0, LIMITS.overlay.direct.candidates)
  }
}

function parseAddrs(value: unknown): string[] {
  const addrs = (value as { addrs?: unknown } | null)?.addrs
  if (!Array.isArray(addrs) || addrs.length > LIMITS.overlay.direct.candidates) throw new Error('addrs')
  return addrs.map((a) => {
    if (typeof a !== 'string' || a.length > 256 || a.includes('/p2p-circuit')) throw new Error('addr')
    return multiaddr(a).toString()
  })
}
