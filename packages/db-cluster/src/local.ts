import { existsSync } from 'node:fs'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { PostgresServer } from '@parley/db'
import { Bouncer } from './bouncer.ts'
import { type ClusterSpec, ensureDatabase, initCluster, isPowerOfTwo } from './cluster.ts'
import { EventConsumer } from './consumer.ts'
import { type RunningPgqd, startPgqd } from './pgqd.ts'
import { type SplitResult, splitCluster } from './split.ts'

/** A cluster on this machine: one PostgreSQL server per partition (so one can fail alone), one for the proxy and internal databases. */
export interface LocalClusterFile {
  spec: ClusterSpec
  /** Server folders, by role: "main", "p0", "p1", ... */
  servers: Record<string, string>
}

export const CLUSTER_FILE = 'cluster.json'

export async function readClusterFile(dir: string): Promise<LocalClusterFile | undefined> {
  const path = join(dir, CLUSTER_FILE)
  if (!existsSync(path)) return undefined
  return JSON.parse(await readFile(path, 'utf8')) as LocalClusterFile
}

export async function writeClusterFile(dir: string, file: LocalClusterFile): Promise<void> {
  const path = join(dir, CLUSTER_FILE)
  await writeFile(`${path}.tmp`, `${JSON.stringify(file, null, 2)}\n`)
  await rename(`${path}.tmp`, path)
}

export interface LocalClusterInit {
  dir: string
  /** For a new cluster: a power of two. An existing one keeps its own. */
  partitions?: number
  /** Extra settings for every server (tests: fsync off). */
  settings?: Record<string, string>
}

export interface LocalCluster {
  dir: string
  /** The PgQ consumer and ticker, following the partitions in cluster.json (a split adds some). */
  events: ClusterEvents
  /** pgBouncer in front of the proxy: what the login server's --db takes. */
  url: string
  spec: ClusterSpec
  servers: Map<string, PostgresServer>
  bouncer: Bouncer
  stop(): Promise<void>
}

export function serverFor(dir: string, role: string, settings?: Record<string, string>): PostgresServer {
  return new PostgresServer({ dir: join(dir, 'servers', role), ...(settings === undefined ? {} : { settings }) })
}

/**
 * Starts a local cluster in `dir`, making it on first start: servers, the
 * partition, proxy and internal databases, and pgBouncer. A second start
 * resumes with everything kept.
 */
export async function startLocalCluster(init: LocalClusterInit): Promise<LocalCluster> {
  let file = await readClusterFile(init.dir)
  const servers = new Map<string, PostgresServer>()
  const stopAll = async (): Promise<void> => {
    await Promise.all([...servers.values()].map(async (s) => await s.stop()))
  }
  try {
    if (file === undefined) {
      const count = init.partitions ?? 4
      if (!isPowerOfTwo(count)) throw new Error('--partitions must be a power of two')
      const roles = ['main', ...Array.from({ length: count }, (_, i) => `p${i}`)]
      for (const role of roles) servers.set(role, serverFor(init.dir, role, init.settings))
      await Promise.all([...servers.values()].map(async (s) => await s.start()))
      const spec = await initCluster({
        partitions: count,
        servers: roles.slice(1).map((r) => servers.get(r)?.url() as string),
        proxyServer: servers.get('main')?.url() as string
      })
      file = { spec, servers: Object.fromEntries(roles.map((r) => [r, join('servers', r)])) }
      await writeClusterFile(init.dir, file)
    } else {
      for (const [role, rel] of Object.entries(file.servers)) {
        servers.set(
          role,
          new PostgresServer({ dir: join(init.dir, rel), ...(init.settings === undefined ? {} : { settings: init.settings }) })
        )
      }
      await Promise.all([...servers.values()].map(async (s) => await s.start()))
    }
  } catch (err) {
    await stopAll()
    throw err
  }
  const bouncer = new Bouncer({ dir: join(init.dir, 'bouncer'), proxyUrl: file.spec.proxy })
  try {
    await bouncer.start()
  } catch (err) {
    await stopAll()
    throw err
  }
  const events = new ClusterEvents(init.dir, file.spec)
  try {
    await events.start()
  } catch (err) {
    await bouncer.stop()
    await stopAll()
    throw err
  }
  const cluster: LocalCluster = {
    dir: init.dir,
    events,
    url: bouncer.url,
    spec: file.spec,
    servers,
    bouncer,
    async stop() {
      await events.stop()
      await bouncer.stop()
      // Servers a split added since are in the file now.
      const latest = await readClusterFile(init.dir)
      for (const [role, rel] of Object.entries(latest?.servers ?? {})) {
        if (!servers.has(role)) servers.set(role, new PostgresServer({ dir: join(init.dir, rel) }))
      }
      await stopAll()
    }
  }
  return cluster
}

