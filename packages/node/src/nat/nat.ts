import { createSocket } from 'node:dgram'
import { isIP } from 'node:net'
import { networkInterfaces } from 'node:os'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { LIMITS } from '@parley/protocol'
import type { HelloService } from '../hello/hello.ts'
import { hostPort, isRelayed } from '../overlay/addrs.ts'
import type { OverlayLibp2p } from '../overlay/libp2p.ts'
import type { PublicRanges } from './ranges.ts'
import { type MappedAddress, StunServer, stunBinding } from './stun.ts'

/**
 * NAT and firewall determination, as in the report: a node asks its
 * supernodes which address they see and to dial it back there; and, over
 * UDP, asks their STUN servers (two ports each) which mapping its NAT made.
 *
 * Wire (`/parley/nat/1.0.0`, one length-prefixed JSON message each way, at
 * most LIMITS.overlay.nat.messageMaxBytes; only for hello-verified peers):
 *   node      → `{"addrs": ["/ip4/…/tcp/…", …]}` (its own listen addresses)
 *   supernode → `{"observed": "/ip4/…/tcp/…", "dialBack": [{"addr", "ok"}], "stun": [port, port]}`
 *               or `{"refused": {"code", "message"}}`
 * A supernode dials back only at the address it sees (the observed host with
 * each listen port), on a new connection, so it cannot be used to dial others.
 */
export const NAT_PROTOCOL = '/parley/nat/1.0.0'

/**
 * public: supernodes reached it at a public address (maybe through a forwarded port);
 * private: reached at its own address, which is not a public one (a LAN, a test network);
 * nat: it is behind NAT and could not be reached; firewalled: no NAT, but not reachable;
 * unknown: no supernode answered.
 */
export type Reachability = 'public' | 'private' | 'nat' | 'firewalled' | 'unknown'

/**
 * UDP mapping behaviour (RFC 4787): none (no NAT), cone (one mapping for every
 * destination: hole punching works), symmetric (a new mapping per destination).
 */
export type NatClass = 'none' | 'cone' | 'symmetric' | 'unknown'

export type NatRefusal = 'NO_CREDENTIAL' | 'MALFORMED' | 'RATE_LIMITED' | 'RELAYED'

export interface NatVerdict {
  reachability: Reachability
  natClass: NatClass
  /** The addresses supernodes saw this node's connections come from. */
  observed: string[]
  /** Addresses where a supernode's dial-back reached this node. */
  dialable: string[]
  /** UDP mappings the STUN servers reported (HOST:PORT). */
  mapped: string[]
  /** Supernodes that answered. */
  answered: number
  at: string
}

interface ProbeAnswer {
  observed?: unknown
  dialBack?: unknown
  stun?: unknown
  refused?: { code?: unknown; message?: unknown }
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export interface NatComponents {
  libp2p: OverlayLibp2p
  hello: HelloService
  ranges: PublicRanges
  /** Where supernodes serve STUN (the TCP listen host, e.g. 0.0.0.0); none on the memory transport. */
  stunHost?: string
}

export const UNKNOWN_VERDICT: NatVerdict = Object.freeze({
  reachability: 'unknown',
  natClass: 'unknown',
  observed: [],
  dialable: [],
  mapped: [],
  answered: 0,
  at: new Date(0).toISOString()
})

export class NatService extends EventTarget {
  readonly #c: NatComponents
  readonly #stun = new StunServer()
  readonly #probes = new Map<string, number[]>()
  #serving = false
  #verdict: NatVerdict = UNKNOWN_VERDICT

  constructor(components: NatComponents) {
    super()
    this.#c = components
  }

  get verdict(): NatVerdict {
    return this.#verdict
  }

  /** One STUN server (host and port) of each supernode that answered the last determination: for calls' ICE. */
  get stunServers(): MappedAddress[] {
    return [...this.#stunServers]
  }

  #stunServers: MappedAddress[] = []

  get stunPorts(): number[] {
    return this.#stun.ports
  }

  /** Serves probes and STUN (supernodes). STUN listens on the host of the first TCP listen address. */
  async serve(): Promise<void> {
    if (this.#serving) return
    this.#serving = true
    await this.#c.libp2p.handle(NAT_PROTOCOL, async (stream, connection) => {
      await this.#answer(stream, connection).catch((err: unknown) => {
        stream.abort(err instanceof Error ? err : new Error(String(err)))
      })
    })
    if (this.#c.stunHost !== undefined) await this.#stun.start(this.#c.stunHost)
  }

