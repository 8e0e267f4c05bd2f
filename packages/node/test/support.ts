import { generateKeyPair, type KeyPair } from '@parley/crypto'
import type { TestNetwork } from '@parley/testing'
import { type ChatService, ParleyNode, type Role } from '../src/index.ts'

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

/**
 * A started node on loopback TCP, logged in to `network` as `name`; with
 * `seed`, a client linked to that supernode and published in the directory.
 */
export async function startLoopbackNode(
  network: TestNetwork,
  name: string,
  options: { seed?: ParleyNode; device?: KeyPair } = {}
): Promise<ParleyNode> {
  const device = options.device ?? generateKeyPair()
  const credential = network.credentialFor(device, name)
  const node = await ParleyNode.create({
    role: options.seed === undefined ? 'supernode' : 'client',
    deviceSeed: device.seed,
    trustedKeys: network.trustedKeys,
    credential: () => credential,
    privateAddresses: true
  })
  await node.start()
  if (options.seed !== undefined) {
    const linked = await node.connect(options.seed.addresses[0] as string)
    if (!linked.ok) throw new Error(`${name} could not link to the supernode: ${linked.reason}`)
    await node.records.publish({ addrs: node.addresses, presence: 'online' })
  }
  return node
}

/** Waits until `check` holds (every 20 ms), or fails saying what did not happen. */
export async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const started = performance.now()
  while (!check()) {
    if (performance.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Makes two users contacts (a request accepted), as they would be before calling or sending files. */
export async function befriend(a: { name: string; chat: ChatService }, b: { name: string; chat: ChatService }): Promise<void> {
  await a.chat.addContact(b.name)
  await until(`${b.name} sees the request`, () => b.chat.contacts().some((c) => c.name === a.name))
  await b.chat.acceptContact(a.name)
  await until(`${a.name} sees the acceptance`, () => a.chat.isContact(b.name))
}
