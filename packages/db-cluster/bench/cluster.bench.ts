// The cluster's transaction rates (issue 8, "Benchmarks"): one local cluster
// with 4 partitions (one PostgreSQL server each, plus "main" for the proxy and
// internal databases, pgBouncer in transaction mode in front of the proxy, pgqd
// and the event consumer running), durable commits (fsync and
// synchronous_commit on). After seeding accounts through the full path, the
// login path's lookup (parley.login_lookup) and registration
// (parley.create_account) are driven by CALLERS concurrent callers over a pool
// of as many connections, side by side in alternating rounds:
//   1. full path: pgBouncer + PL/Proxy (what the login server's --db takes),
//   2. PL/Proxy without pgBouncer (the proxy database directly),
//   3. one partition directly (names that hash to partition 0).
// Then: connections at the partitions while 1,000 clients hold a connection
// open at pgBouncer.
//   node packages/db-cluster/bench/cluster.bench.ts
// Prints one JSON object on stdout; progress goes to stderr.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { createAccount, type Db, findPostgresBin, loginLookup, openPostgres, PostgresServer } from '@parley/db'
import { LIMITS } from '@parley/protocol'
import { ms, percentile, progressFor, rate, tempDir } from '@parley/testing'
import pg from 'pg'
import { Bouncer } from '../src/bouncer.ts'
import type { ClusterSpec } from '../src/cluster.ts'
import { type LocalCluster, startLocalCluster } from '../src/local.ts'

const progress = progressFor('cluster')
const execFileAsync = promisify(execFile)

const PARTITIONS = 4
const SEED_ACCOUNTS = 4_000
const CALLERS = 16
const WARMUP_MS = 500
/** Per path and procedure: ROUNDS rounds of PHASE_MS, the paths taking turns in each round. */
const ROUNDS = 2
const PHASE_MS = 2_000
const IDLE_CLIENTS = 1_000
const CONNECT_BATCH = 100
const CONNECT_TIMEOUT_MS = 5_000
const WINDOW_MS = 60 * 60 * 1000
/** Candidate names hashed for direct registrations on partition 0: about a quarter of them land there. */
const DIRECT_CANDIDATES = 400_000
const SETTINGS = { synchronous_commit: 'on' }
// A well-formed Argon2id PHC string: the procedures store and return it, never check it.
const FAKE_HASH = `$argon2id$v=19$m=19456,t=2,p=1$${randomBytes(16).toString('base64url')}$${randomBytes(32).toString('base64url')}`

const AIM = { lookupsPerSec: 8_000, registrationsPerSec: 3_000, p99Ms: 10, ofDirectPlProxy: 0.5 }

type PathName = 'fullPath' | 'directPlProxy' | 'directPartition'
const PATHS: readonly PathName[] = ['fullPath', 'directPlProxy', 'directPartition']

interface Tally {
  calls: number
  ms: number
  latencies: number[]
}

interface PathResult {
  calls: number
  seconds: number
  perSec: number
  medianMs: number
  p99Ms: number
  maxMs: number
}

/** `callers` callers, one call after another, for `durationMs`; every call's latency goes into `tally`. */
async function drive(call: () => Promise<void>, callers: number, durationMs: number, tally: Tally): Promise<void> {
  const start = performance.now()
  const end = start + durationMs
  let failed = false
  await Promise.all(
    Array.from({ length: callers }, async () => {
      let now = performance.now()
      while (now < end && !failed) {
        const t0 = now
        try {
          await call()
        } catch (err) {
          failed = true
          throw err
        }
        now = performance.now()
        tally.latencies.push(now - t0)
        tally.calls++
      }
    })
  )
  tally.ms += performance.now() - start
}

function summarize(tally: Tally): PathResult {
  const sorted = tally.latencies.toSorted((a, b) => a - b)
  return {
    calls: tally.calls,
    seconds: Number((tally.ms / 1000).toFixed(2)),
    perSec: rate((tally.calls * 1000) / tally.ms),
    medianMs: ms(percentile(sorted, 50)),
    p99Ms: ms(percentile(sorted, 99)),
    maxMs: ms(sorted.at(-1) ?? Number.NaN)
  }
}

