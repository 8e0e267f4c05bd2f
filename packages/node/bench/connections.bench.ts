// Connections per supernode (issue 3): one supernode process on loopback TCP; client
// nodes (real libp2p nodes, a device key and a credential each, many per worker
// process) connect to it and complete the hello until LEVELS connections are held.
// Reports the supernode's resident memory (VmRSS) idle and at each level, the memory
// per connection, the time to reach each level, and whether the connections stay up.
//
// The supernode is `parley supernode` as shipped, the clients as shipped too (libp2p's
// connection monitor pings each connection every 10 s and closes it when a ping is
// 5 s late). Where the run stops short of the last level, it is run again with one
// thing changed, and both are reported:
//  - the supernode refused connections at maxConnections: the same startDaemon in
//    bench/daemon-host.ts with only maxConnections raised at run time;
//  - else (the connections collapsed: pings late because the workers' event loops,
//    each shared by ~1,250 nodes on a busy machine, stall for seconds): a new
//    `parley supernode` with quiet clients (their connection monitors stopped).
// A collapse (held connections falling under half their peak) halts the joins.
//   node packages/node/bench/connections.bench.ts [LEVEL ...]     default 2000 5000
import { type ChildProcess, fork } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { generateKeyPair } from '@parley/crypto'
import { toBase64Url } from '@parley/protocol'
import { progressFor, rate, startRole, testNetwork } from '@parley/testing'
import {
  cpuSeconds,
  ERROR_LOG_ENV,
  ErrorLines,
  grantFor,
  makeProfile,
  mib,
  openFileLimit,
  procMemory,
  REFUSALS_LOG_ENV,
  sleep,
  socketCount,
  startScript,
  writeNetworkFile
} from './support.ts'

const progress = progressFor('connections')
const WORKERS = 4
/**
 * Dials in flight per worker. libp2p refuses an inbound connection while
 * maxIncomingPendingConnections (default 10) are being upgraded: 4 x 2 stays under it.
 */
const CONCURRENCY = 2
/** A failed join is tried again (a new node) this often. */
const RETRIES = 2
/** How long the last level is held, watching for dropped connections. */
const HOLD_SECONDS = 30
/** Let the supernode settle (identify, DHT, garbage) before its memory is read. */
const SETTLE_MS = 5_000
/** At each level, the supernode's CPU use is read over this long with no joins (what holding the connections costs). */
const IDLE_WINDOW_MS = 20_000
/** How often the timeline is sampled. */
const TIMELINE_MS = 10_000
/** The maxConnections the raised supernode gets. */
const RAISED_MAX = 20_000
const HOST = fileURLToPath(new URL('./daemon-host.ts', import.meta.url))
const WORKER = fileURLToPath(new URL('./connections-worker.ts', import.meta.url))

const levels = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => Number.isInteger(n) && n > 0)
  .sort((a, b) => a - b)
const LEVELS = levels.length > 0 ? levels : [2000, 5000]

const network = testNetwork()
const trustedKeys = network.trustedKeys.map((k) => ({
  id: k.id,
  publicKey: typeof k.publicKey === 'string' ? k.publicKey : toBase64Url(k.publicKey)
}))
let clientCount = 0
function newClients(n: number): Array<{ seed: string; credential: string }> {
  return Array.from({ length: n }, () => {
    const device = generateKeyPair()
    return { seed: toBase64Url(device.seed), credential: grantFor(network, device, `conn_user_${clientCount++}`).credential }
  })
}

type Reply = Record<string, unknown> & { type: string }

/** The client worker processes: each runs a share of the client nodes. */
class Workers {
  readonly #children: ChildProcess[] = []
  readonly #replies = new Map<ChildProcess, Reply[]>()
  readonly #waiting = new Map<ChildProcess, Array<{ type: string; resolve: (r: Reply) => void }>>()
  /** libp2p's error-level log lines of the client nodes. */
  readonly errorLines = new ErrorLines()

