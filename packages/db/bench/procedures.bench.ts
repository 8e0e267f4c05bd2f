// Stored-procedure round trips: a read (parley.get_account, parley.login_lookup)
// and a write (parley.create_account), sequentially (median, p99, calls/s) and
// with 8 concurrent callers (calls/s), on PGlite in memory and on PostgreSQL
// (PARLEY_TEST_PG_URL, or a throwaway server started here), after seeding
// 1000 accounts.
//   node packages/db/bench/procedures.bench.ts
// Prints one JSON object on stdout; progress goes to stderr.
import { randomBytes } from 'node:crypto'
import { createAccount, type Db, getAccount, loginLookup, migrate, openPglite, openPostgres } from '@parley/db'

import {
  freshDatabase,
  ms,
  PG_URL_ENV,
  percentile,
  progressFor,
  rate,
  runConcurrently,
  type TestPostgres,
  testPostgres
} from '@parley/testing'

const progress = progressFor('procedures')

const SEED_ACCOUNTS = 1_000
const CONCURRENCY = 8
const WARMUP_CALLS = 200
const SEQUENTIAL_MS = 1_500
const CONCURRENT_MS = 1_500
const WINDOW_MS = 60 * 60 * 1000
// A well-formed Argon2id PHC string: the procedures store and return it, never check it.
const FAKE_HASH = `$argon2id$v=19$m=19456,t=2,p=1$${randomBytes(16).toString('base64url')}$${randomBytes(32).toString('base64url')}`

interface Sequential {
  calls: number
  medianMs: number
  p99Ms: number
  meanMs: number
  callsPerSec: number
}

interface Concurrent {
  callers: number
  calls: number
  callsPerSec: number
}

/** One caller, one call at a time: the round-trip time of each call. */
async function sequential(call: () => Promise<unknown>, durationMs: number): Promise<Sequential> {
  for (let i = 0; i < WARMUP_CALLS; i++) await call()
  const times: number[] = []
  const start = performance.now()
  const end = start + durationMs
  let now = start
  while (now < end) {
    const t0 = now
    await call()
    now = performance.now()
    times.push(now - t0)
  }
  const elapsedMs = now - start
  times.sort((a, b) => a - b)
  return {
    calls: times.length,
    medianMs: ms(percentile(times, 50)),
    p99Ms: ms(percentile(times, 99)),
    meanMs: ms(elapsedMs / times.length),
    callsPerSec: rate((times.length * 1000) / elapsedMs)
  }
}

/** `callers` callers, each making one call after another, for `durationMs`. */
async function concurrent(call: () => Promise<unknown>, callers: number, durationMs: number): Promise<Concurrent> {
  const { calls, elapsedMs } = await runConcurrently(call, callers, durationMs)
  return { callers, calls, callsPerSec: rate((calls * 1000) / elapsedMs) }
}

const seededName = (i: number): string => `seed_${String(i).padStart(5, '0')}_user`

async function seed(db: Db): Promise<number> {
  const start = performance.now()
  for (let i = 0; i < SEED_ACCOUNTS; i += CONCURRENCY) {
    await Promise.all(
      Array.from({ length: Math.min(CONCURRENCY, SEED_ACCOUNTS - i) }, async (_, j) => {
        const name = seededName(i + j)
        const result = await createAccount(db, { name, displayName: `Seed User ${i + j}`, passwordHash: FAKE_HASH })
        if (result.status !== 'ok') throw new Error(`seeding ${name}: ${result.status}`)
      })
    )
  }
  return performance.now() - start
}

interface ProcedureResult {
  sequential: Sequential
  concurrent: Concurrent
}

