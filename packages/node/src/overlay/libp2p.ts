import { randomUUID } from 'node:crypto'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { type CircuitRelayService, circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { dcutr } from '@libp2p/dcutr'
import { identify } from '@libp2p/identify'
import { type KadDHT, kadDHT, passthroughMapper, removePrivateAddressesMapper } from '@libp2p/kad-dht'
import { memory } from '@libp2p/memory'
import { type Ping, ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { LIMITS } from '@parley/protocol'
import { createLibp2p, type Libp2p } from 'libp2p'

export type Role = 'client' | 'supernode'

/** The Kademlia protocol id: Parley's own DHT, apart from the public IPFS one. */
export const DHT_PROTOCOL = '/parley/kad/1.0.0'

export interface OverlayInit {
  role: Role
  /** The device key's 32-byte Ed25519 seed: the node's libp2p identity is the device key. */
  deviceSeed: Uint8Array
  /** Multiaddrs to listen on. Default: TCP on a free loopback port. */
  listen?: string[]
  /** 'memory' for one-process simulations. Default: 'tcp'. */
  transport?: 'tcp' | 'memory'
  /**
   * Keep private and loopback addresses in the DHT (tests, simulations, LANs).
   * Default: false (the internet's view).
   */
  privateAddresses?: boolean
}

export type OverlayLibp2p = Libp2p<{ identify: unknown; ping: Ping; dht: KadDHT; relay: CircuitRelayService; dcutr: unknown }>

/**
 * The libp2p node under a Parley node: TCP (or memory), Noise, yamux,
 * identify, ping and Parley's Kademlia DHT, in server mode on supernodes and
 * client mode on ordinary nodes. The role decides configuration, not code paths.
 */
export async function createOverlay(init: OverlayInit): Promise<OverlayLibp2p> {
  const privateKey = await generateKeyPairFromSeed('Ed25519', init.deviceSeed)
  const memoryTransport = init.transport === 'memory'
  const relay = LIMITS.overlay.relay
  return await createLibp2p({
    privateKey,
    addresses: { listen: init.listen ?? [memoryTransport ? `/memory/${randomUUID()}` : '/ip4/127.0.0.1/tcp/0'] },
    // The relay transport dials and listens through supernodes' circuit relays (nodes behind NAT).
    transports: [memoryTransport ? memory() : tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      // Many nodes dial a supernode from one host in tests; the default (5/s per host) refuses them.
      inboundConnectionThreshold: 1000,
      maxConnections: LIMITS.overlay.maxConnections,
      // libp2p's 10 turns clients away in bursts (a supernode's clients redialling after a restart).
      maxIncomingPendingConnections: LIMITS.overlay.maxIncomingPendingConnections
    },
    // A keep-alive ping per connection every 10 s (libp2p's default) costs a supernode with thousands of clients half a core.
    connectionMonitor: { enabled: init.role !== 'supernode', pingInterval: LIMITS.overlay.keepAliveMs },
    services: {
      identify: identify(),
      ping: ping(),
      // Every node carries the relay's hop service; ParleyNode serves it only in the supernode role.
      relay: circuitRelayServer({
        hopTimeout: relay.hopTimeoutMs,
        reservations: {
          maxReservations: relay.maxReservations,
          reservationTtl: relay.reservationTtlMs,
          defaultDurationLimit: relay.durationLimitMs,
          defaultDataLimit: BigInt(relay.dataLimitBytes)
        }
      }),
      // Direct connection upgrade through relay where libp2p can (public addresses); Parley adds its own attempt.
      dcutr: dcutr(),
      dht: kadDHT({
        protocol: DHT_PROTOCOL,
        clientMode: init.role === 'client',
        // A DHT client is in nobody's routing table: no self-query walk 1 s after start (it dialled and pinged a
        // score of supernodes per client), only every 5 minutes; its rare walks do not wait for one.
        ...(init.role === 'client' ? { allowQueryWithZeroPeers: true, initialQuerySelfInterval: 300_000 } : {}),
        peerInfoMapper: init.privateAddresses === true ? passthroughMapper : removePrivateAddressesMapper
      })
    }
  })
}