  async start(): Promise<void> {
    await Promise.all(
      Array.from({ length: WORKERS }, async () => {
        // The worker's stdout goes to our stderr: stdout carries only the result. Its stderr is libp2p's error log, counted.
        const child = fork(WORKER, [], { stdio: ['ignore', 2, 'pipe', 'ipc'], env: { ...process.env, ...ERROR_LOG_ENV } })
        createInterface({ input: child.stderr! }).on('line', (line) => this.errorLines.add(line))
        this.#children.push(child)
        this.#replies.set(child, [])
        this.#waiting.set(child, [])
        child.on('message', (r: Reply) => {
          if (r.type === 'progress') return this.#progress(child, r)
          if (r.type === 'error') progress(`worker ${child.pid}: ${String(r.message)}`)
          const waiting = this.#waiting.get(child)!
          const i = waiting.findIndex((w) => w.type === r.type)
          if (i >= 0) waiting.splice(i, 1)[0]!.resolve(r)
        })
        await this.#next(child, 'ready')
      })
    )
  }

  get pids(): number[] {
    return this.#children.map((c) => c.pid as number)
  }

  readonly #held = new Map<ChildProcess, number>()
  #lastReport = 0
  #progress(child: ChildProcess, r: Reply): void {
    this.#held.set(child, Number(r.held))
    const total = [...this.#held.values()].reduce((a, b) => a + b, 0)
    if (total - this.#lastReport >= 500) {
      this.#lastReport = total
      progress(`${total} connections held`)
    }
  }

  async #next(child: ChildProcess, type: string): Promise<Reply> {
    return await new Promise((resolve) => this.#waiting.get(child)!.push({ type, resolve }))
  }

  /** No more joins (after a collapse). */
  halt(): void {
    for (const child of this.#children) child.send({ type: 'halt' })
  }

  /** Adds `n` clients, spread over the workers; resolves when every worker is done. */
  async join(
    target: string,
    n: number,
    retries: number,
    quiet: boolean
  ): Promise<{ held: number; added: number; failed: number; retried: number; errors: Record<string, number> }> {
    const replies = await Promise.all(
      this.#children.map(async (child, w) => {
        const share = Math.floor(n / WORKERS) + (w < n % WORKERS ? 1 : 0)
        const done = this.#next(child, 'joined')
        child.send({ type: 'join', target, trustedKeys, clients: newClients(share), concurrency: CONCURRENCY, retries, quiet })
        return await done
      })
    )
    const errors: Record<string, number> = {}
    for (const r of replies) for (const [k, v] of Object.entries(r.errors as Record<string, number>)) errors[k] = (errors[k] ?? 0) + v
    const sum = (key: string): number => replies.reduce((a, r) => a + Number(r[key]), 0)
    return { held: sum('held'), added: sum('added'), failed: sum('failed'), retried: sum('retried'), errors }
  }

  async status(): Promise<{ held: number; connected: number; disconnects: number; workersRssMiB: number[]; loopDelayMaxMs: number }> {
    const replies = await Promise.all(
      this.#children.map(async (child) => {
        const r = this.#next(child, 'status')
        child.send({ type: 'status' })
        return await r
      })
    )
    const sum = (key: string): number => replies.reduce((a, r) => a + Number(r[key]), 0)
    return {
      held: sum('held'),
      connected: sum('connected'),
      disconnects: sum('disconnects'),
      workersRssMiB: replies.map((r) => mib(Number(r.rss))),
      loopDelayMaxMs: Math.max(...replies.map((r) => Number(r.loopDelayMaxMs)))
    }
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.#children.map(async (child) => {
        if (child.exitCode !== null) return
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.send({ type: 'stop' })
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
        await exited
        clearTimeout(timer)
      })
    )
  }
}

/** A process's CPU use over `ms` from now, % of one core. */
async function cpuPercentOver(pid: number, ms: number): Promise<number> {
  const before = await cpuSeconds(pid)
  const started = performance.now()
  await sleep(ms)
  return rate((((await cpuSeconds(pid)) - before) * 100_000) / (performance.now() - started))
}

