import { LIMITS } from '@parley/protocol'
import pg from 'pg'
import { type Db, MIGRATION_LOCK_ID, type ProcedureName, procedureSql, type Row } from './db.ts'
import { type AbortOptions, DbUnavailableError, MOVED_SQLSTATE, mapDbError } from './errors.ts'

export interface PostgresInit {
  /** postgres://user@host:port/db */
  url: string
  /** Default: 10. */
  maxConnections?: number
  /** Default: 5_000. */
  connectTimeoutMs?: number
}

// int8 as text (the wrappers turn it into bigint): never lose precision to Number. For this pool only.
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 ? (v: string) => v : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser
}

/**
 * One PostgreSQL server (or pgBouncer in front of a cluster). Queries are
 * unnamed extended-protocol statements, which survive transaction pooling.
 */
export async function openPostgres(init: PostgresInit): Promise<Db> {
  const pool = new pg.Pool({
    connectionString: init.url,
    max: init.maxConnections ?? 10,
    connectionTimeoutMillis: init.connectTimeoutMs ?? 5_000,
    idleTimeoutMillis: 30_000,
    application_name: 'parley',
    types
  })
  // An idle client losing its server must not crash the process; the next query reports it.
  pool.on('error', () => {})
  const db = new PostgresDb(pool)
  try {
    const client = await pool.connect()
    client.release()
  } catch (err) {
    await pool.end().catch(() => {})
    throw mapDbError(err, 'connect')
  }
  return db
}

function toParam(value: unknown): unknown {
  if (value instanceof Uint8Array && !Buffer.isBuffer(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  if (typeof value === 'bigint') return value.toString()
  return value
}

function fromValue(value: unknown): unknown {
  return Buffer.isBuffer(value) ? new Uint8Array(value) : value
}

class PostgresDb implements Db {
  readonly kind = 'postgres' as const
  readonly #pool: pg.Pool
  #closed = false

  constructor(pool: pg.Pool) {
    this.#pool = pool
  }

  async call(procedure: ProcedureName, args: readonly unknown[], options: AbortOptions = {}): Promise<Row[]> {
    if (this.#closed) throw new DbUnavailableError('database is closed')
    options.signal?.throwIfAborted()
    const sql = procedureSql(procedure, args.length)
    const params = args.map(toParam)
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await this.#pool.query<Row>(sql, params)
        return result.rows.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, fromValue(v)])))
      } catch (err) {
        // In a cluster mid-split, the user moved while the call was on its way: by now the proxy routes it anew.
        if ((err as { code?: unknown }).code === MOVED_SQLSTATE && attempt < LIMITS.cluster.movedRetries) {
          await new Promise((resolve) => setTimeout(resolve, 10 * (attempt + 1)))
          continue
        }
        throw mapDbError(err, procedure)
      }
    }
  }

  async script(fn: (run: (sql: string, params?: readonly unknown[]) => Promise<Row[]>) => Promise<void>): Promise<void> {
    let client: pg.PoolClient
    try {
      client = await this.#pool.connect()
    } catch (err) {
      throw mapDbError(err, 'migration')
    }
    try {
      await client.query('BEGIN')
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_ID])
      await fn(async (sql, params) => {
        const result = params === undefined ? await client.query(sql) : await client.query(sql, params.map(toParam))
        const last = Array.isArray(result) ? result.at(-1) : result
        return (last?.rows ?? []) as Row[]
      })
      await client.query('COMMIT')
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      client.release()
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#pool.end()
  }
}
