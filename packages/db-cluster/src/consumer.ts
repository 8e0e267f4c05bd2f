import { readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'

/**
 * The PgQ consumer behind the statistics and the audit trail: for each
 * partition, pgq.next_batch -> pgq.get_batch_events -> one internal
 * transaction (parley_internal.record_batch) -> pgq.finish_batch.
 *
 * PgQ delivers at least once: killed after the internal commit and before
 * finish_batch, the consumer gets the same batch again. record_batch keys the
 * audit trail by (partition, ev_id) and counts only the events it inserts, so
 * a replay counts nothing twice. Each partition runs on its own: one that is
 * down is logged and retried while the others go on.
 *
 * Queries are unnamed statements (no prepared statements), so partitions may
 * sit behind pgBouncer in transaction pooling.
 */

export const EVENT_QUEUE_NAME = 'parley_events'
export const DEFAULT_CONSUMER_NAME = 'parley_stats'

const SQL_DIR = new URL('../sql/', import.meta.url)
/** The internal database's lock while its schema is (re)applied; "pgqi" in ASCII. */
const INTERNAL_SCHEMA_LOCK = 0x70677169
/** A partition's lock while its queue is installed, and around pgq.ticker() calls; "pgqt" in ASCII. */
const PARTITION_PGQ_LOCK = 0x70677174

export interface ConsumerLogger {
  info(fields: Record<string, unknown>, message: string): void
  warn(fields: Record<string, unknown>, message: string): void
}

/** Warnings as JSON lines on stderr; info is dropped. */
export const consumerStderrLogger: ConsumerLogger = {
  info() {},
  warn(fields, message) {
    process.stderr.write(`${JSON.stringify({ level: 'warn', time: new Date().toISOString(), msg: message, ...fields })}\n`)
  }
}

export interface PartitionSource {
  /** The partition's name in the audit trail; keep it stable (the audit key is (name, ev_id)). */
  name: string
  /** postgres:// URL of the partition database itself (not the proxy). */
  url: string
}

export interface BatchRecorded {
  partition: string
  batchId: string
  events: number
  /** Events recorded (and counted) now for the first time. */
  newEvents: number
  /** Events that had been recorded before: a replayed batch. */
  duplicates: number
}

export interface EventConsumerInit {
  partitions: readonly PartitionSource[]
  /** postgres:// URL of the internal (statistics) database; install its schema with installInternalSchema. */
  internalUrl: string
  /** The PgQ consumer name, registered on every partition. Default: parley_stats. */
  consumerName?: string
  /** Pause between polls of an idle partition. Default: 200 ms. */
  pollMs?: number
  /** First wait before retrying a failed partition, doubling up to 10 s. Default: 1 s. */
  retryMs?: number
  /** Call pgq.ticker on each partition before polling it (no pgqd running there). Default: false. */
  tick?: boolean
  logger?: ConsumerLogger
  /**
   * Called after a batch is committed to the internal database and before
   * pgq.finish_batch: a hook for tests (a consumer that never returns from it
   * and is killed leaves the batch to be delivered again).
   */
  onBatchRecorded?: (batch: BatchRecorded) => void | Promise<void>
}

export interface PartitionRunResult {
  partition: string
  batches: number
  events: number
  newEvents: number
  duplicates: number
  error?: string
}

export interface RunOnceResult {
  batches: number
  events: number
  newEvents: number
  duplicates: number
  partitions: PartitionRunResult[]
  /** Partitions that failed this round (the others were still consumed). */
  errors: Array<{ partition: string; error: string }>
}

interface Partition {
  source: PartitionSource
  pool: pg.Pool
  /** Serializes runOnce and the loop on one partition. */
  lock: Promise<unknown>
  failures: number
}

// int8 as text (batch and event ids are passed back as they came); date as text.
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 || oid === pg.types.builtins.DATE
      ? (v: string) => v
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser
}

function newPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    query_timeout: 60_000,
    application_name: 'parley-pgq-consumer',
    types
  })
  // A server going away under an idle client must not crash the process; the next query reports it.
  pool.on('error', () => {})
  return pool
}

