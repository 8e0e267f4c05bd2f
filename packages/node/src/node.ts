import { RELAY_V2_HOP_CODEC } from '@libp2p/circuit-relay-v2'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { CredentialVerifier, keyPairFromSeed, type TrustedKey } from '@parley/crypto'
import { LIMITS } from '@parley/protocol'
import { HelloService } from './hello/hello.ts'
import { type MailboxInit, MailboxService } from './mailbox/mailbox.ts'
import { NatService } from './nat/nat.ts'
import { PublicRanges } from './nat/ranges.ts'
import { DirectService, type Path } from './overlay/direct.ts'
import { createOverlay, type OverlayInit, type OverlayLibp2p, type Role } from './overlay/libp2p.ts'
import { RecordsService } from './records/records.ts'

export interface ParleyNodeInit extends OverlayInit {
  /** The login keys this network trusts (from the network file). */
  trustedKeys: TrustedKey[]
  /** This device's current credential; undefined while logged out. */
  credential: () => string | undefined
  /** The addresses this node treats as public. Default: the internet's. */
  publicRanges?: PublicRanges
  /** The offline mailbox a supernode keeps (`path`: `<profile>/mailbox.sqlite`; default ':memory:', tests only). */
  mailbox?: Omit<MailboxInit, 'serve'>
}

export interface ParleyNodeEvents {
  role: CustomEvent<Role>
}

/**
 * One Parley peer: the libp2p overlay and the services Parley runs on it.
 * A supernode is the same node in another role, and a node may change role
 * while it runs (`setRole`): the DHT mode, the directory, the relay's hop
 * service and the NAT probe/STUN service follow the role. Start it, stop it
 * (safe twice).
 */
export class ParleyNode extends EventTarget {
  readonly libp2p: OverlayLibp2p
  readonly hello: HelloService
  readonly records: RecordsService
  readonly nat: NatService
  readonly direct: DirectService
  readonly mailbox: MailboxService
  #role: Role
  #relayHandled = true

  private constructor(
    role: Role,
    libp2p: OverlayLibp2p,
    hello: HelloService,
    records: RecordsService,
    nat: NatService,
    direct: DirectService,
    mailbox: MailboxService
  ) {
    super()
    this.#role = role
    this.libp2p = libp2p
    this.hello = hello
    this.records = records
    this.nat = nat
    this.direct = direct
    this.mailbox = mailbox
  }

  static async create(init: ParleyNodeInit): Promise<ParleyNode> {
    const libp2p = await createOverlay(init)
    const verifier = new CredentialVerifier(init.trustedKeys)
    const hello = new HelloService({ libp2p, verifier, credential: init.credential })
    // Supernodes keep the directory; every node publishes and looks up.
    const records = new RecordsService(
      { libp2p, hello, verifier, device: keyPairFromSeed(init.deviceSeed), credential: init.credential },
      { serve: init.role === 'supernode' }
    )
    const stunHost = init.transport === 'memory' ? undefined : tcpListenHost(init.listen)
    const nat = new NatService({
      libp2p,
      hello,
      ranges: init.publicRanges ?? PublicRanges.internet(),
      ...(stunHost === undefined ? {} : { stunHost })
    })
    const direct = new DirectService({ libp2p, hello, nat })
    // Every node deposits and collects; a supernode also keeps mailboxes (#applyRole), where it keeps records.
    const mailbox = new MailboxService(
      {
        libp2p,
        hello,
        verifier,
        device: keyPairFromSeed(init.deviceSeed),
        credential: init.credential,
        closestSupernodes: async (name, options) => await records.closestSupernodes(name, options),
        nearestSupernodes: (name, peers) => records.nearestSupernodes(name, peers)
      },
      init.mailbox
    )
    return new ParleyNode(init.role, libp2p, hello, records, nat, direct, mailbox)
  }

  get role(): Role {
    return this.#role
  }

  get peerId(): string {
    return this.libp2p.peerId.toString()
  }

  get addresses(): string[] {
    return this.libp2p.getMultiaddrs().map((a) => a.toString())
  }

  async start(): Promise<void> {
    await this.hello.start()
    await this.records.start()
    await this.libp2p.start()
    await this.direct.start()
    await this.mailbox.start()
    await this.#applyRole()
  }

  async stop(): Promise<void> {
    await this.direct.stop()
    await this.mailbox.stop()
    await this.nat.stopServing()
    await this.records.stop()
    await this.hello.stop()
    await this.libp2p.stop()
  }

  /** Takes on a role while running: a supernode serves the DHT, the directory, the mailbox, the relay and NAT probes. */
  async setRole(role: Role): Promise<void> {
    if (role === this.#role) return
    this.#role = role
    await this.#applyRole()
    this.dispatchEvent(new CustomEvent('role', { detail: role }))
  }

  async #applyRole(): Promise<void> {
    const serving = this.#role === 'supernode'
    const { libp2p } = this
    if (libp2p.services.dht.getMode() !== (serving ? 'server' : 'client')) await libp2p.services.dht.setMode(serving ? 'server' : 'client')
    await this.records.setServing(serving)
    await this.mailbox.setServing(serving)
    // libp2p's relay server cannot be restarted once stopped (its shutdown signal stays aborted): hand its hop handler on and off instead.
    if (serving && !this.#relayHandled) {
      const server = libp2p.services.relay as unknown as { onHop: (stream: Stream, connection: Connection) => Promise<void> }
      await libp2p.handle(RELAY_V2_HOP_CODEC, server.onHop, { runOnLimitedConnection: true })
      this.#relayHandled = true
    } else if (!serving && this.#relayHandled) {
      await libp2p.unhandle(RELAY_V2_HOP_CODEC).catch(() => {})
      this.#relayHandled = false
    }
    if (serving) await this.nat.serve()
    else await this.nat.stopServing()
  }

  /** Connects to a peer and greets it: resolves with the hello's outcome. */
  async connect(address: string, options: { signal?: AbortSignal } = {}): ReturnType<HelloService['greet']> {
    const connection = await this.libp2p.dial(multiaddr(address), options)
    return await this.hello.greet(connection)
  }

  /**
   * Connects to a device at the addresses its record gives, says hello,
   * tries to go direct if the connection is relayed, and measures the round trip.
   */
  async reach(peerId: string, addrs: string[], options: { signal?: AbortSignal } = {}): Promise<{ path: Path; rttMs: number }> {
    const peer = peerIdFromString(peerId)
    const signal = options.signal ?? AbortSignal.timeout(LIMITS.overlay.reachTimeoutMs)
    if (addrs.length > 0) await this.libp2p.peerStore.merge(peer, { multiaddrs: addrs.map((a) => multiaddr(a)) })
    const connection = await this.libp2p.dial(peer, { signal })
    const hello = await this.hello.greet(connection)
    if (!hello.ok) throw new Error(`hello refused: ${hello.reason} ${hello.message}`)
    if (this.pathTo(peer) === 'relayed') await this.direct.upgrade(peer)
    const rttMs = await this.libp2p.services.ping.ping(peer, { signal })
    return { path: this.pathTo(peer), rttMs }
  }

  /** How this node reaches a peer now: direct, through a relay, or not connected. */
  pathTo(peer: PeerId | string): Path {
    return this.direct.pathTo(peer)
  }
}

function tcpListenHost(listen: string[] | undefined): string {
  for (const a of listen ?? []) {
    const m = /^\/ip[46]\/([^/]+)\/tcp\//.exec(a)
    if (m?.[1] !== undefined) return m[1]
  }
  return '127.0.0.1'
}