  async stopServing(): Promise<void> {
    if (!this.#serving) return
    this.#serving = false
    await this.#c.libp2p.unhandle(NAT_PROTOCOL).catch(() => {})
    await this.#stun.stop()
    this.#probes.clear()
  }

  /** Asks up to LIMITS.overlay.nat.supernodesAsked of these supernodes; the verdict, also kept and announced when it changes. */
  async determine(supernodes: PeerId[]): Promise<NatVerdict> {
    const { libp2p } = this.#c
    const asked = supernodes.slice(0, LIMITS.overlay.nat.supernodesAsked)
    const claimed = this.#ownAddrs()
    const answers = await Promise.all(
      asked.map(async (peer) => {
        try {
          const connection = libp2p.getConnections(peer).find((c) => c.limits === undefined)
          if (connection === undefined) return undefined
          const answer = await this.#probe(connection, claimed)
          return answer === undefined ? undefined : { connection, answer }
        } catch {
          return undefined
        }
      })
    )
    const ok = answers.filter((a) => a !== undefined)
    const observed = new Set<string>()
    const dialable = new Set<string>()
    const stunServers: MappedAddress[][] = []
    for (const { connection, answer } of ok) {
      if (typeof answer.observed === 'string') observed.add(answer.observed)
      if (Array.isArray(answer.dialBack)) {
        for (const d of answer.dialBack as Array<{ addr?: unknown; ok?: unknown }>) {
          if (d?.ok === true && typeof d.addr === 'string') dialable.add(d.addr)
        }
      }
      const host = hostPort(connection.remoteAddr)?.host
      if (host !== undefined && Array.isArray(answer.stun)) {
        const ports = (answer.stun as unknown[]).filter(
          (p): p is number => Number.isInteger(p) && (p as number) > 0 && (p as number) < 65536
        )
        if (ports.length > 0) stunServers.push(ports.slice(0, 2).map((port) => ({ address: host, port })))
      }
    }
    this.#stunServers = stunServers.map((ports) => ports[0] as MappedAddress)
    const mapped = await this.#mappings(stunServers)
    const verdict = this.#judge({ answered: ok.length, observed: [...observed], dialable: [...dialable], mapped })
    const changed = verdict.reachability !== this.#verdict.reachability || verdict.natClass !== this.#verdict.natClass
    this.#verdict = verdict
    if (changed) this.dispatchEvent(new CustomEvent('verdict', { detail: verdict }))
    return verdict
  }

  #judge(seen: { answered: number; observed: string[]; dialable: string[]; mapped: string[] }): NatVerdict {
    const local = localAddresses()
    const hostOf = (a: string): string => hostPort(multiaddr(a))?.host ?? ''
    const natted = seen.observed.some((a) => !local.has(hostOf(a)))
    let reachability: Reachability
    if (seen.answered === 0) reachability = 'unknown'
    else if (seen.dialable.some((a) => this.#c.ranges.isPublic(hostOf(a)))) reachability = 'public'
    else if (natted) reachability = 'nat'
    else if (seen.dialable.length > 0) reachability = 'private'
    else reachability = 'firewalled'
    let natClass: NatClass = 'unknown'
    if (seen.mapped.length > 0) {
      const distinct = new Set(seen.mapped)
      if (distinct.size > 1) natClass = 'symmetric'
      else natClass = local.has((seen.mapped[0] as string).replace(/:\d+$/, '').replace(/^\[|\]$/g, '')) ? 'none' : 'cone'
    } else if (seen.answered > 0 && !natted) natClass = 'none'
    return { reachability, natClass, ...seen, at: new Date().toISOString() }
  }

  /** One UDP socket asks every STUN port: the same mapping everywhere is a cone, different ones a symmetric NAT. */
  async #mappings(servers: MappedAddress[][]): Promise<string[]> {
    if (servers.length === 0) return []
    const family = isIP(servers[0]?.[0]?.address ?? '') === 6 ? 'udp6' : 'udp4'
    const socket = createSocket({ type: family })
    socket.on('error', () => {})
    try {
      await new Promise<void>((resolve) => socket.bind(0, resolve))
      const seen: string[] = []
      for (const server of servers.flat()) {
        // One at a time: answers on one socket are told apart by transaction id, but sequential keeps the NAT's view simple.
        const mapped = await stunBinding(socket, server)
        if (mapped !== undefined) seen.push(`${mapped.address}:${mapped.port}`)
      }
      return seen
    } finally {
      socket.close()
    }
  }

  async #probe(connection: Connection, claimed: string[]): Promise<ProbeAnswer | undefined> {
    const signal = AbortSignal.timeout(LIMITS.overlay.nat.probeTimeoutMs)
    const hello = await this.#c.hello.greet(connection)
    if (!hello.ok) return undefined
    const stream = await connection.newStream(NAT_PROTOCOL, { signal })
    const lp = lpStream(stream, { maxDataLength: LIMITS.overlay.nat.messageMaxBytes })
    try {
      await lp.write(encoder.encode(JSON.stringify({ addrs: claimed })), { signal })
      const answer = JSON.parse(decoder.decode((await lp.read({ signal })).subarray())) as ProbeAnswer
      await stream.close({ signal }).catch(() => {})
      if (typeof answer !== 'object' || answer === null || answer.refused !== undefined) return undefined
      return answer
    } catch (err) {
      stream.abort(err as Error)
      return undefined
    }
  }

