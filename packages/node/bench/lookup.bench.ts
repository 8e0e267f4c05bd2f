import { ms, percentile, progressFor, rate, testNetwork } from '@parley/testing'
import { type ParleyNode, userKey } from '../src/index.ts'
import { startMemoryNode } from '../test/support.ts'

const progress = progressFor('lookup')
const LOOKUPS = 300
/** Nodes that join at once while the network is built. */
const JOIN_BATCH = 8
/** A dial that times out while the simulation is busy is tried again this often. */
const JOIN_TRIES = 3
let joinRetries = 0
/** libp2p walks are slow in large simulations: fewer of them. */
const WALKS = 100
const sizes = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => Number.isInteger(n) && n >= 10)

const network = testNetwork()

async function makeNode(role: 'client' | 'supernode', name: string): Promise<ParleyNode> {
  return await startMemoryNode(network, role, name)
}

/** Connects and greets, trying again when a busy simulation makes a dial time out. */
async function join(from: ParleyNode, to: ParleyNode): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      const outcome = await from.connect(to.addresses[0] as string, { signal: AbortSignal.timeout(30_000) })
      if (outcome.ok) return
      throw new Error(outcome.reason)
    } catch (err) {
      if (attempt >= JOIN_TRIES) throw err
      joinRetries++
    }
  }
}

/** Runs `task(0..count-1)`, at most `batch` at a time, results in order. */
async function inBatches<T>(count: number, batch: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = []
  for (let i = 0; i < count; i += batch) {
    out.push(...(await Promise.all(Array.from({ length: Math.min(batch, count - i) }, (_, j) => task(i + j)))))
  }
  return out
}

function stats(times: number[]): Record<string, number> {
  const sorted = [...times].sort((a, b) => a - b)
  return { count: sorted.length, p50Ms: ms(percentile(sorted, 50)), p90Ms: ms(percentile(sorted, 90)), p99Ms: ms(percentile(sorted, 99)) }
}

async function simulate(n: number): Promise<Record<string, unknown>> {
  const started = performance.now()
  const superCount = Math.max(3, Math.round(n / 10))
  const supernodes: ParleyNode[] = []
  const clients: Array<{ node: ParleyNode; name: string }> = []
  const rssBefore = process.memoryUsage().rss
  try {
    supernodes.push(...(await Promise.all(Array.from({ length: superCount }, (_, i) => makeNode('supernode', `super_${i}_node`)))))
    // Each supernode links to up to 8 others, as the daemon does.
    await inBatches(superCount, JOIN_BATCH, async (i) => {
      for (let k = 1; k <= Math.min(8, superCount - 1); k++)
        await supernodes[i]!.connect(supernodes[(i + k) % superCount]!.addresses[0] as string)
    })
    // Clients join in bounded batches, each onto 3 supernodes.
    const joined = await inBatches(n - superCount, JOIN_BATCH, async (i) => {
      const name = `user_${i}_sim`
      const node = await makeNode('client', name)
      for (let k = 0; k < 3; k++) await join(node, supernodes[(i * 7 + k * 3) % superCount]!)
      return { node, name }
    })
    clients.push(...joined)
    const builtMs = performance.now() - started
    progress(`${n} nodes (${superCount} supernodes) up in ${Math.round(builtMs)} ms; publishing`)
    const publishTimes: number[] = []
    let replicas = 0
    for (const c of clients) {
      const t = performance.now()
      replicas += (await c.node.records.publish({ addrs: c.node.addresses, presence: 'online' })).stored
      publishTimes.push(performance.now() - t)
    }
    progress(`published; ${LOOKUPS} whois lookups`)
    const whoisTimes: number[] = []
    let found = 0
    for (let i = 0; i < LOOKUPS; i++) {
      const asker = clients[Math.floor(Math.random() * clients.length)]!
      const target = clients[Math.floor(Math.random() * clients.length)]!
      const t = performance.now()
      const result = await asker.node.records.whois(target.name)
      whoisTimes.push(performance.now() - t)
      if (result.devices.some((d) => d.peerId === target.node.peerId)) found++
    }
    // libp2p's own lookup in the same simulation: the Kademlia walk to the closest peers of a key
    // (findPeer would answer from the local peer store, which knows every supernode here).
    progress(`${WALKS} libp2p getClosestPeers walks`)
    const walkTimes: number[] = []
    let walkOk = 0
    for (let i = 0; i < WALKS; i++) {
      const asker = clients[Math.floor(Math.random() * clients.length)]!
      const key = userKey(clients[Math.floor(Math.random() * clients.length)]!.name)
      const t = performance.now()
      let peers = 0
      for await (const event of asker.node.libp2p.services.dht.getClosestPeers(key, { signal: AbortSignal.timeout(5000) })) {
        if (event.name === 'FINAL_PEER') peers++
      }
      walkTimes.push(performance.now() - t)
      if (i < 5 || i % 20 === 0) progress(`walk ${i}: ${Math.round(performance.now() - t)} ms, ${peers} peers`)
      if (peers > 0) walkOk++
    }
    const rssAfter = process.memoryUsage().rss
    const whois = stats(whoisTimes)
    const walk = stats(walkTimes)
    return {
      nodes: n,
      supernodes: superCount,
      buildMs: Math.round(builtMs),
      joinRetries,
      publish: { ...stats(publishTimes), meanReplicas: Number((replicas / clients.length).toFixed(2)) },
      whois: { ...whois, found, lookups: LOOKUPS, successRate: Number((found / LOOKUPS).toFixed(4)) },
      libp2pGetClosestPeers: { ...walk, answered: walkOk, lookups: WALKS },
      whoisP50OverWalkP50: Number(((whois.p50Ms as number) / (walk.p50Ms as number)).toFixed(3)),
      memory: { rssMiB: rate((rssAfter - rssBefore) / 2 ** 20), perNodeMiB: Number(((rssAfter - rssBefore) / 2 ** 20 / n).toFixed(2)) }
    }
  } finally {
    progress('stopping the nodes')
    const stopStarted = performance.now()
    await Promise.all([...clients.map((c) => c.node), ...supernodes].map(async (node) => await node.stop().catch(() => {})))
    progress(`stopped in ${Math.round(performance.now() - stopStarted)} ms`)
  }
}

const results = []
for (const n of sizes.length > 0 ? sizes : [50]) results.push(await simulate(n))
process.stdout.write(`${JSON.stringify({ bench: 'lookup', transport: 'memory', note: 'one process, all nodes on 2 cores', results })}\n`)
process.exit(0)
