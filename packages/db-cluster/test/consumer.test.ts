// The PgQ consumer against real PostgreSQL: databases on the test server
// stand for partitions (pgq installed, the real migrations, so the real
// procedures emit the events) and for the internal statistics database.
// Ticks come from pgqd (Debian package) or from the consumer (tick: true).
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { createAccount, type Db, loginFailed, loginSucceeded, migrate, openPostgres, renewCredential } from '@parley/db'
import { freePort, freshDatabase, type TestPostgres, testPostgres } from '@parley/testing'
import pg from 'pg'
import {
  type ConsumerLogger,
  EventConsumer,
  type EventStats,
  installInternalSchema,
  installPartitionQueue,
  readAuditTrail,
  readStats
} from '../src/consumer.ts'
import { startPgqd } from '../src/pgqd.ts'

const CHILD = fileURLToPath(new URL('./consumer-child.ts', import.meta.url))
const WINDOW_MS = 60 * 60 * 1000
const HASH = '$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g'

let server: TestPostgres
const cleanups: Array<() => Promise<void>> = []

before(async () => {
  server = await testPostgres()
})

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {})
  await server.stop()
})

interface Partition {
  name: string
  url: string
  db: Db
}

/** n partition databases (pgq + migrations) and an internal database, dropped after the file. */
async function cluster(n: number): Promise<{ partitions: Partition[]; internalUrl: string }> {
  const internal = await freshDatabase(server.url, 'parley_stats')
  cleanups.push(internal.drop)
  await installInternalSchema(internal.url)
  const partitions = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const created = await freshDatabase(server.url, `parley_part${i}`)
      cleanups.push(created.drop)
      await installPartitionQueue(created.url)
      const db = await openPostgres({ url: created.url, maxConnections: 4 })
      cleanups.push(() => db.close())
      await migrate(db)
      return { name: `p${i}`, url: created.url, db }
    })
  )
  return { partitions, internalUrl: internal.url }
}

interface Counts {
  registrations: number
  logins: number
  credentials: number
  renewals: number
  failures: number
}

const zero = (): Counts => ({ registrations: 0, logins: 0, credentials: 0, renewals: 0, failures: 0 })
const eventsOf = (c: Counts): number => c.registrations + c.logins + c.credentials + c.failures
function add(a: Counts, b: Counts): Counts {
  return {
    registrations: a.registrations + b.registrations,
    logins: a.logins + b.logins,
    credentials: a.credentials + b.credentials,
    renewals: a.renewals + b.renewals,
    failures: a.failures + b.failures
  }
}

/**
 * Calls the real procedures on one partition, one transaction each, and
 * counts the events they emit: per user a registration, a login (login +
 * credential_issued), every second user a renewal, every third a failed login,
 * and a failed login for an unknown name now and then.
 */
async function workload(db: Db, prefix: string, users: number, counts: Counts, paceMs = 0): Promise<void> {
  for (let i = 0; i < users; i++) {
    const name = `${prefix}_User${i}`
    const created = await createAccount(db, { name, passwordHash: HASH })
    assert.equal(created.status, 'ok')
    counts.registrations++
    const deviceKey = randomBytes(32)
    const login = await loginSucceeded(db, { name: name.toLowerCase(), deviceKey })
    assert.equal(login.status, 'ok')
    counts.logins++
    counts.credentials++
    if (login.status === 'ok' && i % 2 === 0) {
      const renewed = await renewCredential(db, { name, deviceKey, serial: login.serial })
      assert.equal(renewed.status, 'ok')
      counts.credentials++
      counts.renewals++
    }
    if (i % 3 === 0) {
      await loginFailed(db, { name, address: `10.0.0.${i % 250}`, windowMs: WINDOW_MS })
      counts.failures++
    }
    if (i % 10 === 0) {
      await loginFailed(db, { name: `${prefix}_nobody${i}`, address: '10.9.9.9', windowMs: WINDOW_MS })
      counts.failures++
    }
    if (paceMs > 0) await sleep(paceMs)
  }
}

const hourOf = (iso: string): string => `${iso.slice(0, 13)}:00:00.000Z`

/**
 * The statistics are exactly the counts (per type, per partition) and agree
 * with the audit trail bucket by bucket; the audit trail holds every event once.
 */
