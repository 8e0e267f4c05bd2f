import type { Multiaddr } from '@multiformats/multiaddr'
import { multiaddr } from '@multiformats/multiaddr'
import { LIMITS } from '@parley/protocol'
import type { ParleyNode } from '../node.ts'
import { isRelayed } from './addrs.ts'
import type { LinkedSupernode, SupernodeLinks } from './links.ts'

/** libp2p's transport manager: listening on `<relay>/p2p-circuit` makes a reservation there (not on the public Libp2p type). */
interface TransportManager {
  listen(addrs: Multiaddr[]): Promise<void>
}

/**
 * Relay reservations for a node that cannot be reached directly: one on each
 * linked supernode (up to LIMITS.overlay.relay.reservationsPerNode); the relay
 * addresses they give are what the node advertises in its user record. A
 * reservation goes with its supernode; a new supernode gets one when linked.
 */
export class RelayReservations {
  readonly #node: ParleyNode
  readonly #links: SupernodeLinks
  readonly #pending = new Set<string>()
  #wanted = false

  constructor(node: ParleyNode, links: SupernodeLinks) {
    this.#node = node
    this.#links = links
    links.addEventListener('linked', this.#onLinked)
  }

  stop(): void {
    this.#links.removeEventListener('linked', this.#onLinked)
  }

  /** The relay addresses this node holds now (`…/p2p/RELAY/p2p-circuit`). */
  get addrs(): string[] {
    return this.#node.libp2p
      .getMultiaddrs()
      .filter((a) => isRelayed(a))
      .map((a) => a.toString())
  }

  /** The supernodes holding a reservation for this node. */
  get relays(): string[] {
    return [...new Set(this.addrs.map((a) => /\/p2p\/([^/]+)\/p2p-circuit/.exec(a)?.[1]).filter((p) => p !== undefined))]
  }

  get wanted(): boolean {
    return this.#wanted
  }

  /** Whether this node needs relays (behind NAT or a firewall, not a supernode); reserves at once when it does. */
  async want(wanted: boolean): Promise<void> {
    this.#wanted = wanted
    if (wanted) await Promise.all(this.#links.linked.map((s) => this.#reserve(s)))
  }

  readonly #onLinked = (event: Event): void => {
    if (this.#wanted) void this.#reserve((event as CustomEvent<LinkedSupernode>).detail)
  }

  async #reserve(supernode: LinkedSupernode): Promise<void> {
    const relays = this.relays
    if (relays.includes(supernode.peerId) || this.#pending.has(supernode.peerId)) return
    if (relays.length + this.#pending.size >= LIMITS.overlay.relay.reservationsPerNode) return
    const addr = supernode.addrs[0]
    if (addr === undefined) return
    this.#pending.add(supernode.peerId)
    try {
      const manager = (this.#node.libp2p as unknown as { components: { transportManager: TransportManager } }).components.transportManager
      await manager.listen([multiaddr(`${addr}/p2p-circuit`)])
    } catch {
      // The supernode refused or went away; the next linked one is tried when it comes.
    } finally {
      this.#pending.delete(supernode.peerId)
    }
  }
}
