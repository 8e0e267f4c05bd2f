import { generateKeyPair, type KeyPair } from '@parley/crypto'
import type { TestNetwork } from '@parley/testing'
import { ParleyNode, type Role } from '../src/index.ts'

/** A started node on the memory transport, logged in to `network` as `name`. */
export async function startMemoryNode(
  network: TestNetwork,
  role: Role,
  name: string,
  device: KeyPair = generateKeyPair()
): Promise<ParleyNode> {
  const credential = network.credentialFor(device, name)
  const node = await ParleyNode.create({
    role,
    deviceSeed: device.seed,
    trustedKeys: network.trustedKeys,
    credential: () => credential,
    transport: 'memory',
    privateAddresses: true
  })
  await node.start()
  return node
}