/**
 * Doubles a local cluster's partitions: a new server for each new partition,
 * then `splitCluster`. A running `db cluster up` keeps serving throughout and
 * picks the new partitions up from cluster.json.
 */
export async function splitLocalCluster(init: {
  dir: string
  settings?: Record<string, string>
  progress?: (message: string) => void
}): Promise<SplitResult> {
  const file = await readClusterFile(init.dir)
  if (file === undefined) throw new Error(`no cluster in ${init.dir}: start one with "parley db cluster up"`)
  const n = file.spec.partitions.length
  const roles = Array.from({ length: n }, (_, i) => `p${n + i}`)
  const databases: string[] = []
  for (const role of roles) {
    const server = serverFor(init.dir, role, init.settings)
    await server.start()
    databases.push(await ensureDatabase(server.url(), `parley_${role}`))
  }
  const result = await splitCluster({
    spec: file.spec,
    newDatabases: databases,
    ...(init.progress === undefined ? {} : { progress: init.progress })
  })
  await writeClusterFile(init.dir, {
    spec: result.spec,
    servers: { ...file.servers, ...Object.fromEntries(roles.map((r) => [r, join('servers', r)])) }
  })
  return result
}

/**
 * The events of a local cluster: one pgqd per partition server makes the
 * ticks, an EventConsumer records them in the internal database. Watches
 * cluster.json and takes new partitions on after a split.
 */
export class ClusterEvents {
  readonly #dir: string
  #spec: ClusterSpec
  #pgqd: RunningPgqd | undefined
  #consumer: EventConsumer | undefined
  #watch: ReturnType<typeof setInterval> | undefined
  #busy: Promise<void> = Promise.resolve()

  constructor(dir: string, spec: ClusterSpec) {
    this.#dir = dir
    this.#spec = spec
  }

  get consumer(): EventConsumer | undefined {
    return this.#consumer
  }

  async start(): Promise<void> {
    await this.#startFor(this.#spec)
    this.#watch = setInterval(() => {
      this.#busy = this.#busy.then(async () => await this.#follow()).catch(() => {})
    }, 1000)
    this.#watch.unref()
  }

  async #startFor(spec: ClusterSpec): Promise<void> {
    this.#spec = spec
    this.#pgqd = await startPgqd({ databases: spec.partitions.map((p) => p.url) })
    this.#consumer = new EventConsumer({
      partitions: spec.partitions.map((p) => ({ name: p.name, url: p.url })),
      internalUrl: spec.internal
    })
    await this.#consumer.start()
  }

  async #stopRunning(): Promise<void> {
    await this.#consumer?.stop()
    await this.#pgqd?.stop()
    this.#consumer = undefined
    this.#pgqd = undefined
  }

  async #follow(): Promise<void> {
    const latest = (await readClusterFile(this.#dir))?.spec
    if (latest === undefined || latest.partitions.length === this.#spec.partitions.length) return
    await this.#stopRunning()
    await this.#startFor(latest)
  }

  async stop(): Promise<void> {
    if (this.#watch !== undefined) clearInterval(this.#watch)
    this.#watch = undefined
    await this.#busy
    await this.#stopRunning()
  }
}