function message(err: unknown): string {
  return err instanceof Error ? err.message || String(err) : String(err)
}

interface RawEvent {
  ev_id: string
  ev_time: string
  ev_txid: string | null
  ev_type: string | null
  ev_data: string | null
  ev_extra1: string | null
}

/** One PgQ event as record_batch takes it: ev_data parsed here, so that bad JSON cannot wedge a batch. */
function toRecord(ev: RawEvent): Record<string, unknown> {
  let data: unknown = null
  let rawData: string | null = null
  if (ev.ev_data !== null) {
    try {
      data = JSON.parse(ev.ev_data)
    } catch {
      rawData = ev.ev_data
    }
  }
  const atValue = data !== null && typeof data === 'object' && !Array.isArray(data) ? (data as Record<string, unknown>)['at'] : undefined
  const at = typeof atValue === 'string' && Number.isFinite(Date.parse(atValue)) ? atValue : null
  return {
    ev_id: ev.ev_id,
    ev_type: ev.ev_type,
    ev_time: ev.ev_time,
    ev_txid: ev.ev_txid,
    ev_extra1: ev.ev_extra1,
    at,
    data,
    raw_data: rawData
  }
}

export class EventConsumer {
  readonly #init: EventConsumerInit
  readonly #consumer: string
  readonly #partitions: Partition[]
  readonly #internal: pg.Pool
  readonly #logger: ConsumerLogger
  readonly #abort = new AbortController()
  #loops: Promise<void>[] | undefined
  #stopping: Promise<void> | undefined

  constructor(init: EventConsumerInit) {
    const names = new Set<string>()
    for (const p of init.partitions) {
      if (p.name === '' || names.has(p.name)) throw new Error(`EventConsumer: partition names must be unique and not empty (${p.name})`)
      names.add(p.name)
    }
    this.#init = init
    this.#consumer = init.consumerName ?? DEFAULT_CONSUMER_NAME
    this.#logger = init.logger ?? consumerStderrLogger
    this.#partitions = init.partitions.map((source) => ({ source, pool: newPool(source.url, 2), lock: Promise.resolve(), failures: 0 }))
    this.#internal = newPool(init.internalUrl, Math.min(Math.max(init.partitions.length, 1), 8))
  }

  /** Starts one loop per partition; returns at once. */
  start(): void {
    if (this.#stopping !== undefined) throw new Error('EventConsumer: stopped')
    if (this.#loops !== undefined) return
    this.#loops = this.#partitions.map((p) => this.#loop(p))
  }

  /** Stops the loops (a batch in hand is finished first) and closes the connections. Safe to call twice. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#abort.abort()
      await Promise.allSettled(this.#loops ?? [])
      await Promise.allSettled(this.#partitions.map((p) => p.lock))
      await Promise.allSettled([...this.#partitions.map((p) => p.pool.end()), this.#internal.end()])
    })()
    return this.#stopping
  }

  /**
   * One round over every partition, in parallel: tick (with `tick: true`), then
   * record batches until the partition has none ready. Failing partitions are
   * reported in `errors`, not thrown.
   */
  async runOnce(): Promise<RunOnceResult> {
    if (this.#stopping !== undefined) throw new Error('EventConsumer: stopped')
    const partitions = await Promise.all(
      this.#partitions.map(async (p) => {
        const result: PartitionRunResult = { partition: p.source.name, batches: 0, events: 0, newEvents: 0, duplicates: 0 }
        try {
          await this.#exclusive(p, () => this.#drain(p, result))
        } catch (err) {
          result.error = message(err)
        }
        return result
      })
    )
    const sum = (f: (r: PartitionRunResult) => number): number => partitions.reduce((n, r) => n + f(r), 0)
    return {
      batches: sum((r) => r.batches),
      events: sum((r) => r.events),
      newEvents: sum((r) => r.newEvents),
      duplicates: sum((r) => r.duplicates),
      partitions,
      errors: partitions.flatMap((r) => (r.error === undefined ? [] : [{ partition: r.partition, error: r.error }]))
    }
  }

  async #exclusive<T>(p: Partition, fn: () => Promise<T>): Promise<T> {
    const previous = p.lock
    let release!: () => void
    p.lock = new Promise<void>((resolve) => {
      release = resolve
    })
    try {
      await previous.catch(() => {})
      return await fn()
    } finally {
      release()
    }
  }