/** Warm-up for each path, then ROUNDS rounds in which the paths take turns (drift on the machine hits all alike). */
async function compare(label: string, calls: Record<PathName, () => Promise<void>>): Promise<Record<PathName, PathResult>> {
  for (const path of PATHS) {
    progress(`${label}: warming up ${path}`)
    await drive(calls[path], CALLERS, WARMUP_MS, { calls: 0, ms: 0, latencies: [] })
  }
  const tallies = Object.fromEntries(PATHS.map((p): [PathName, Tally] => [p, { calls: 0, ms: 0, latencies: [] }])) as Record<
    PathName,
    Tally
  >
  for (let round = 0; round < ROUNDS; round++) {
    for (const path of PATHS) {
      progress(`${label}: round ${round + 1}/${ROUNDS}, ${path}, ${CALLERS} callers for ${PHASE_MS} ms`)
      await drive(calls[path], CALLERS, PHASE_MS, tallies[path])
    }
  }
  const results = Object.fromEntries(PATHS.map((p) => [p, summarize(tallies[p])])) as Record<PathName, PathResult>
  progress(`${label}: ${PATHS.map((p) => `${p} ${results[p].perSec}/s p99 ${results[p].p99Ms} ms`).join(', ')}`)
  return results
}

function withRatios(results: Record<PathName, PathResult>, aimPerSec: number): Record<string, unknown> {
  const full = results.fullPath
  const ofDirectPlProxy = Number((full.perSec / results.directPlProxy.perSec).toFixed(3))
  const ofDirectPartition = Number((full.perSec / results.directPartition.perSec).toFixed(3))
  const aimMet = {
    rate: full.perSec >= aimPerSec,
    p99: full.p99Ms < AIM.p99Ms,
    ofDirectPlProxy: ofDirectPlProxy >= AIM.ofDirectPlProxy
  }
  return {
    ...results,
    ratios: { fullPathOfDirectPlProxy: ofDirectPlProxy, fullPathOfDirectPartition: ofDirectPartition },
    aim: { perSec: aimPerSec, p99MsBelow: AIM.p99Ms, ofDirectPlProxyAtLeast: AIM.ofDirectPlProxy },
    aimMet: { ...aimMet, all: aimMet.rate && aimMet.p99 && aimMet.ofDirectPlProxy }
  }
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params?: unknown[]): Promise<T[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<T>(sql, params)).rows
  } finally {
    await client.end()
  }
}

