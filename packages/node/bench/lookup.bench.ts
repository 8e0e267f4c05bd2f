// Directory lookups on libp2p's memory transport, every node in this one process:
// Parley's whois against libp2p's own findPeer, in networks of 50 and 300 nodes
// (a tenth of them supernodes). 1,000 nodes on request (long: several minutes):
//   node packages/node/bench/lookup.bench.ts 50 300 1000     or   LOOKUP_SIZES=1000 npm run bench -- lookup
// One JSON object on stdout, progress on stderr.
import { peerIdFromString } from '@libp2p/peer-id'
import { ms, percentile, progressFor, rate, testNetwork } from '@parley/testing'
import { buildSimulation, type SimClient } from '../test/simulation-network.ts'

const progress = progressFor('lookup')
const LOOKUPS = 1000
const FIND_PEERS = 100
const DEFAULT_SIZES = [50, 300]

const requested = [...process.argv.slice(2), ...(process.env.LOOKUP_SIZES ?? '').split(',')]
  .map((s) => Number(s.trim()))
  .filter((n) => Number.isInteger(n) && n >= 10)
const sizes = requested.length > 0 ? [...new Set(requested)] : DEFAULT_SIZES

const pick = <T>(items: T[]): T => items[Math.floor(Math.random() * items.length)] as T

function stats(times: number[]): { count: number; p50Ms: number; p90Ms: number; p99Ms: number; maxMs: number } {
  const sorted = [...times].sort((a, b) => a - b)
  return {
    count: sorted.length,
    p50Ms: ms(percentile(sorted, 50)),
    p90Ms: ms(percentile(sorted, 90)),
    p99Ms: ms(percentile(sorted, 99)),
    maxMs: ms(sorted.at(-1) ?? Number.NaN)
  }
}

async function simulate(n: number): Promise<Record<string, unknown>> {
  const superCount = Math.max(3, Math.round(n / 10))
  const rssBefore = process.memoryUsage().rss
  const sim = await buildSimulation(testNetwork(), { nodes: n, supernodes: superCount, progress })
  try {
    const { clients } = sim
    const publishTimes: number[] = []
    let replicas = 0
    for (const c of clients) {
      const t = performance.now()
      replicas += (await c.node.records.publish({ addrs: c.node.addresses, presence: 'online' })).stored
      publishTimes.push(performance.now() - t)
    }
    progress(`${clients.length} records published; ${LOOKUPS} whois lookups`)

    const whoisTimes: number[] = []
    const hops = new Map<number, number>()
    let found = 0
    for (let i = 0; i < LOOKUPS; i++) {
      const asker = pick(clients)
      const target = pick(clients)
      const t = performance.now()
      const result = await asker.node.records.whois(target.name)
      whoisTimes.push(performance.now() - t)
      hops.set(result.hops, (hops.get(result.hops) ?? 0) + 1)
      if (result.devices.some((d) => d.peerId === target.node.peerId)) found++
    }

    // libp2p's own lookup in the same network: findPeer for another client's peer id. Made fair:
    // findPeer answers at once from the asker's peer store (or routing table) when it knows the
    // peer, so the asker is a client with no connection to the target, the target's peer-store
    // entry is deleted first (an earlier walk's answers may have added it), and useCache: false
    // makes the DHT skip its local lookup. Every findPeer below is a walk of the DHT.
    progress(`${FIND_PEERS} libp2p findPeer walks`)
    const findTimes: number[] = []
    let located = 0
    for (let i = 0; i < FIND_PEERS; i++) {
      let asker: SimClient
      let target: SimClient
      do {
        asker = pick(clients)
        target = pick(clients)
      } while (asker === target || asker.node.libp2p.getConnections(target.node.libp2p.peerId).length > 0)
      const id = peerIdFromString(target.node.peerId)
      await asker.node.libp2p.peerStore.delete(id)
      const t = performance.now()
      try {
        const peer = await asker.node.libp2p.peerRouting.findPeer(id, { signal: AbortSignal.timeout(10_000), useCache: false })
        if (peer.id.equals(id) && peer.multiaddrs.length > 0) located++
      } catch {
        // Not found (or timed out): counted as such.
      }
      findTimes.push(performance.now() - t)
      if (i < 3 || i % 25 === 0) progress(`findPeer ${i}: ${Math.round(performance.now() - t)} ms`)
    }

    const rssAfter = process.memoryUsage().rss
    const whois = stats(whoisTimes)
    const findPeer = stats(findTimes)
    const hopCount = [...hops].reduce((sum, [h, k]) => sum + h * k, 0)
    return {
      nodes: n,
      supernodes: superCount,
      buildMs: Math.round(sim.buildMs),
      publish: { ...stats(publishTimes), meanReplicas: Number((replicas / clients.length).toFixed(2)) },
      whois: {
        ...whois,
        found,
        successRate: Number((found / LOOKUPS).toFixed(4)),
        meanHops: Number((hopCount / LOOKUPS).toFixed(2)),
        hops: Object.fromEntries([...hops].sort((a, b) => a[0] - b[0]))
      },
      libp2pFindPeer: { ...findPeer, found: located, successRate: Number((located / FIND_PEERS).toFixed(4)) },
      whoisOverFindPeer: { p50: Number((whois.p50Ms / findPeer.p50Ms).toFixed(3)), p99: Number((whois.p99Ms / findPeer.p99Ms).toFixed(3)) },
      memory: { rssMiB: rate((rssAfter - rssBefore) / 2 ** 20), perNodeMiB: Number(((rssAfter - rssBefore) / 2 ** 20 / n).toFixed(2)) }
    }
  } finally {
    progress('stopping the nodes')
    const stopStarted = performance.now()
    await sim.stop()
    progress(`stopped in ${Math.round(performance.now() - stopStarted)} ms`)
  }
}

const results = []
for (const n of sizes) {
  results.push(await simulate(n))
  progress(`result: ${JSON.stringify(results.at(-1))}`)
}
process.stdout.write(
  `${JSON.stringify({
    bench: 'lookup',
    transport: 'memory',
    note: 'one process, every node on the same cores; whois asks a linked supernode, findPeer walks the DHT from the asking client',
    lookups: LOOKUPS,
    findPeers: FIND_PEERS,
    results
  })}\n`
)
process.exit(0)