  async #loop(p: Partition): Promise<void> {
    const signal = this.#abort.signal
    while (!signal.aborted) {
      let wait = this.#init.pollMs ?? 200
      try {
        const result: PartitionRunResult = { partition: p.source.name, batches: 0, events: 0, newEvents: 0, duplicates: 0 }
        await this.#exclusive(p, () => this.#drain(p, result))
        if (p.failures > 0) this.#logger.info({ partition: p.source.name }, 'partition is back')
        p.failures = 0
      } catch (err) {
        p.failures++
        wait = Math.min((this.#init.retryMs ?? 1_000) * 2 ** Math.min(p.failures - 1, 10), 10_000)
        this.#logger.warn(
          { partition: p.source.name, failures: p.failures, retryInMs: wait, err: message(err) },
          'pgq consumer: partition failed, retrying'
        )
      }
      await sleep(wait, undefined, { signal }).catch(() => {})
    }
  }

  /** Ticks (if asked) and records ready batches until there are none (or stop). */
  async #drain(p: Partition, result: PartitionRunResult): Promise<void> {
    if (this.#init.tick === true) await this.#tick(p)
    while (!this.#abort.signal.aborted) {
      const batch = await this.#consumeBatch(p)
      if (batch === undefined) return
      result.batches++
      result.events += batch.events
      result.newEvents += batch.newEvents
      result.duplicates += batch.duplicates
    }
  }

  async #tick(p: Partition): Promise<void> {
    // One simple query, one implicit transaction: the lock keeps two consumers'
    // pgq.ticker calls apart, and the ticker's statements take their snapshots after it.
    await p.pool.query(`SELECT pg_advisory_xact_lock(${PARTITION_PGQ_LOCK}); SELECT pgq.ticker('${EVENT_QUEUE_NAME}')`)
  }

  /** One batch of one partition, start to finish; undefined when none is ready. */
  async #consumeBatch(p: Partition): Promise<BatchRecorded | undefined> {
    const next = await p.pool.query<{ batch_id: string | null }>('SELECT pgq.next_batch($1, $2) AS batch_id', [
      EVENT_QUEUE_NAME,
      this.#consumer
    ])
    const batchId = next.rows[0]?.batch_id ?? null
    if (batchId === null) return undefined
    const events = await p.pool.query<RawEvent>(
      `SELECT ev_id, to_json(ev_time) #>> '{}' AS ev_time, ev_txid, ev_type, ev_data, ev_extra1
         FROM pgq.get_batch_events($1) ORDER BY ev_id`,
      [batchId]
    )
    let recorded: BatchRecorded = { partition: p.source.name, batchId, events: 0, newEvents: 0, duplicates: 0 }
    if (events.rows.length > 0) {
      // One statement: the audit rows, the counters and the batch row commit together or not at all.
      const r = await this.#internal.query<{ o_events: number; o_new_events: number; o_duplicates: number }>(
        'SELECT o_events, o_new_events, o_duplicates FROM parley_internal.record_batch($1, $2, $3::jsonb)',
        [p.source.name, batchId, JSON.stringify(events.rows.map(toRecord))]
      )
      const row = r.rows[0]
      if (row === undefined) throw new Error('record_batch returned no row')
      recorded = { partition: p.source.name, batchId, events: row.o_events, newEvents: row.o_new_events, duplicates: row.o_duplicates }
      if (recorded.duplicates > 0) {
        this.#logger.info({ ...recorded }, 'pgq consumer: batch delivered again; its events were recorded before and are not counted twice')
      }
      await this.#init.onBatchRecorded?.(recorded)
    }
    await p.pool.query('SELECT pgq.finish_batch($1)', [batchId])
    return recorded
  }
}