async function assertExact(internalUrl: string, partitions: Partition[], perPartition: Map<string, Counts>): Promise<EventStats> {
  const stats = await readStats(internalUrl)
  const total = [...perPartition.values()].reduce(add, zero())
  assert.deepEqual(stats.totals, {
    events: eventsOf(total),
    registrations: total.registrations,
    logins: total.logins,
    failedLogins: total.failures,
    credentialsIssued: total.credentials,
    credentialRenewals: total.renewals
  })
  const byDay = new Map<string, number>()
  const byHour = new Map<string, Counts>()
  for (const p of partitions) {
    const counts = perPartition.get(p.name) ?? zero()
    const audit = await readAuditTrail(internalUrl, p.name)
    assert.equal(audit.length, eventsOf(counts), `audit trail of ${p.name}`)
    assert.equal(new Set(audit.map((e) => e.evId)).size, audit.length, `each event of ${p.name} once`)
    const seen = zero()
    for (const e of audit) {
      const h = byHour.get(hourOf(e.at)) ?? zero()
      byHour.set(hourOf(e.at), h)
      const data = e.data as Record<string, unknown>
      assert.equal(typeof data['name'], 'string')
      assert.equal(e.nameKey, String(data['name']).toLowerCase())
      if (e.type === 'account_created') {
        seen.registrations++
        byDay.set(e.at.slice(0, 10), (byDay.get(e.at.slice(0, 10)) ?? 0) + 1)
      } else if (e.type === 'login') {
        seen.logins++
        h.logins++
      } else if (e.type === 'credential_issued') {
        seen.credentials++
        h.credentials++
        if (data['renewal'] === true) {
          seen.renewals++
          h.renewals++
        }
      } else if (e.type === 'login_failed') {
        seen.failures++
        h.failures++
      } else assert.fail(`unexpected event type ${e.type}`)
    }
    assert.deepEqual(seen, counts, `events of ${p.name} by type`)
    const recorded = stats.eventsByPartition.filter((r) => r.partition === p.name)
    assert.deepEqual(
      Object.fromEntries(recorded.map((r) => [r.type, r.events])),
      Object.fromEntries(
        Object.entries({
          account_created: counts.registrations,
          credential_issued: counts.credentials,
          login: counts.logins,
          login_failed: counts.failures
        }).filter(([, n]) => n > 0)
      )
    )
  }
  assert.deepEqual(
    stats.registrationsPerDay,
    [...byDay.entries()].sort().map(([day, registrations]) => ({ day, registrations }))
  )
  const hours = [...byHour.entries()].sort(([a], [b]) => a.localeCompare(b))
  assert.deepEqual(
    stats.loginsPerHour,
    hours.filter(([, c]) => c.logins > 0).map(([hour, c]) => ({ hour, logins: c.logins }))
  )
  assert.deepEqual(
    stats.failedLoginsPerHour,
    hours.filter(([, c]) => c.failures > 0).map(([hour, c]) => ({ hour, failures: c.failures }))
  )
  assert.deepEqual(
    stats.credentialsPerHour,
    hours.filter(([, c]) => c.credentials > 0).map(([hour, c]) => ({ hour, issued: c.credentials, renewals: c.renewals }))
  )
  return stats
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await fn()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

/** Runs the consumer until `events` events are recorded in all (new ones), then once more to see nothing is left. */
async function consumeAll(consumer: EventConsumer, events: number): Promise<void> {
  let recorded = 0
  await waitFor(`${events} events`, async () => {
    const r = await consumer.runOnce()
    assert.deepEqual(r.errors, [])
    recorded += r.newEvents
    return recorded >= events ? true : undefined
  })
  assert.equal(recorded, events)
  await sleep(300)
  const r = await consumer.runOnce()
  assert.equal(r.newEvents, 0)
}

const quiet: ConsumerLogger = { info() {}, warn() {} }

describe('PgQ consumer', () => {
  it('installs idempotently and records every event once, with exact statistics (pgqd ticking)', async () => {
    const { partitions, internalUrl } = await cluster(2)
    for (const p of partitions) await installPartitionQueue(p.url)
    await installInternalSchema(internalUrl)
    const pgqd = await startPgqd({ databases: partitions.map((p) => p.url) })
    cleanups.push(pgqd.stop)
    const counts = new Map(partitions.map((p) => [p.name, zero()]))
    await Promise.all(partitions.map((p, i) => workload(p.db, `a${i}`, 30 + i * 7, counts.get(p.name)!)))
    const consumer = new EventConsumer({ partitions, internalUrl, logger: quiet })
    try {
      await consumeAll(consumer, eventsOf([...counts.values()].reduce(add, zero())))
    } finally {
      await consumer.stop()
      await consumer.stop()
    }
    const stats = await assertExact(internalUrl, partitions, counts)
    assert.equal(stats.batches.replayedBatches, 0)
    assert.equal(stats.batches.duplicateEvents, 0)
    await pgqd.stop()
  })

  it('a batch recorded but not finished comes again and counts nothing twice', async () => {
    const { partitions, internalUrl } = await cluster(2)
    const pgqd = await startPgqd({ databases: partitions.map((p) => p.url) })
    cleanups.push(pgqd.stop)
    const counts = new Map(partitions.map((p) => [p.name, zero()]))
    await Promise.all(partitions.map((p, i) => workload(p.db, `b${i}`, 12, counts.get(p.name)!)))
    const expected = eventsOf([...counts.values()].reduce(add, zero()))

    // The first batch of p0 "crashes" after the internal commit, before finish_batch.
    let crashed: { batchId: string; events: number } | undefined
    const consumer = new EventConsumer({
      partitions,
      internalUrl,
      logger: quiet,
      onBatchRecorded(batch) {
        if (crashed === undefined && batch.partition === 'p0') {
          crashed = { batchId: batch.batchId, events: batch.events }
          throw new Error('crash between the internal commit and finish_batch')
        }
      }
    })
    try {
      await waitFor('the crash', async () => {
        const r = await consumer.runOnce()
        return crashed === undefined ? undefined : r
      }).then((r) => {
        assert.deepEqual(
          r.errors.map((e) => e.partition),
          ['p0']
        )
      })
      assert.ok(crashed !== undefined && crashed.events > 0)
      // The other partition went on; p0's batch is recorded, and delivered again next time.
      const replay = await consumer.runOnce()
      assert.deepEqual(replay.errors, [])
      const p0 = replay.partitions.find((r) => r.partition === 'p0')!
      assert.ok(p0.duplicates >= crashed.events, `the batch came again (${p0.duplicates} duplicates)`)
      await consumeAll(consumer, expected - (await readStats(internalUrl)).totals.events)
    } finally {
      await consumer.stop()
    }
    const stats = await assertExact(internalUrl, partitions, counts)
    assert.equal(stats.batches.replayedBatches, 1)
    assert.equal(stats.batches.duplicateEvents, crashed.events)
    assert.equal(stats.batches.deliveries, stats.batches.batches + 1)
    await pgqd.stop()
  })

  it('refuses, rather than drops, events of a queue that started over under the same partition name', async () => {
    const { partitions, internalUrl } = await cluster(1)
    const p = partitions[0]!
    const counts = new Map([[p.name, zero()]])
    await workload(p.db, 'r', 4, counts.get(p.name)!)
    const consumer = new EventConsumer({ partitions, internalUrl, tick: true, logger: quiet })
    try {
      await consumeAll(consumer, eventsOf(counts.get(p.name)!))
      const admin = new pg.Client({ connectionString: p.url })
      await admin.connect()
      await admin.query("SELECT pgq.drop_queue('parley_events', true)")
      await admin.end()
      await installPartitionQueue(p.url)
      await workload(p.db, 'r2', 2, zero())
      const r = await waitFor('the clash', async () => {
        const round = await consumer.runOnce()
        return round.errors.length > 0 ? round : undefined
      })
      assert.match(r.errors[0]?.error ?? '', /queue re-created/)
    } finally {
      await consumer.stop()
    }
    await assertExact(internalUrl, partitions, counts)
  })

  it('goes on with the other partitions while one is down (consumer ticking)', async () => {
    const { partitions, internalUrl } = await cluster(2)
    const down = { name: 'down', url: `postgres://postgres@127.0.0.1:${await freePort()}/nowhere` }
    const warnings: Array<Record<string, unknown>> = []
    const consumer = new EventConsumer({
      partitions: [partitions[0]!, down, partitions[1]!],
      internalUrl,
      tick: true,
      pollMs: 50,
      retryMs: 100,
      logger: {
        info() {},
        warn(fields) {
          warnings.push(fields)
        }
      }
    })
    const counts = new Map(partitions.map((p) => [p.name, zero()]))
    const expected = (): number => eventsOf([...counts.values()].reduce(add, zero()))
    consumer.start()
    consumer.start()
    try {
      await Promise.all(partitions.map((p, i) => workload(p.db, `c${i}`, 15, counts.get(p.name)!, 5)))
      await waitFor('the events of the partitions that are up', async () =>
        (await readStats(internalUrl)).totals.events >= expected() ? true : undefined
      )
    } finally {
      await consumer.stop()
      await consumer.stop()
    }
    await assertExact(internalUrl, partitions, counts)
    assert.ok(warnings.length > 0 && warnings.every((w) => w['partition'] === 'down'), JSON.stringify(warnings))
  })

  it('killed (SIGKILL) mid-batch and restarted under load: the statistics are exact', async () => {
    const { partitions, internalUrl } = await cluster(2)
    const pgqd = await startPgqd({ databases: partitions.map((p) => p.url) })
    cleanups.push(pgqd.stop)
    const sources = partitions.map(({ name, url }) => ({ name, url }))
    const counts = new Map(partitions.map((p) => [p.name, zero()]))
    const load = Promise.all(partitions.map((p, i) => workload(p.db, `k${i}`, 120, counts.get(p.name)!, 10)))
    load.catch(() => {})

    // 1. Stopped right after the internal commit of p0's 3rd batch, before finish_batch, and killed there.
    const first = startChild({ partitions: sources, internalUrl, pause: { partition: 'p0', afterBatches: 3 } })
    const paused = await first.waitFor((l) => l['event'] === 'paused')
    await first.kill()

    // 2. Restarted: p0's first batch is the same batch, all of it already recorded. Killed again at a random moment.
    const second = startChild({ partitions: sources, internalUrl })
    const replay = await second.waitFor((l) => l['event'] === 'batch' && l['partition'] === 'p0')
    assert.equal(replay['batchId'], paused['batchId'], 'PgQ delivered the unfinished batch again')
    assert.equal(replay['events'], paused['events'])
    assert.equal(replay['duplicates'], paused['events'], 'and none of its events was counted again')
    assert.equal(replay['newEvents'], 0)
    await sleep(100 + Math.floor(Math.random() * 400))
    await second.kill()

    // 3. Restarted once more; the load ends; everything arrives, once.
    const third = startChild({ partitions: sources, internalUrl })
    await load
    const expected = eventsOf([...counts.values()].reduce(add, zero()))
    await waitFor('every event', async () => ((await readStats(internalUrl)).totals.events >= expected ? true : undefined))
    await sleep(500) // ticks keep coming: nothing more may be counted
    await third.stop()
    const stats = await assertExact(internalUrl, partitions, counts)
    assert.ok(stats.batches.replayedBatches >= 1)
    assert.ok(stats.batches.duplicateEvents >= Number(paused['events']))
    await pgqd.stop()
  })
})

interface Child {
  waitFor(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>
  kill(): Promise<void>
  stop(): Promise<void>
}

function startChild(config: Record<string, unknown>): Child {
  const child: ChildProcess = spawn(process.execPath, [CHILD, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: Array<Record<string, unknown>> = []
  const waiters = new Set<() => void>()
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(JSON.parse(line) as Record<string, unknown>)
    for (const w of waiters) w()
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  cleanups.push(async () => {
    child.kill('SIGKILL')
  })
  return {
    async waitFor(match, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const found = lines.find(match)
        if (found !== undefined) return found
        if (child.exitCode !== null) throw new Error(`consumer child exited (${child.exitCode}): ${stderr}`)
        if (Date.now() > deadline) throw new Error(`consumer child: timed out; stderr: ${stderr}`)
        await new Promise<void>((resolve) => {
          const done = (): void => {
            waiters.delete(done)
            clearTimeout(timer)
            resolve()
          }
          const timer = setTimeout(done, 100)
          waiters.add(done)
        })
      }
    },
    async kill() {
      child.kill('SIGKILL')
      await exited
    },
    async stop() {
      child.kill('SIGTERM')
      await exited
    }
  }
}
