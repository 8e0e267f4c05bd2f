// Lookup latency on loopback TCP (issue 3): NODES nodes of which SUPERNODES are real
// `parley supernode` processes (each seeded with the ones before it); the other
// nodes are client ParleyNodes in this process, on TCP, each attached to 3 of the
// supernodes (rotating, as different host caches would) with its record published.
// Then LOOKUPS whois lookups one after another (a random asker for a random user),
// and CONCURRENT_LOOKUPS more with CONCURRENCY in flight. Aims: p50 <= 10 ms, p99 <= 50 ms.
// For scale, PINGS libp2p pings from clients to a supernode they are connected to.
//   node packages/node/bench/loopback-lookup.bench.ts [NODES]       default 100
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@parley/crypto'
import { ms, percentile, progressFor, type RunningRole, startRole, testNetwork } from '@parley/testing'
import { ParleyNode } from '../src/index.ts'
import { grantFor, makeProfile, procMemory, writeNetworkFile } from './support.ts'

const progress = progressFor('loopback-lookup')
const SUPERNODES = 5
const NODES = Number(process.argv[2] ?? 100)
/** Supernodes each client is attached to (the daemon's default target). */
const LINKS = 3
const WARMUP = 50
const LOOKUPS = 1000
const CONCURRENT_LOOKUPS = 500
const CONCURRENCY = 10
const PINGS = 300

const network = testNetwork()
const roles = new Set<RunningRole>()
const clients: Array<{ node: ParleyNode; name: string }> = []
const dir = await mkdtemp(join(tmpdir(), 'parley-bench-lookup-'))
process.once('SIGTERM', () => void cleanUp().finally(() => process.exit(130)))
process.once('SIGINT', () => void cleanUp().finally(() => process.exit(130)))

async function cleanUp(): Promise<void> {
  await Promise.all(clients.map(async (c) => await c.node.stop().catch(() => {})))
  clients.length = 0
  await Promise.all([...roles].map(async (r) => await r.stop().catch(() => null)))
  roles.clear()
  await rm(dir, { recursive: true, force: true })
}

function stats(times: number[]): Record<string, number> {
  const sorted = [...times].sort((a, b) => a - b)
  return {
    count: sorted.length,
    p50Ms: ms(percentile(sorted, 50)),
    p90Ms: ms(percentile(sorted, 90)),
    p99Ms: ms(percentile(sorted, 99)),
    maxMs: ms(sorted.at(-1) as number)
  }
}

const pick = <T>(list: T[]): T => list[Math.floor(Math.random() * list.length)] as T

/** One whois of a random user by a random asker: its time, whether the user's device was found, and its hops. */
async function lookup(): Promise<{ ms: number; found: boolean; hops: number }> {
  const asker = pick(clients)
  const target = pick(clients)
  const t = performance.now()
  const result = await asker.node.records.whois(target.name)
  return { ms: performance.now() - t, found: result.devices.some((d) => d.peerId === target.node.peerId), hops: result.hops }
}

try {
  const superAddrs: string[] = []
  const superIds = new Set<string>()
  for (let i = 0; i < SUPERNODES; i++) {
    const data = join(dir, `super${i}`)
    const file = await writeNetworkFile(join(dir, `net-super${i}.json`), network, [...superAddrs])
    await makeProfile(data, network, `bench_super_${i}`, file)
    const role = await startRole(['supernode', '--data', data, '--network', file])
    roles.add(role)
    superAddrs.push((role.ready.addrs as string[])[0] as string)
    superIds.add(String(role.ready.peerId))
  }
  progress(`${SUPERNODES} supernodes up; ${NODES - SUPERNODES} clients joining`)
  const buildStarted = performance.now()
  for (let i = 0; i < NODES - SUPERNODES; i++) {
    const device = generateKeyPair()
    const name = `lookup_user_${i}`
    const { credential } = grantFor(network, device, name)
    const node = await ParleyNode.create({
      role: 'client',
      deviceSeed: device.seed,
      trustedKeys: network.trustedKeys,
      credential: () => credential,
      privateAddresses: true
    })
    await node.start()
    clients.push({ node, name })
    for (let k = 0; k < LINKS; k++) {
      const outcome = await node.connect(superAddrs[(i + k) % SUPERNODES] as string, { signal: AbortSignal.timeout(10_000) })
      if (!outcome.ok) throw new Error(`${name} could not join: ${outcome.reason}`)
    }
  }
  const buildMs = performance.now() - buildStarted
  progress(`built in ${Math.round(buildMs)} ms; publishing`)
  let replicas = 0
  for (const c of clients) replicas += (await c.node.records.publish({ addrs: c.node.addresses, presence: 'online' })).stored

  progress(`${WARMUP} warm-up lookups, then ${LOOKUPS} one at a time`)
  for (let i = 0; i < WARMUP; i++) await lookup()
  const sequential: number[] = []
  let found = 0
  const hops: Record<number, number> = {}
  for (let i = 0; i < LOOKUPS; i++) {
    const r = await lookup()
    sequential.push(r.ms)
    if (r.found) found++
    hops[r.hops] = (hops[r.hops] ?? 0) + 1
  }

  // For scale: libp2p's ping to a supernode the client is connected to (a new stream and one round trip).
  progress(`${PINGS} pings`)
  const pings: number[] = []
  for (let i = 0; i < PINGS; i++) {
    const c = clients[i % clients.length]!
    const connection = c.node.libp2p.getConnections().find((x) => superIds.has(x.remotePeer.toString()))!
    const t = performance.now()
    await c.node.libp2p.services.ping.ping(connection.remotePeer)
    pings.push(performance.now() - t)
  }

  progress(`${CONCURRENT_LOOKUPS} lookups, ${CONCURRENCY} at a time`)
  const concurrent: number[] = []
  let concurrentFound = 0
  let next = 0
  const concurrentStarted = performance.now()
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < CONCURRENT_LOOKUPS) {
        const r = await lookup()
        concurrent.push(r.ms)
        if (r.found) concurrentFound++
      }
    })
  )
  const concurrentMs = performance.now() - concurrentStarted
  const superMemory = await Promise.all([...roles].map(async (r) => (await procMemory(r.child.pid as number)).rssMiB))

  process.stdout.write(
    `${JSON.stringify({
      bench: 'loopback-lookup',
      transport: 'tcp loopback',
      nodes: NODES,
      supernodes: SUPERNODES,
      note: `supernodes are parley supernode processes; the ${NODES - SUPERNODES} clients share this process; 2 cores shared with other work`,
      buildMs: Math.round(buildMs),
      meanReplicas: Number((replicas / clients.length).toFixed(2)),
      whois: { ...stats(sequential), found, successRate: Number((found / LOOKUPS).toFixed(4)), hops },
      ping: stats(pings),
      whoisConcurrent: {
        ...stats(concurrent),
        inFlight: CONCURRENCY,
        perSecond: Math.round((CONCURRENT_LOOKUPS * 1000) / concurrentMs),
        found: concurrentFound,
        successRate: Number((concurrentFound / CONCURRENT_LOOKUPS).toFixed(4))
      },
      aims: { p50Ms: 10, p99Ms: 50 },
      memory: { benchProcessRssMiB: Number((process.memoryUsage().rss / 2 ** 20).toFixed(1)), supernodeRssMiB: superMemory }
    })}\n`
  )
} finally {
  progress('stopping')
  await cleanUp()
}
process.exit(0)