/** Client backends on the server's database behind `url`, other than the one asking. */
async function clientBackends(url: string): Promise<number> {
  const rows = await query<{ n: number }>(
    url,
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()`
  )
  return rows[0]?.n ?? Number.NaN
}

/** The filesystem type the temporary folder lives on (tmpfs would make "durable" meaningless). */
/** pgbench (Debian's postgresql package) against the full path and PL/Proxy alone: transactions/s and mean latency. */
async function runPgbench(spec: ClusterSpec, fullUrl: string, seeded: number): Promise<Record<string, unknown>> {
  const bin = findPostgresBin()
  if (bin === undefined) return { note: 'pgbench not found' }
  const lookup = join(dir, 'pgbench-lookup.sql')
  const register = join(dir, 'pgbench-register.sql')
  await writeFile(
    lookup,
    `\\set n random(0, ${seeded - 1})\nSELECT * FROM parley.login_lookup('seed_' || lpad(:n::text, 5, '0') || '_user', '192.0.2.1', ${WINDOW_MS});\n`
  )
  await writeFile(
    register,
    `\\set n random(1, 2000000000)\nSELECT * FROM parley.create_account('pgbench_' || :n || '_' || :client_id, NULL, NULL, '${FAKE_HASH}');\n`
  )
  const one = async (url: string, file: string): Promise<{ perSec: number; meanMs: number }> => {
    const u = new URL(url)
    const { stdout } = await execFileAsync(join(bin, 'pgbench'), [
      '-n',
      '-c',
      String(CALLERS),
      '-j',
      '2',
      '-T',
      String((PHASE_MS * ROUNDS) / 1000),
      '-f',
      file,
      '-h',
      u.hostname,
      '-p',
      u.port,
      '-U',
      'postgres',
      u.pathname.slice(1)
    ])
    return { perSec: rate(Number(/tps = ([\d.]+)/.exec(stdout)?.[1])), meanMs: ms(Number(/latency average = ([\d.]+)/.exec(stdout)?.[1])) }
  }
  progress('pgbench: lookups and registrations, full path and PL/Proxy alone')
  const lookups = { fullPath: await one(fullUrl, lookup), directPlProxy: await one(spec.proxy, lookup) }
  const registrations = { fullPath: await one(fullUrl, register), directPlProxy: await one(spec.proxy, register) }
  return {
    clients: CALLERS,
    seconds: (PHASE_MS * ROUNDS) / 1000,
    lookups: { ...lookups, fullPathOfDirectPlProxy: Number((lookups.fullPath.perSec / lookups.directPlProxy.perSec).toFixed(3)) },
    registrations: {
      ...registrations,
      fullPathOfDirectPlProxy: Number((registrations.fullPath.perSec / registrations.directPlProxy.perSec).toFixed(3))
    }
  }
}

function filesystemOf(path: string): string | null {
  try {
    let best: { mount: string; type: string } | undefined
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, mount, type] = line.split(' ')
      if (mount === undefined || type === undefined) continue
      if ((path === mount || path.startsWith(mount === '/' ? '/' : `${mount}/`)) && mount.length >= (best?.mount.length ?? -1)) {
        best = { mount, type }
      }
    }
    return best === undefined ? null : `${best.type} on ${best.mount}`
  } catch {
    return null
  }
}

const dir = await tempDir('parley-cluster-bench-')
let cluster: LocalCluster | undefined
const dbs: Db[] = []
const idle: pg.Client[] = []
let cleaning: Promise<void> | undefined

/** Everything this bench started, also after a partial start: clients, pools, the cluster, then the folder. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all(idle.map(async (c) => await c.end().catch(() => {})))
    await Promise.all(dbs.map(async (db) => await db.close().catch(() => {})))
    await cluster?.stop().catch((err: unknown) => progress(`stopping the cluster: ${(err as Error).message}`))
    // Whatever is still up in the folder (a start cut short): pgBouncer, then every server.
    await new Bouncer({ dir: join(dir, 'bouncer'), proxyUrl: 'postgres://postgres@127.0.0.1:1/parley' }).stop().catch(() => {})
    const roles = await readdir(join(dir, 'servers')).catch(() => [] as string[])
    await Promise.all(roles.map(async (role) => await new PostgresServer({ dir: join(dir, 'servers', role) }).stop().catch(() => {})))
    await rm(dir, { recursive: true, force: true })
  })()
  return cleaning
}

let interrupted = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return
    interrupted = true
    progress(`${signal}: stopping the cluster`)
    void cleanup().finally(() => process.exit(130))
  })
}

async function run(): Promise<Record<string, unknown>> {
  progress(`starting a local cluster with ${PARTITIONS} partitions in ${dir}`)
  const startedAt = performance.now()
  cluster = await startLocalCluster({ dir, partitions: PARTITIONS, settings: SETTINGS })
  const startMs = performance.now() - startedAt
  const { spec } = cluster
  const p0 = spec.partitions[0]
  if (p0 === undefined) throw new Error('the cluster has no partitions')
  const mask = spec.partitions.length - 1
  const server = Object.fromEntries(
    (
      await query<{ name: string; setting: string }>(
        p0.url,
        `SELECT name, setting FROM pg_settings
          WHERE name IN ('server_version', 'fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes', 'max_connections')`
      )
    ).map((r) => [r.name, r.setting])
  )

  const full = await openPostgres({ url: cluster.url, maxConnections: CALLERS })
  dbs.push(full)
  const plproxy = await openPostgres({ url: spec.proxy, maxConnections: CALLERS })
  dbs.push(plproxy)
  const partition = await openPostgres({ url: p0.url, maxConnections: CALLERS })
  dbs.push(partition)

  // Seed through the full path.
  progress(`seeding ${SEED_ACCOUNTS} accounts through pgBouncer + PL/Proxy`)
  const seededName = (i: number): string => `seed_${String(i).padStart(5, '0')}_user`
  const seedStart = performance.now()
  let nextSeed = 0
  await Promise.all(
    Array.from({ length: CALLERS }, async () => {
      while (nextSeed < SEED_ACCOUNTS) {
        const name = seededName(nextSeed++)
        const result = await createAccount(full, { name, displayName: name, passwordHash: FAKE_HASH })
        if (result.status !== 'ok') throw new Error(`seeding ${name}: ${result.status}`)
      }
    })
  )
  const seedMs = performance.now() - seedStart
  const perPartition = await Promise.all(
    spec.partitions.map(async (p) => (await query<{ n: number }>(p.url, 'SELECT count(*)::int AS n FROM public.accounts'))[0]?.n ?? 0)
  )
  const onP0 = (await query<{ name: string }>(p0.url, 'SELECT name FROM public.accounts ORDER BY name')).map((r) => r.name)
  if (onP0.length === 0) throw new Error('no seeded account landed on partition 0')
  progress(`seeded in ${Math.round(seedMs)} ms: ${perPartition.join(' / ')} accounts per partition`)

  // Lookups: any seeded name through the proxy, partition 0's own names directly there.
  const pick = (names: readonly string[]): string => names[Math.floor(Math.random() * names.length)] as string
  const allSeeded = Array.from({ length: SEED_ACCOUNTS }, (_, i) => seededName(i))
  const lookupOn =
    (db: Db, names: readonly string[]): (() => Promise<void>) =>
    async () => {
      const found = await loginLookup(db, { name: pick(names), address: '192.0.2.1', windowMs: WINDOW_MS })
      if (found.passwordHash === undefined) throw new Error('login_lookup found no seeded account')
    }
  const lookups = withRatios(
    await compare('login_lookup', {
      fullPath: lookupOn(full, allSeeded),
      directPlProxy: lookupOn(plproxy, allSeeded),
      directPartition: lookupOn(partition, onP0)
    }),
    AIM.lookupsPerSec
  )

  // Registrations: new names; directly on partition 0 only names that hash there (route_check refuses others).
  const tag = randomBytes(3).toString('hex')
  const direct = (
    await query<{ n: string }>(
      p0.url,
      `SELECT n FROM (SELECT $1::text || g AS n FROM generate_series(1, $2::int) AS g) AS s WHERE hashtext(lower(n)) & $3::int = 0`,
      [`d${tag}_`, DIRECT_CANDIDATES, mask]
    )
  ).map((r) => r.n)
  let nextProxied = 0
  let nextDirect = 0
  let registered = 0
  const registerOn =
    (db: Db, name: () => string): (() => Promise<void>) =>
    async () => {
      const n = name()
      const result = await createAccount(db, { name: n, passwordHash: FAKE_HASH })
      if (result.status !== 'ok') throw new Error(`create_account ${n}: ${result.status}`)
      registered++
    }
  const proxiedName = (): string => `r${tag}_${nextProxied++}`
  const directName = (): string => {
    const n = direct[nextDirect++]
    if (n === undefined) throw new Error(`ran out of the ${direct.length} names hashing to partition 0: raise DIRECT_CANDIDATES`)
    return n
  }
  const registrations = withRatios(
    await compare('create_account', {
      fullPath: registerOn(full, proxiedName),
      directPlProxy: registerOn(plproxy, proxiedName),
      directPartition: registerOn(partition, directName)
    }),
    AIM.registrationsPerSec
  )

  // The same procedures driven by pgbench (C, libpq) instead of this Node process: what the servers
  // do when the load generator costs less of the two cores.
  for (const db of dbs.splice(0)) await db.close()
  const pgbenchResults = await runPgbench(spec, cluster?.url as string, allSeeded.length)

  // Connections at the partitions with IDLE_CLIENTS clients connected to pgBouncer.
  await new Promise((resolve) => setTimeout(resolve, 200))
  const countAll = async (): Promise<{ partitions: number[]; sum: number; proxyBackends: number }> => {
    const partitions = await Promise.all(spec.partitions.map(async (p) => await clientBackends(p.url)))
    return { partitions, sum: partitions.reduce((a, b) => a + b, 0), proxyBackends: await clientBackends(spec.proxy) }
  }
  const before = await countAll()
  progress(`opening ${IDLE_CLIENTS} client connections at pgBouncer, each running one login_lookup`)
  const openStart = performance.now()
  let opened = 0
  const failures: string[] = []
  // In batches (pgBouncer's listen backlog); a batch with failures ends the opening, so that a
  // pgBouncer that stops accepting costs one connect timeout, not one per batch.
  for (let i = 0; i < IDLE_CLIENTS && failures.length === 0; i += CONNECT_BATCH) {
    const settled = await Promise.allSettled(
      Array.from({ length: Math.min(CONNECT_BATCH, IDLE_CLIENTS - i) }, async () => {
        const client = new pg.Client({
          connectionString: cluster?.url,
          connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
          query_timeout: CONNECT_TIMEOUT_MS
        })
        client.on('error', () => {})
        idle.push(client)
        await client.connect()
        const rows = (
          await client.query<{ o_password_hash: string | null }>('SELECT * FROM parley.login_lookup($1, $2, $3)', [
            pick(allSeeded),
            '192.0.2.1',
            WINDOW_MS
          ])
        ).rows
        if (typeof rows[0]?.o_password_hash !== 'string') throw new Error('login_lookup through an idle client found no account')
      })
    )
    for (const s of settled) {
      if (s.status === 'fulfilled') opened++
      else failures.push((s.reason as Error).message)
    }
  }
  const openMs = performance.now() - openStart
  const whileOpen = await countAll()
  progress(`${opened} of ${IDLE_CLIENTS} clients open: ${whileOpen.partitions.join(' / ')} client backends at the partitions`)
  // What pgBouncer says of its file descriptors at start, and whether accept() ran out of them.
  const bouncerLog = await readFile(join(dir, 'bouncer', 'pgbouncer.log'), 'utf8').catch(() => '')
  const bouncerFdLimit = /kernel file descriptor limit: [^\n]*/.exec(bouncerLog)?.[0] ?? null
  const bouncerAcceptEmfile = (bouncerLog.match(/accept\(\) failed: Too many open files/g) ?? []).length
  if (opened < IDLE_CLIENTS) {
    progress(`only ${opened} of ${IDLE_CLIENTS} clients could connect and query (${failures[0]}); pgBouncer: ${bouncerFdLimit}`)
    process.exitCode = 1
  }
  await Promise.all(idle.splice(0).map(async (c) => await c.end().catch(() => {})))

  return {
    bench: 'cluster',
    method:
      `one local cluster (${PARTITIONS} partition servers + main, pgBouncer transaction pooling with pool size ${LIMITS.cluster.bouncerPoolSize}, ` +
      `pgqd and the event consumer running), all on this machine with the bench's own Node process; ` +
      `${CALLERS} callers over a pg pool of ${CALLERS} per path; ${WARMUP_MS} ms warm-up per path, then ${ROUNDS} rounds of ${PHASE_MS} ms ` +
      'per path with the paths taking turns; latency per call as the caller sees it; lookups pick a random seeded account ' +
      '(directly on partition 0: one of those living there), registrations create new accounts (directly on partition 0: names hashing there)',
    server,
    dataFilesystem: filesystemOf(dir),
    cluster: { partitions: PARTITIONS, startMs: Math.round(startMs) },
    seed: { accounts: SEED_ACCOUNTS, ms: Math.round(seedMs), perSec: rate((SEED_ACCOUNTS * 1000) / seedMs), perPartition },
    callers: CALLERS,
    lookups: { procedure: 'parley.login_lookup', ...lookups },
    pgbench: pgbenchResults,
    registrations: {
      procedure: 'parley.create_account',
      durable: server.fsync === 'on' && server.synchronous_commit === 'on',
      registered,
      ...registrations
    },
    connections: {
      clientsAtBouncer: IDLE_CLIENTS,
      opened,
      allOpened: opened === IDLE_CLIENTS,
      failed: failures.length,
      firstFailure: failures[0] ?? null,
      bouncerFdLimit,
      bouncerAcceptEmfile,
      openMs: Math.round(openMs),
      bouncerPoolSize: LIMITS.cluster.bouncerPoolSize,
      partitionClientBackendsBefore: before.partitions,
      partitionClientBackendsWhileOpen: whileOpen.partitions,
      partitionClientBackendsSum: whileOpen.sum,
      proxyClientBackendsWhileOpen: whileOpen.proxyBackends,
      note: 'client backends on each partition database (PL/Proxy connections from the proxy backends pgBouncer holds, plus pgqd and the event consumer), excluding the counting connection'
    }
  }
}

try {
  const result = await run()
  process.stdout.write(`${JSON.stringify(result)}\n`)
} catch (err) {
  progress(`failed: ${(err as Error).stack ?? String(err)}`)
  process.stdout.write(`${JSON.stringify({ bench: 'cluster', error: (err as Error).message })}\n`)
  process.exitCode = 1
} finally {
  progress('stopping the cluster and removing its folder')
  await cleanup()
}
