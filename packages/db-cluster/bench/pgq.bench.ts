// PgQ on one PostgreSQL server (PARLEY_TEST_PG_URL, or a throwaway server started here):
// - one event per transaction: parley.create_account with 8 callers, on a
//   database with the parley_events queue and on one without PgQ (the
//   overhead of emitting; alternating rounds), and a bare pgq.insert_event per transaction;
// - batched: many pgq.insert_event in one transaction;
// - the consumer: events per second from two pre-filled partitions' queues
//   into the internal database (EventConsumer.runOnce, ticks every 500 events);
// - end to end with pgqd ticking and the consumer running: event time to
//   recorded time.
//   node packages/db-cluster/bench/pgq.bench.ts
// Prints one JSON object on stdout; progress goes to stderr.
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { createAccount, type Db, migrate, openPostgres } from '@parley/db'
import { freshDatabase, ms, percentile, progressFor, rate, runConcurrently, testPostgres } from '@parley/testing'
import pg from 'pg'
import {
  EVENT_QUEUE_NAME,
  EventConsumer,
  installInternalSchema,
  installPartitionQueue,
  readAuditTrail,
  readStats
} from '../src/consumer.ts'
import { startPgqd } from '../src/pgqd.ts'

const progress = progressFor('pgq')

const CALLERS = 8
const PHASE_MS = 1_500
const ROUNDS = 3
const BATCH_EVENTS = 1_000
const CONSUMER_EVENTS_PER_PARTITION = 10_000
const TICK_EVERY = 500
const END_TO_END_EVENTS = 100
const FAKE_HASH = `$argon2id$v=19$m=19456,t=2,p=1$${randomBytes(16).toString('base64url')}$${randomBytes(32).toString('base64url')}`

const server = await testPostgres()
const drops: Array<() => Promise<void>> = []
const closers: Array<() => Promise<void>> = []

async function database(prefix: string): Promise<string> {
  const created = await freshDatabase(server.url, prefix)
  drops.push(created.drop)
  return created.url
}

/** A migrated partition-like database, with or without the queue. */
async function partition(prefix: string, withPgq: boolean): Promise<{ url: string; db: Db }> {
  const url = await database(prefix)
  if (withPgq) await installPartitionQueue(url)
  const db = await openPostgres({ url, maxConnections: CALLERS })
  closers.push(() => db.close())
  await migrate(db)
  return { url, db }
}

/** `callers` callers, one call after another, for `durationMs`: calls per second. */
async function concurrent(call: () => Promise<unknown>, callers: number, durationMs: number): Promise<{ calls: number; perSec: number }> {
  const { calls, elapsedMs } = await runConcurrently(call, callers, durationMs)
  return { calls, perSec: (calls * 1000) / elapsedMs }
}

const eventData = (i: number): string =>
  JSON.stringify({ name: `bench_user_${i}`, at: new Date().toISOString(), device: randomBytes(32).toString('hex') })

