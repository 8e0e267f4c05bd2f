import type { AbortOptions } from './errors.ts'

/** The stored procedures the application may call: the whole database API. */
export type ProcedureName =
  | 'parley.create_account'
  | 'parley.login_lookup'
  | 'parley.login_failed'
  | 'parley.login_succeeded'
  | 'parley.renew_credential'
  | 'parley.logout_device'
  | 'parley.get_account'
  | 'parley.search_directory'

export type Row = Record<string, unknown>

/**
 * One database, whatever serves it (PGlite in-process, one PostgreSQL server,
 * or a PL/Proxy cluster behind pgBouncer). Application code calls procedures
 * only; `script` is for migrations.
 */
export interface Db {
  readonly kind: 'pglite' | 'postgres'
  /** `SELECT * FROM <procedure>($1, ...)`: the rows it returns. */
  call(procedure: ProcedureName, args: readonly unknown[], options?: AbortOptions): Promise<Row[]>
  /** Runs a multi-statement script in one transaction, under a lock that serializes concurrent migrators. */
  script(fn: (run: (sql: string, params?: readonly unknown[]) => Promise<Row[]>) => Promise<void>): Promise<void>
  close(): Promise<void>
}

export function procedureSql(procedure: ProcedureName, argCount: number): string {
  const params = Array.from({ length: argCount }, (_, i) => `$${i + 1}`).join(', ')
  return `SELECT * FROM ${procedure}(${params})`
}

/** A fixed advisory lock id for migrations ("parley" in ASCII). */
export const MIGRATION_LOCK_ID = 0x706172_6c6579