async function benchDb(db: Db, label: string): Promise<Record<string, unknown>> {
  progress(`${label}: seeding ${SEED_ACCOUNTS} accounts`)
  const seedMs = await seed(db)
  let next = 0
  const randomSeeded = (): string => seededName(Math.floor(Math.random() * SEED_ACCOUNTS))
  const prefix = `w${randomBytes(3).toString('hex')}`

  const calls: Record<string, () => Promise<unknown>> = {
    'parley.get_account': async () => {
      const account = await getAccount(db, { name: randomSeeded() })
      if (account === undefined) throw new Error('get_account found no seeded account')
    },
    'parley.login_lookup': async () => {
      const found = await loginLookup(db, { name: randomSeeded(), address: '192.0.2.1', windowMs: WINDOW_MS })
      if (found.passwordHash === undefined) throw new Error('login_lookup found no seeded account')
    },
    'parley.create_account': async () => {
      const name = `${prefix}_${next++}`
      const result = await createAccount(db, { name, passwordHash: FAKE_HASH })
      if (result.status !== 'ok') throw new Error(`create_account ${name}: ${result.status}`)
    }
  }
  const results: Record<string, ProcedureResult> = {}
  for (const [procedure, call] of Object.entries(calls)) {
    progress(`${label}: ${procedure} sequential for ${SEQUENTIAL_MS} ms, then ${CONCURRENCY} callers for ${CONCURRENT_MS} ms`)
    results[procedure] = {
      sequential: await sequential(call, SEQUENTIAL_MS),
      concurrent: await concurrent(call, CONCURRENCY, CONCURRENT_MS)
    }
  }
  return { seedAccounts: SEED_ACCOUNTS, seedMs: Math.round(seedMs), writtenAccounts: next, procedures: results }
}

async function benchPglite(): Promise<Record<string, unknown>> {
  progress('PGlite: opening in memory and migrating')
  const db = await openPglite()
  try {
    await migrate(db)
    return { kind: db.kind, where: 'in memory, in this process', ...(await benchDb(db, 'PGlite')) }
  } finally {
    await db.close()
  }
}

async function benchPostgres(): Promise<Record<string, unknown>> {
  const external = (process.env[PG_URL_ENV] ?? '') !== ''
  progress(external ? `PostgreSQL: using ${PG_URL_ENV}` : 'PostgreSQL: starting a throwaway server')
  let server: TestPostgres | undefined
  let database: { url: string; drop: () => Promise<void> } | undefined
  let db: Db | undefined
  try {
    server = await testPostgres()
    stopOnSignal = server.stop
    database = await freshDatabase(server.url, 'parley_bench')
    db = await openPostgres({ url: database.url, maxConnections: CONCURRENCY + 2 })
    await migrate(db)
    const version = await serverVersion(db)
    return {
      kind: db.kind,
      where: external ? `${PG_URL_ENV}` : 'throwaway local server over loopback TCP (fsync=off)',
      serverVersion: version,
      poolSize: CONCURRENCY + 2,
      ...(await benchDb(db, 'PostgreSQL'))
    }
  } finally {
    await db?.close().catch(() => {})
    await database?.drop().catch(() => {})
    stopOnSignal = undefined
    await server?.stop()
  }
}

/** Interrupted: stop the PostgreSQL server (pg_ctl runs it in the background, so it would outlive this process). */
let stopOnSignal: (() => Promise<void>) | undefined
let interrupted = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return
    interrupted = true
    progress(`${signal}: stopping`)
    void (stopOnSignal?.() ?? Promise.resolve()).finally(() => process.exit(130))
  })
}

/** Only procedures are callable through Db; the migration hook runs plain SQL. */
async function serverVersion(db: Db): Promise<string | null> {
  let version: string | null = null
  await db.script(async (run) => {
    const v = (await run('SHOW server_version'))[0]?.server_version
    version = typeof v === 'string' ? v : null
  })
  return version
}

const pglite = await benchPglite()
let postgres: Record<string, unknown>
try {
  postgres = await benchPostgres()
} catch (err) {
  progress(`PostgreSQL failed: ${(err as Error).message}`)
  postgres = { error: (err as Error).message }
  process.exitCode = 1
}

const result = {
  bench: 'procedures',
  method: `after ${WARMUP_CALLS} warm-up calls: one caller for ${SEQUENTIAL_MS} ms (round-trip median, p99), then ${CONCURRENCY} callers for ${CONCURRENT_MS} ms; reads pick a random seeded account, writes create new ones`,
  pglite,
  postgres
}
process.stdout.write(`${JSON.stringify(result)}\n`)
