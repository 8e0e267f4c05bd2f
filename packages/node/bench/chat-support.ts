// Helpers for the chat and mailbox benches: a supernode and chat peers on
// loopback TCP in this process (as packages/node/test/chat.test.ts starts them),
// with chat databases on files as the daemon keeps them (or in memory), a peer
// that listens nowhere and holds a relay reservation on the supernode (as in
// packages/node/test/nat.test.ts), latency summaries, and paced sending.
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { generateKeyPair, type KeyPair } from '@parley/crypto'
import { ms, percentile, type TestNetwork, tempDir } from '@parley/testing'
import { ChatService, ChatStore, type MailboxInit, ParleyNode } from '../src/index.ts'

export type StoreKind = 'file' | 'memory'

export interface ChatPeer {
  name: string
  device: KeyPair
  node: ParleyNode
  store: ChatStore
  chat: ChatService
  /** Called with every event the chat service emits (the daemon would put them on the local API's stream). */
  onEvent: ((type: string, data: Record<string, unknown>) => void) | undefined
  stop(): Promise<void>
}

/** A folder for one bench's files, removed by `cleanup`. */
export async function benchDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await tempDir(prefix)
  return { dir, cleanup: async () => await rm(dir, { recursive: true, force: true }) }
}

/** A supernode on loopback TCP; its mailbox on `mailbox.path` when given (else in memory). */
export async function startSupernode(network: TestNetwork, name: string, mailbox?: Omit<MailboxInit, 'serve'>): Promise<ParleyNode> {
  const device = generateKeyPair()
  const credential = network.credentialFor(device, name)
  const node = await ParleyNode.create({
    role: 'supernode',
    deviceSeed: device.seed,
    trustedKeys: network.trustedKeys,
    credential: () => credential,
    privateAddresses: true,
    ...(mailbox === undefined ? {} : { mailbox })
  })
  await node.start()
  return node
}

export interface ChatPeerInit {
  device?: KeyPair
  /** 'file': `<dir>/<name>-<peer id>.sqlite`, WAL and synchronous=FULL as the daemon keeps `chat.sqlite`; 'memory': ':memory:'. */
  store?: StoreKind
  dir?: string
  /** An existing store file (a device coming back). */
  storePath?: string
  /** Listen nowhere and take a relay reservation on the supernode (a peer behind NAT or a firewall). */
  relayed?: boolean
  /** Publish this device's record (addresses) in the directory. Default: true. */
  publish?: boolean
  /** Start the chat service. Default: true. */
  startChat?: boolean
}

/** A logged-in client node on loopback TCP, linked to `supernode`; with `relayed`, it listens nowhere and holds a relay reservation there. */
export async function startClientNode(
  network: TestNetwork,
  supernode: ParleyNode,
  name: string,
  init: { device?: KeyPair; relayed?: boolean } = {}
): Promise<ParleyNode> {
  const device = init.device ?? generateKeyPair()
  const credential = network.credentialFor(device, name)
  const node = await ParleyNode.create({
    role: 'client',
    deviceSeed: device.seed,
    trustedKeys: network.trustedKeys,
    credential: () => credential,
    privateAddresses: true,
    ...(init.relayed === true ? { listen: [] } : {})
  })
  await node.start()
  const linked = await node.connect(supernode.addresses[0] as string)
  if (!linked.ok) throw new Error(`${name} could not link to the supernode: ${linked.reason}`)
  if (init.relayed === true) {
    const manager = (node.libp2p as unknown as { components: { transportManager: { listen(a: unknown[]): Promise<void> } } }).components
      .transportManager
    await manager.listen([multiaddr(`${supernode.addresses[0]}/p2p-circuit`)])
    if (!node.addresses.some((a) => a.includes('/p2p-circuit'))) throw new Error(`${name} holds no relay reservation`)
  }
  return node
}

/** A logged-in device on loopback TCP, linked to `supernode`, with a started ChatService (no presence service: not needed for messages). */
export async function startChatPeer(network: TestNetwork, supernode: ParleyNode, name: string, init: ChatPeerInit = {}): Promise<ChatPeer> {
  const device = init.device ?? generateKeyPair()
  const node = await startClientNode(network, supernode, name, { device, ...(init.relayed === undefined ? {} : { relayed: init.relayed }) })
  if (init.publish !== false) await node.records.publish({ addrs: node.addresses, presence: 'online' })
  const path =
    init.storePath ??
    ((init.store ?? 'file') === 'memory'
      ? ':memory:'
      : join(init.dir ?? (await tempDir('parley-chat-bench-')), `${name}-${node.peerId}.sqlite`))
  const store = new ChatStore(path)
  const peer: ChatPeer = {
    name,
    device,
    node,
    store,
    chat: undefined as unknown as ChatService,
    onEvent: undefined,
    async stop() {
      await peer.chat.stop().catch(() => {})
      await node.stop().catch(() => {})
      store.close()
    }
  }
  peer.chat = new ChatService({
    node,
    store,
    device,
    me: () => name,
    emit: (type, data) => peer.onEvent?.(type, data as Record<string, unknown>)
  })
  if (init.startChat !== false) await peer.chat.start()
  return peer
}

/** Makes two users contacts (a request accepted), as they would be before chatting. */
export async function befriend(a: ChatPeer, b: ChatPeer): Promise<void> {
  await a.chat.addContact(b.name)
  await until(`${b.name} sees ${a.name}'s request`, () => b.chat.contacts().some((c) => c.name === a.name && c.state === 'incoming'))
  await b.chat.acceptContact(a.name)
  await until(`${a.name} sees the acceptance`, () => a.chat.isContact(b.name))
}

export async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<number> {
  const started = performance.now()
  while (!check()) {
    if (performance.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await sleep(5)
  }
  return performance.now() - started
}

export async function sleep(msToWait: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, msToWait))
}

/** count, p50, p90, p99, max (ms) of some times; missing ones are left out. */
export function latency(times: number[]): { count: number; p50Ms: number; p90Ms: number; p99Ms: number; maxMs: number } {
  const sorted = times.filter((t) => Number.isFinite(t)).sort((a, b) => a - b)
  return {
    count: sorted.length,
    p50Ms: ms(percentile(sorted, 50)),
    p90Ms: ms(percentile(sorted, 90)),
    p99Ms: ms(percentile(sorted, 99)),
    maxMs: ms(sorted.at(-1) ?? Number.NaN)
  }
}

/**
 * Calls `send(i)` for i = 0..count-1 at `perSecond`, open loop: each call is
 * made when it is due, whether or not earlier ones have finished (a late
 * timer makes the calls that are due go out together). Resolves once every
 * call has been made (not finished); how late the calls were made against
 * their schedule is returned so a busy event loop shows.
 */
export async function paced(count: number, perSecond: number, send: (i: number) => void): Promise<{ elapsedMs: number; lagMs: number[] }> {
  const interval = 1000 / perSecond
  const start = performance.now()
  const lagMs: number[] = []
  let i = 0
  while (i < count) {
    const now = performance.now()
    while (i < count && start + i * interval <= now) {
      lagMs.push(now - (start + i * interval))
      send(i)
      i++
    }
    if (i < count) await sleep(Math.max(0, start + i * interval - performance.now()))
  }
  return { elapsedMs: performance.now() - start, lagMs }
}