interface SupernodeUnderTest {
  pid: number
  target: string
  /** Stats from inside (only the bench-side host answers them). */
  stats?: () => Promise<Record<string, unknown>>
  /** Its stderr so far (libp2p's error log). */
  stderr(): string
  stop(): Promise<unknown>
}

/**
 * Grows the connections to LEVELS, reading the supernode's memory at each, then
 * holds the last level. Stops growing where the supernode refuses connections.
 */
async function grow(supernode: SupernodeUnderTest, quiet: boolean): Promise<Record<string, unknown>> {
  const { pid, target } = supernode
  const workers = new Workers()
  try {
    const files = await openFileLimit(pid)
    const needed = (LEVELS.at(-1) as number) + 200
    if (files.soft < needed) throw new Error(`the supernode may open ${files.soft} files, needs ${needed}: raise ulimit -n`)
    await workers.start()
    await sleep(SETTLE_MS)
    const idleCpuPercent = await cpuPercentOver(pid, IDLE_WINDOW_MS)
    const idle = await procMemory(pid)
    const idleStats = await supernode.stats?.()
    progress(`supernode pid ${pid}: idle ${idle.rssMiB} MiB`)
    const started = performance.now()
    // Every TIMELINE_MS: [seconds, connections the clients hold, supernode sockets, dropped so far, supernode CPU %, supernode RSS MiB,
    // workers' CPU %, the workers' longest event-loop delay ms].
    const timeline: number[][] = []
    const workersCpu = async (): Promise<number> => (await Promise.all(workers.pids.map(cpuSeconds))).reduce((a, b) => a + b, 0)
    let last = { t: started, cpu: await cpuSeconds(pid), workers: await workersCpu() }
    let sampling = false
    let peak = 0
    let collapse: { atSeconds: number; peakHeld: number; held: number } | undefined
    const sampler = setInterval(() => {
      if (sampling) return
      sampling = true
      void (async () => {
        const [status, sockets, cpu, memory, clientsCpu] = await Promise.all([
          workers.status(),
          socketCount(pid),
          cpuSeconds(pid),
          procMemory(pid),
          workersCpu()
        ])
        const t = performance.now()
        timeline.push([
          Math.round((t - started) / 1000),
          status.connected,
          sockets,
          status.disconnects,
          Math.round(((cpu - last.cpu) * 100_000) / (t - last.t)),
          memory.rssMiB,
          Math.round(((clientsCpu - last.workers) * 100_000) / (t - last.t)),
          status.loopDelayMaxMs
        ])
        last = { t, cpu, workers: clientsCpu }
        peak = Math.max(peak, status.connected)
        if (collapse === undefined && peak >= 500 && status.connected < peak / 2) {
          collapse = { atSeconds: Math.round((t - started) / 1000), peakHeld: peak, held: status.connected }
          progress(`collapse: ${status.connected} connections held, down from ${peak}; no more joins`)
          workers.halt()
        }
      })()
        .catch(() => {})
        .finally(() => {
          sampling = false
        })
    }, TIMELINE_MS)
    const results: Array<Record<string, unknown>> = []
    let held = 0
    let stoppedAt: number | undefined
    for (const level of LEVELS) {
      const stepStarted = performance.now()
      const cpuBefore = await cpuSeconds(pid)
      const joined = await workers.join(target, level - held, RETRIES, quiet)
      const reachedMs = performance.now() - started
      const stepMs = performance.now() - stepStarted
      const cpuUsed = (await cpuSeconds(pid)) - cpuBefore
      const asked = level - held
      const added = joined.added
      progress(`level ${level}: ${joined.held} joined after ${Math.round(reachedMs)} ms (${joined.failed} failed); settling`)
      await sleep(SETTLE_MS)
      const idleCpuPercent = await cpuPercentOver(pid, IDLE_WINDOW_MS)
      const memory = await procMemory(pid)
      const stats = await supernode.stats?.()
      const status = await workers.status()
      const sockets = await socketCount(pid)
      const connections = stats === undefined ? status.connected : Number(stats.verifiedPeers)
      // The next level tops up from what is held now (connections lost on the way are replaced).
      held = status.connected
      results.push({
        level,
        held: status.connected,
        supernodeSockets: sockets,
        ...(stats === undefined ? {} : { supernodeConnections: stats.connections, supernodeVerifiedPeers: stats.verifiedPeers }),
        reachedMs: Math.round(reachedMs),
        joinsPerSecond: rate((added * 1000) / stepMs),
        supernodeCpuMsPerJoin: rate((cpuUsed * 1000) / Math.max(1, added + joined.retried + joined.failed)),
        droppedSinceStart: status.disconnects,
        failed: joined.failed,
        retried: joined.retried,
        errors: joined.errors,
        supernodeRssMiB: memory.rssMiB,
        supernodeRssPeakMiB: memory.hwmMiB,
        supernodeIdleCpuPercent: idleCpuPercent,
        rssPerConnectionKiB: rate(((memory.rssMiB - idle.rssMiB) * 1024) / Math.max(1, connections)),
        ...(stats === undefined || idleStats === undefined
          ? {}
          : {
              supernodeHeapUsedAfterGcMiB: mib(Number(stats.heapUsedAfterGc)),
              heapPerConnectionKiB: rate(
                (Number(stats.heapUsedAfterGc) - Number(idleStats.heapUsedAfterGc)) / 1024 / Math.max(1, connections)
              )
            }),
        workersRssMiB: status.workersRssMiB
      })
      // Short of the level (refused, or collapsed): the next level is pointless.
      if (status.connected < 0.9 * level || collapse !== undefined) {
        stoppedAt = status.connected
        progress(`${status.connected} connections held (${added} of ${asked} joined): not going further`)
        break
      }
    }
    progress(`holding ${held} connections for ${HOLD_SECONDS} s`)
    const before = await workers.status()
    const cpuBefore = await cpuSeconds(pid)
    await sleep(HOLD_SECONDS * 1000)
    const cpuUsed = (await cpuSeconds(pid)) - cpuBefore
    const after = await workers.status()
    const stats = await supernode.stats?.()
    const memory = await procMemory(pid)
    clearInterval(sampler)
    const errorLog = { supernode: supernodeErrors(supernode), clients: workers.errorLines.top() }
    return {
      clients: quiet ? 'quiet (connection monitors stopped)' : 'as shipped (connection monitor on)',
      openFileLimit: files,
      stoppedShortAt: stoppedAt ?? null,
      collapse: collapse ?? null,
      refusedAtMaxConnections: (errorLog.supernode.refusedMaxConnections as number) > 0,
      idle: {
        rssMiB: idle.rssMiB,
        cpuPercent: idleCpuPercent,
        ...(idleStats === undefined ? {} : { heapUsedAfterGcMiB: mib(Number(idleStats.heapUsedAfterGc)) })
      },
      levels: results,
      hold: {
        seconds: HOLD_SECONDS,
        heldAtStart: before.connected,
        heldAtEnd: after.connected,
        droppedDuringHold: after.disconnects - before.disconnects,
        droppedSinceStart: after.disconnects,
        supernodeSocketsAtEnd: await socketCount(pid),
        ...(stats === undefined ? {} : { supernodeVerifiedPeersAtEnd: stats.verifiedPeers }),
        supernodeCpuPercent: rate((cpuUsed / HOLD_SECONDS) * 100),
        supernodeRssMiBAtEnd: memory.rssMiB
      },
      errorLog,
      timeline: {
        columns: [
          'seconds',
          'heldByClients',
          'supernodeSockets',
          'droppedSoFar',
          'supernodeCpuPercent',
          'supernodeRssMiB',
          'workersCpuPercent',
          'workersLoopDelayMaxMs'
        ],
        rows: timeline
      }
    }
  } finally {
    progress('stopping the clients and the supernode')
    await workers.stop()
    await supernode.stop()
  }
}