async function withClient(url: string, fn: (client: pg.Client) => Promise<void>): Promise<void> {
  const client = new pg.Client({ connectionString: url, application_name: 'parley-pgq-install', types })
  await client.connect()
  try {
    await fn(client)
  } finally {
    await client.end().catch(() => {})
  }
}

async function inTransaction(client: pg.Client, lock: number, fn: () => Promise<void>): Promise<void> {
  await client.query('BEGIN')
  try {
    await client.query(`SELECT pg_advisory_xact_lock(${lock})`)
    await fn()
    await client.query('COMMIT')
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  }
}

/** Creates or updates the internal database's schema (sql/internal.sql); harmless to repeat. */
export async function installInternalSchema(url: string): Promise<void> {
  const sql = await readFile(new URL('internal.sql', SQL_DIR), 'utf8')
  await withClient(url, async (client) => {
    await inTransaction(client, INTERNAL_SCHEMA_LOCK, async () => {
      await client.query(sql)
    })
  })
}

export interface PartitionQueueOptions {
  /** Register this consumer too (parley_stats always is). */
  consumerName?: string
  /** Queue settings instead of sql/partition-pgq.sql's (100 ms, 500 events, 5 s). */
  tickerMaxLagMs?: number
  tickerMaxCount?: number
  tickerIdlePeriodMs?: number
}

/**
 * Gives a partition its events: the pgq extension (superuser), the queue
 * parley_events, its ticker settings and the consumer's registration
 * (sql/partition-pgq.sql). Harmless to repeat. Install it before the events
 * that must be counted: a consumer sees the events queued after it registered.
 */
export async function installPartitionQueue(url: string, options: PartitionQueueOptions = {}): Promise<void> {
  const sql = await readFile(new URL('partition-pgq.sql', SQL_DIR), 'utf8')
  await withClient(url, async (client) => {
    await inTransaction(client, PARTITION_PGQ_LOCK, async () => {
      await client.query(sql)
      const settings: Array<[string, string | undefined]> = [
        ['ticker_max_lag', options.tickerMaxLagMs === undefined ? undefined : `${options.tickerMaxLagMs} milliseconds`],
        ['ticker_max_count', options.tickerMaxCount === undefined ? undefined : String(options.tickerMaxCount)],
        ['ticker_idle_period', options.tickerIdlePeriodMs === undefined ? undefined : `${options.tickerIdlePeriodMs} milliseconds`]
      ]
      for (const [name, value] of settings) {
        if (value !== undefined) await client.query('SELECT pgq.set_queue_config($1, $2, $3)', [EVENT_QUEUE_NAME, name, value])
      }
      if (options.consumerName !== undefined)
        await client.query('SELECT pgq.register_consumer($1, $2)', [EVENT_QUEUE_NAME, options.consumerName])
    })
  })
}

export interface EventStats {
  registrationsPerDay: Array<{ day: string; registrations: number }>
  /** Hours as ISO strings (UTC), e.g. 2026-11-27T16:00:00.000Z. */
  loginsPerHour: Array<{ hour: string; logins: number }>
  failedLoginsPerHour: Array<{ hour: string; failures: number }>
  credentialsPerHour: Array<{ hour: string; issued: number; renewals: number }>
  eventsByPartition: Array<{ partition: string; type: string; events: number }>
  totals: {
    events: number
    registrations: number
    logins: number
    failedLogins: number
    credentialsIssued: number
    credentialRenewals: number
  }
  batches: { batches: number; deliveries: number; replayedBatches: number; duplicateEvents: number }
}

const num = (v: unknown): number => Number(v)
const iso = (v: unknown): string => (v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString())

