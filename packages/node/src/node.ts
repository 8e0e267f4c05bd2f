import { multiaddr } from '@multiformats/multiaddr'
import { CredentialVerifier, keyPairFromSeed, type TrustedKey } from '@parley/crypto'
import { HelloService } from './hello/hello.ts'
import { createOverlay, type OverlayInit, type OverlayLibp2p, type Role } from './overlay/libp2p.ts'
import { RecordsService } from './records/records.ts'

export interface ParleyNodeInit extends OverlayInit {
  /** The login keys this network trusts (from the network file). */
  trustedKeys: TrustedKey[]
  /** This device's current credential; undefined while logged out. */
  credential: () => string | undefined
}

/**
 * One Parley peer: the libp2p overlay and the services Parley runs on it.
 * A supernode is the same node in another role. Start it, stop it (safe twice).
 */
export class ParleyNode {
  readonly role: Role
  readonly libp2p: OverlayLibp2p
  readonly hello: HelloService
  readonly records: RecordsService

  private constructor(role: Role, libp2p: OverlayLibp2p, hello: HelloService, records: RecordsService) {
    this.role = role
    this.libp2p = libp2p
    this.hello = hello
    this.records = records
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
    return new ParleyNode(init.role, libp2p, hello, records)
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
  }

  async stop(): Promise<void> {
    await this.records.stop()
    await this.hello.stop()
    await this.libp2p.stop()
  }

  /** Connects to a peer and greets it: resolves with the hello's outcome. */
  async connect(address: string, options: { signal?: AbortSignal } = {}): ReturnType<HelloService['greet']> {
    const connection = await this.libp2p.dial(multiaddr(address), options)
    return await this.hello.greet(connection)
  }
}