function supernodeErrors(supernode: SupernodeUnderTest): Record<string, unknown> {
  const lines = new ErrorLines()
  lines.add(supernode.stderr())
  return lines.top()
}

/** `parley supernode`, as shipped. */
async function shipped(dir: string, netFile: string, quiet: boolean): Promise<Record<string, unknown>> {
  const data = join(dir, quiet ? 'quiet' : 'shipped')
  await makeProfile(data, network, quiet ? 'bench_super_quiet' : 'bench_super_shipped', netFile)
  const role = await startRole(['supernode', '--data', data, '--network', netFile], { env: { ...process.env, ...REFUSALS_LOG_ENV } })
  supernodes.add(role.child)
  return {
    supernode: 'parley supernode',
    ...(await grow(
      {
        pid: role.child.pid as number,
        target: (role.ready.addrs as string[])[0] as string,
        stderr: () => role.stderr(),
        stop: async () => {
          await role.stop()
          supernodes.delete(role.child)
        }
      },
      quiet
    ))
  }
}

/** The same startDaemon in bench/daemon-host.ts, with maxConnections raised at run time. */
async function raised(dir: string, netFile: string): Promise<Record<string, unknown>> {
  const data = join(dir, 'raised')
  await makeProfile(data, network, 'bench_super_raised', netFile)
  const host = await startScript(HOST, ['supernode', data, netFile, String(RAISED_MAX)], {
    nodeArgs: ['--expose-gc'],
    env: { ...process.env, ...REFUSALS_LOG_ENV }
  })
  supernodes.add(host.child)
  return {
    supernode: 'bench/daemon-host.ts: startDaemon as in `parley supernode`, connectionManager.setMaxConnections at run time',
    configuredMaxConnections: host.ready.defaultMaxConnections,
    maxConnections: host.ready.maxConnections,
    ...(await grow(
      {
        pid: host.pid,
        target: (host.ready.addrs as string[])[0] as string,
        stats: async () => await host.ask('stats', 'stats'),
        stderr: () => host.stderr(),
        stop: async () => {
          await host.stop()
          supernodes.delete(host.child)
        }
      },
      false
    ))
  }
}

