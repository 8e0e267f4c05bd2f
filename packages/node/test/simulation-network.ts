import { sha256 } from '@parley/crypto'
import type { TestNetwork } from '@parley/testing'
import { HostCache, type ParleyNode, SupernodeLinks, userKey } from '../src/index.ts'
import { startMemoryNode } from './support.ts'

/**
 * A Parley network in one process on libp2p's memory transport, as the
 * simulation test and the lookup bench build it: supernodes that each link to
 * up to 8 others (as the daemon does), then clients that each keep 3
 * supernodes with SupernodeLinks and a host cache of their own (`:memory:`),
 * seeded with 3 supernodes spread over the network.
 */
export interface SimClient {
  node: ParleyNode
  name: string
  links: SupernodeLinks
  cache: HostCache
}

export interface Simulation {
  supernodes: ParleyNode[]
  clients: SimClient[]
  /** From the first node started to the last client linked to its 3 supernodes, with a full host cache. */
  buildMs: number
  /** Stops a supernode (churn); the others and the clients notice by their connections closing. */
  kill(supernode: ParleyNode): Promise<void>
  stop(): Promise<void>
}

export interface SimulationInit {
  nodes: number
  supernodes: number
  /** Supernodes a client keeps. Default 3. */
  target?: number
  /** Nodes that join at once. Default 8. */
  joinBatch?: number
  progress?: (message: string) => void
}

/** Supernodes a supernode links to (the daemon's target for supernodes). */
const SUPERNODE_LINKS = 8
/**
 * A dial in a busy one-process simulation can be slow (every node shares two
 * cores); a stopped supernode's address fails at once on the memory transport.
 */
const DIAL_TIMEOUT_MS = 5_000
const JOIN_TRIES = 3
const STOP_TIMEOUT_MS = 15_000

export async function buildSimulation(network: TestNetwork, init: SimulationInit): Promise<Simulation> {
  const started = performance.now()
  const progress = init.progress ?? (() => {})
  const batch = init.joinBatch ?? 8
  const target = init.target ?? 3
  const supernodes: ParleyNode[] = []
  const clients: SimClient[] = []
  const stopped = new Set<ParleyNode>()
  const sim: Simulation = {
    supernodes,
    clients,
    buildMs: 0,
    async kill(supernode) {
      stopped.add(supernode)
      await supernode.stop()
    },
    async stop() {
      await Promise.all(clients.map(async (c) => await bounded(c.links.stop(), `${c.name}'s links`, progress)))
      await Promise.all(clients.map(async (c) => await bounded(c.node.stop(), c.name, progress)))
      await Promise.all(supernodes.filter((s) => !stopped.has(s)).map(async (s, i) => await bounded(s.stop(), `supernode ${i}`, progress)))
      for (const c of clients) c.cache.close()
    }
  }
  try {
    supernodes.push(
      ...(await Promise.all(Array.from({ length: init.supernodes }, (_, i) => startMemoryNode(network, 'supernode', `super_${i}_node`))))
    )
    await inBatches(init.supernodes, batch, async (i) => {
      for (let k = 1; k <= Math.min(SUPERNODE_LINKS, init.supernodes - 1); k++) {
        await connect(supernodes[i] as ParleyNode, (supernodes[(i + k) % init.supernodes] as ParleyNode).addresses[0] as string)
      }
    })
    progress(`${init.supernodes} supernodes linked in ${Math.round(performance.now() - started)} ms`)
    const joined = await inBatches(init.nodes - init.supernodes, batch, async (i) => {
      const name = `user_${i}_sim`
      const node = await startMemoryNode(network, 'client', name)
      const cache = new HostCache(':memory:')
      // Three supernodes spread over the network, as if from the host cache of an earlier run.
      const seeds = Array.from(
        { length: target },
        (_, k) => (supernodes[(i * 7 + k * 11) % init.supernodes] as ParleyNode).addresses[0] as string
      )
      const links = new SupernodeLinks(node, cache, { target, seeds, dialTimeoutMs: DIAL_TIMEOUT_MS })
      const client = { node, name, links, cache }
      clients.push(client)
      for (let attempt = 1; ; attempt++) {
        await links.start()
        if (links.linked.length >= target) break
        await links.stop()
        if (attempt >= JOIN_TRIES) throw new Error(`${name} linked to ${links.linked.length} supernodes of ${target}`)
      }
      // The host cache fills from a linked supernode's list (links.start asks too; this waits for the answer).
      await links.discover()
      if ((i + 1) % 50 === 0) progress(`${i + 1} clients joined (${Math.round(performance.now() - started)} ms)`)
      return client
    })
    // A link lost while the network was busy building is replaced by then.
    for (let waited = 0; clients.some((c) => c.links.linked.length < target) && waited < 10_000; waited += 100) {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    sim.buildMs = performance.now() - started
    progress(`${init.nodes} nodes up in ${Math.round(sim.buildMs)} ms (${joined.length} clients)`)
    return sim
  } catch (err) {
    await sim.stop()
    throw err
  }
}

/** Waits for a node to stop, at most STOP_TIMEOUT_MS (a stop that never settles must not hang a test or a bench). */
async function bounded(stopping: Promise<void>, what: string, progress: (message: string) => void): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), STOP_TIMEOUT_MS)
  })
  const outcome = await Promise.race([stopping.then(() => 'stopped' as const).catch(() => 'failed' as const), late])
  clearTimeout(timer)
  if (outcome !== 'stopped') progress(`${what}: stop ${outcome === 'late' ? `still pending after ${STOP_TIMEOUT_MS} ms` : 'failed'}`)
}

/** Connects and greets, trying again when a busy simulation makes a dial time out. */
async function connect(from: ParleyNode, to: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      const outcome = await from.connect(to, { signal: AbortSignal.timeout(30_000) })
      if (outcome.ok) return
      throw new Error(outcome.reason)
    } catch (err) {
      if (attempt >= JOIN_TRIES) throw err
    }
  }
}

/** Runs `task(0..count-1)`, at most `batch` at a time, results in order. */
export async function inBatches<T>(count: number, batch: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = []
  for (let i = 0; i < count; i += batch) {
    out.push(...(await Promise.all(Array.from({ length: Math.min(batch, count - i) }, (_, j) => task(i + j)))))
  }
  return out
}

/** The peer ids of the `count` supernodes closest to a user's key (XOR of SHA-256s), computed here from the whole network. */
export function closestSupernodes(name: string, supernodes: ParleyNode[], count: number): string[] {
  const target = sha256(userKey(name))
  const distance = (node: ParleyNode): Uint8Array => sha256(node.libp2p.peerId.toMultihash().bytes).map((b, i) => b ^ (target[i] as number))
  return supernodes
    .map((node) => ({ id: node.peerId, d: distance(node) }))
    .sort((a, b) => Buffer.compare(a.d, b.d))
    .slice(0, count)
    .map((x) => x.id)
}