/** The statistics, through the internal database's read functions. */
export async function readStats(url: string): Promise<EventStats> {
  let stats: EventStats | undefined
  await withClient(url, async (client) => {
    const q = async (sql: string): Promise<Record<string, unknown>[]> => (await client.query(sql)).rows
    const registrationsPerDay = (await q('SELECT o_day, o_registrations FROM parley_internal.registrations_per_day()')).map((r) => ({
      day: String(r['o_day']),
      registrations: num(r['o_registrations'])
    }))
    const loginsPerHour = (await q('SELECT o_hour, o_logins FROM parley_internal.logins_per_hour()')).map((r) => ({
      hour: iso(r['o_hour']),
      logins: num(r['o_logins'])
    }))
    const failedLoginsPerHour = (await q('SELECT o_hour, o_failures FROM parley_internal.failed_logins_per_hour()')).map((r) => ({
      hour: iso(r['o_hour']),
      failures: num(r['o_failures'])
    }))
    const credentialsPerHour = (await q('SELECT o_hour, o_issued, o_renewals FROM parley_internal.credentials_per_hour()')).map((r) => ({
      hour: iso(r['o_hour']),
      issued: num(r['o_issued']),
      renewals: num(r['o_renewals'])
    }))
    const eventsByPartition = (await q('SELECT o_partition, o_ev_type, o_events FROM parley_internal.events_by_partition()')).map((r) => ({
      partition: String(r['o_partition']),
      type: String(r['o_ev_type']),
      events: num(r['o_events'])
    }))
    const b = (await q('SELECT * FROM parley_internal.batch_summary()'))[0] ?? {}
    const total = <T>(rows: T[], f: (r: T) => number): number => rows.reduce((n, r) => n + f(r), 0)
    stats = {
      registrationsPerDay,
      loginsPerHour,
      failedLoginsPerHour,
      credentialsPerHour,
      eventsByPartition,
      totals: {
        events: total(eventsByPartition, (r) => r.events),
        registrations: total(registrationsPerDay, (r) => r.registrations),
        logins: total(loginsPerHour, (r) => r.logins),
        failedLogins: total(failedLoginsPerHour, (r) => r.failures),
        credentialsIssued: total(credentialsPerHour, (r) => r.issued),
        credentialRenewals: total(credentialsPerHour, (r) => r.renewals)
      },
      batches: {
        batches: num(b['o_batches'] ?? 0),
        deliveries: num(b['o_deliveries'] ?? 0),
        replayedBatches: num(b['o_replayed_batches'] ?? 0),
        duplicateEvents: num(b['o_duplicate_events'] ?? 0)
      }
    }
  })
  return stats!
}

export interface AuditEvent {
  partition: string
  evId: string
  batchId: string
  type: string
  nameKey: string | null
  /** The event's time (its data's "at"), ISO. */
  at: string
  data: unknown
  rawData: string | null
  /** When the consumer recorded it (the internal database's clock), ISO. */
  recordedAt: string
}

/** A partition's whole audit trail, in event order (paged through parley_internal.audit_events). */
export async function readAuditTrail(url: string, partition: string): Promise<AuditEvent[]> {
  const out: AuditEvent[] = []
  await withClient(url, async (client) => {
    let after: string | null = null
    for (;;) {
      const rows: Record<string, unknown>[] = (
        await client.query(
          'SELECT o_partition, o_ev_id, o_batch_id, o_ev_type, o_name_key, o_at, o_data, o_raw_data, o_recorded_at FROM parley_internal.audit_events($1, $2, $3)',
          [partition, after, 5_000]
        )
      ).rows
      for (const r of rows) {
        out.push({
          partition: String(r['o_partition']),
          evId: String(r['o_ev_id']),
          batchId: String(r['o_batch_id']),
          type: String(r['o_ev_type']),
          nameKey: r['o_name_key'] === null ? null : String(r['o_name_key']),
          at: iso(r['o_at']),
          data: r['o_data'],
          rawData: r['o_raw_data'] === null ? null : String(r['o_raw_data']),
          recordedAt: iso(r['o_recorded_at'])
        })
      }
      if (rows.length < 5_000) return
      after = out.at(-1)?.evId ?? null
    }
  })
  return out
}