/** Supernode processes running, killed if the bench is stopped (the workers exit with their parent). */
const supernodes = new Set<ChildProcess>()
const dir = await mkdtemp(join(tmpdir(), 'parley-bench-conn-'))
const exit = (): void => {
  for (const child of supernodes) child.kill('SIGKILL')
  void rm(dir, { recursive: true, force: true }).finally(() => process.exit(130))
}
process.once('SIGTERM', exit)
process.once('SIGINT', exit)
try {
  const netFile = await writeNetworkFile(join(dir, 'net.json'), network)
  const shippedResult = await shipped(dir, netFile, false)
  // Only when the shipped run stopped short: again with the supernode's limit raised, or with quiet clients.
  const short = shippedResult.stoppedShortAt !== null
  const raisedResult = short && shippedResult.refusedAtMaxConnections === true ? await raised(dir, netFile) : null
  const quietResult = short && raisedResult === null ? await shipped(dir, netFile, true) : null
  process.stdout.write(
    `${JSON.stringify({
      bench: 'connections',
      transport: 'tcp loopback',
      workers: WORKERS,
      dialsInFlight: WORKERS * CONCURRENCY,
      note: 'supernode, 4 client worker processes and the bench share 2 cores; the clients listen on loopback and run full ParleyNodes (DHT client, records)',
      shipped: shippedResult,
      raised: raisedResult,
      quietClients: quietResult
    })}\n`
  )
} finally {
  await rm(dir, { recursive: true, force: true })
}
process.exit(0)