try {
  const admin = new pg.Client({ connectionString: server.url })
  await admin.connect()
  const settings = Object.fromEntries(
    (
      await admin.query<{ name: string; setting: string }>(
        "SELECT name, setting FROM pg_settings WHERE name IN ('server_version', 'fsync', 'synchronous_commit')"
      )
    ).rows.map((r) => [r.name, r.setting])
  )
  await admin.end()

  // 1. One event per transaction.
  progress('one event per transaction: create_account without and with PgQ')
  const plain = await partition('bench_plain', false)
  const queued = await partition('bench_pgq', true)
  let n = 0
  const register = (db: Db) => () => createAccount(db, { name: `u${n++}_${randomBytes(3).toString('hex')}`, passwordHash: FAKE_HASH })
  await concurrent(register(plain.db), CALLERS, 300)
  await concurrent(register(queued.db), CALLERS, 300)
  // Alternating rounds, so that drift on a shared machine hits both sides alike.
  const without = { calls: 0, ms: 0, perSec: 0 }
  const withPgq = { calls: 0, ms: 0, perSec: 0 }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [db, total] of [
      [plain.db, without],
      [queued.db, withPgq]
    ] as const) {
      const t0 = performance.now()
      total.calls += (await concurrent(register(db), CALLERS, PHASE_MS / ROUNDS)).calls
      total.ms += performance.now() - t0
      total.perSec = (total.calls * 1000) / total.ms
    }
  }
  progress(`create_account: ${rate(without.perSec)}/s without PgQ, ${rate(withPgq.perSec)}/s with`)

  progress('one event per transaction: pgq.insert_event')
  const rawPool = new pg.Pool({ connectionString: queued.url, max: CALLERS })
  closers.push(() => rawPool.end())
  const payload = eventData(0)
  const insertOne = () =>
    rawPool.query("SELECT pgq.insert_event($1, 'login', $2, 'bench_user_0', NULL, NULL, NULL)", [EVENT_QUEUE_NAME, payload])
  await concurrent(insertOne, CALLERS, 300)
  const single = await concurrent(insertOne, CALLERS, PHASE_MS)
  progress(`insert_event: ${rate(single.perSec)} events/s`)

  // 2. Batched: BATCH_EVENTS events per transaction, one caller and two.
  progress(`batched: ${BATCH_EVENTS} events per transaction`)
  const insertMany = () =>
    rawPool.query("SELECT count(pgq.insert_event($1, 'login', $2, 'bench_user_0', NULL, NULL, NULL)) FROM generate_series(1, $3)", [
      EVENT_QUEUE_NAME,
      payload,
      BATCH_EVENTS
    ])
  await concurrent(insertMany, 1, 300)
  const batchedOne = await concurrent(insertMany, 1, PHASE_MS)
  const batchedTwo = await concurrent(insertMany, 2, PHASE_MS)
  progress(`batched: ${rate(batchedOne.perSec * BATCH_EVENTS)} events/s (1 caller), ${rate(batchedTwo.perSec * BATCH_EVENTS)} (2)`)

  // 3. The consumer: two partitions pre-filled, a tick every TICK_EVERY events.
  progress(`consumer: filling 2 partitions with ${CONSUMER_EVENTS_PER_PARTITION} events each`)
  const sources = await Promise.all(
    [0, 1].map(async (i) => {
      const url = await database(`bench_src${i}`)
      // Ticks only when called, and then surely (fewer than TICK_EVERY events waiting suffice).
      await installPartitionQueue(url, { tickerMaxCount: 10, tickerMaxLagMs: 3_600_000 })
      const c = new pg.Client({ connectionString: url })
      c.on('error', () => {})
      await c.connect()
      for (let done = 0; done < CONSUMER_EVENTS_PER_PARTITION; done += TICK_EVERY) {
        const events = Array.from({ length: TICK_EVERY }, (_, k) => eventData(done + k))
        await c.query(
          `SELECT count(pgq.insert_event($1, t, d, lower(d::jsonb ->> 'name'), NULL, NULL, NULL))
             FROM unnest($2::text[], $3::text[]) AS e (t, d)`,
          [EVENT_QUEUE_NAME, events.map((_, k) => ['account_created', 'login', 'credential_issued', 'login_failed'][k % 4]), events]
        )
        const tick = await c.query<{ t: string | null }>('SELECT pgq.ticker($1) AS t', [EVENT_QUEUE_NAME])
        if (tick.rows[0]?.t === null) throw new Error('no tick after a full batch')
      }
      await c.end()
      return { name: `p${i}`, url }
    })
  )
  const internalUrl = await database('bench_internal')
  await installInternalSchema(internalUrl)
  const consumer = new EventConsumer({ partitions: sources, internalUrl })
  const t0 = performance.now()
  const drained = await consumer.runOnce()
  const consumerMs = performance.now() - t0
  await consumer.stop()
  if (drained.errors.length > 0) throw new Error(`consumer: ${JSON.stringify(drained.errors)}`)
  const recorded = (await readStats(internalUrl)).totals.events
  if (recorded !== 2 * CONSUMER_EVENTS_PER_PARTITION) throw new Error(`consumer recorded ${recorded} events`)
  progress(`consumer: ${rate((recorded * 1000) / consumerMs)} events/s in ${drained.batches} batches`)

  // 4. End to end: pgqd ticking (100 ms), the consumer running, one registration every 10 ms.
  progress('end to end: pgqd + consumer')
  const live = await partition('bench_live', true)
  const liveInternal = await database('bench_live_internal')
  await installInternalSchema(liveInternal)
  const pgqd = await startPgqd({ databases: [live.url] })
  closers.push(pgqd.stop)
  const running = new EventConsumer({ partitions: [{ name: 'live', url: live.url }], internalUrl: liveInternal, pollMs: 20 })
  closers.push(() => running.stop())
  running.start()
  for (let i = 0; i < END_TO_END_EVENTS; i++) {
    await createAccount(live.db, { name: `live_${i}`, passwordHash: FAKE_HASH })
    await sleep(10)
  }
  const deadline = Date.now() + 15_000
  while ((await readStats(liveInternal)).totals.events < END_TO_END_EVENTS && Date.now() < deadline) await sleep(50)
  await running.stop()
  await pgqd.stop()
  const audit = await readAuditTrail(liveInternal, 'live')
  const lags = audit.map((e) => Date.parse(e.recordedAt) - Date.parse(e.at)).sort((a, b) => a - b)

  process.stdout.write(
    `${JSON.stringify({
      bench: 'pgq',
      server: settings,
      oneEventPerTransaction: {
        callers: CALLERS,
        createAccountWithoutPgqPerSec: rate(without.perSec),
        createAccountWithPgqPerSec: rate(withPgq.perSec),
        pgqOverheadPct: Number((100 * (1 - withPgq.perSec / without.perSec)).toFixed(1)),
        insertEventPerSec: rate(single.perSec)
      },
      batched: {
        eventsPerTransaction: BATCH_EVENTS,
        eventsPerSecOneCaller: rate(batchedOne.perSec * BATCH_EVENTS),
        eventsPerSecTwoCallers: rate(batchedTwo.perSec * BATCH_EVENTS)
      },
      consumer: {
        partitions: sources.length,
        events: recorded,
        batches: drained.batches,
        meanBatchEvents: rate(recorded / drained.batches),
        ms: ms(consumerMs),
        eventsPerSec: rate((recorded * 1000) / consumerMs)
      },
      endToEnd: {
        ticker: 'pgqd, ticker_period 100 ms, ticker_max_lag 100 ms',
        events: audit.length,
        p50Ms: ms(percentile(lags, 50)),
        p99Ms: ms(percentile(lags, 99)),
        maxMs: ms(lags.at(-1) ?? Number.NaN)
      }
    })}\n`
  )
} finally {
  for (const close of closers.reverse()) await close().catch(() => {})
  for (const drop of drops.reverse()) await drop().catch(() => {})
  await server.stop()
}
