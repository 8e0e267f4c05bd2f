import { mkdir } from 'node:fs/promises'
import { PGlite } from '@electric-sql/pglite'
import { type Db, MIGRATION_LOCK_ID, type ProcedureName, procedureSql, type Row } from './db.ts'
import { type AbortOptions, DbUnavailableError, mapDbError } from './errors.ts'

const INT8_OID = 20

export interface PgliteInit {
  /** A folder to keep the database in; omitted: in memory (tests). */
  dataDir?: string
}

/** The embedded default: real PostgreSQL compiled to WebAssembly, in the data folder. */
export async function openPglite(init: PgliteInit = {}): Promise<Db> {
  if (init.dataDir !== undefined) await mkdir(init.dataDir, { recursive: true, mode: 0o700 })
  // int8 as text, as on the server driver: the wrappers turn it into bigint without losing precision.
  const options = { parsers: { [INT8_OID]: (v: string) => v } }
  const pg = init.dataDir === undefined ? new PGlite(options) : new PGlite(init.dataDir, options)
  await pg.waitReady
  return new PgliteDb(pg)
}

class PgliteDb implements Db {
  readonly kind = 'pglite' as const
  readonly #pg: PGlite
  #closed = false

  constructor(pg: PGlite) {
    this.#pg = pg
  }

  async call(procedure: ProcedureName, args: readonly unknown[], options: AbortOptions = {}): Promise<Row[]> {
    if (this.#closed) throw new DbUnavailableError('database is closed')
    options.signal?.throwIfAborted()
    try {
      const result = await this.#pg.query<Row>(procedureSql(procedure, args.length), args as unknown[])
      return result.rows
    } catch (err) {
      throw mapDbError(err, procedure)
    }
  }

  async script(fn: (run: (sql: string, params?: readonly unknown[]) => Promise<Row[]>) => Promise<void>): Promise<void> {
    await this.#pg.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_ID])
      await fn(async (sql, params) => {
        if (params === undefined) {
          const results = await tx.exec(sql)
          return (results.at(-1)?.rows ?? []) as Row[]
        }
        return (await tx.query<Row>(sql, params as unknown[])).rows
      })
    })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#pg.close()
  }
}