  async #answer(stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(LIMITS.overlay.nat.probeTimeoutMs)
    const lp = lpStream(stream, { maxDataLength: LIMITS.overlay.nat.messageMaxBytes })
    const reply = async (body: object): Promise<void> => {
      await lp.write(encoder.encode(JSON.stringify(body)), { signal })
      await stream.close({ signal }).catch(() => {})
    }
    const refuse = async (code: NatRefusal, message: string): Promise<void> => await reply({ refused: { code, message } })
    const peer = connection.remotePeer
    if (this.#c.hello.verified(peer) === undefined) return await refuse('NO_CREDENTIAL', 'say hello with a valid credential first')
    if (connection.limits !== undefined) return await refuse('RELAYED', 'a relayed connection shows nothing about the peer’s own address')
    if (!this.#admit(peer.toString())) return await refuse('RATE_LIMITED', `at most ${LIMITS.overlay.nat.probesPerMinute} probes a minute`)
    let claimed: Multiaddr[]
    try {
      const request = JSON.parse(decoder.decode((await lp.read({ signal })).subarray())) as { addrs?: unknown }
      if (!Array.isArray(request.addrs) || request.addrs.length > 16) throw new Error('addrs')
      claimed = request.addrs.map((a) => {
        if (typeof a !== 'string' || a.length > 256) throw new Error('addr')
        return multiaddr(a)
      })
    } catch {
      return await refuse('MALFORMED', 'a probe is {"addrs": [multiaddr, …]} (at most 16)')
    }
    const observed = connection.remoteAddr
    const observedHost = hostPort(observed)?.host
    if (observedHost === undefined) return await reply({ observed: observed.toString(), dialBack: [], stun: [] })
    // Dial back only at the host this supernode sees, on each TCP port the node listens on.
    const candidates = new Set<string>()
    for (const a of claimed) {
      const o = hostPort(a)
      if (o?.transport !== 'tcp' || isRelayed(a)) continue
      candidates.add(`/${isIP(observedHost) === 6 ? 'ip6' : 'ip4'}/${observedHost}/tcp/${o.port}`)
    }
    const dialBack = await Promise.all(
      [...candidates].slice(0, LIMITS.overlay.nat.dialBacks).map(async (addr) => {
        try {
          const back = await this.#c.libp2p.dial(multiaddr(`${addr}/p2p/${peer.toString()}`), {
            force: true,
            signal: AbortSignal.timeout(LIMITS.overlay.nat.dialBackTimeoutMs)
          })
          await back.close().catch(() => {})
          return { addr, ok: true }
        } catch {
          return { addr, ok: false }
        }
      })
    )
    await reply({ observed: observed.decapsulateCode(421).toString(), dialBack, stun: this.#stun.ports })
  }

  #admit(peer: string): boolean {
    const now = Date.now()
    const recent = (this.#probes.get(peer) ?? []).filter((t) => now - t < 60_000)
    if (recent.length >= LIMITS.overlay.nat.probesPerMinute) return false
    recent.push(now)
    this.#probes.set(peer, recent)
    if (this.#probes.size > 10_000) this.#probes.delete(this.#probes.keys().next().value as string)
    return true
  }

  /** This node's own TCP listen addresses (without relay addresses), as claims for the dial-back. */
  #ownAddrs(): string[] {
    return this.#c.libp2p
      .getMultiaddrs()
      .map((a) => a.decapsulateCode(421))
      .filter((a) => hostPort(a)?.transport === 'tcp' && !isRelayed(a))
      .map((a) => a.toString())
      .slice(0, 16)
  }
}

/** The addresses of this machine's interfaces. */
function localAddresses(): Set<string> {
  const all = new Set<string>()
  for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) all.add(i.address)
  return all
}
