import type { Db, Row } from './db.ts'
import { type AbortOptions, DbError } from './errors.ts'

/**
 * Typed wrappers, one per stored procedure, in the same order as the
 * migration: `parley.create_account(...)` <-> `createAccount(db, args, options)`.
 * Rows become domain types here and nowhere else.
 */

function one(rows: Row[], procedure: string): Row {
  const row = rows[0]
  if (row === undefined) throw new DbError(`${procedure} returned no row`)
  return row
}

function text(row: Row, column: string): string {
  const v = row[column]
  if (typeof v !== 'string') throw new DbError(`column ${column} is not text`)
  return v
}

function maybeText(row: Row, column: string): string | undefined {
  const v = row[column]
  return v === null || v === undefined ? undefined : text(row, column)
}

function int(row: Row, column: string): number {
  const v = row[column]
  const n = typeof v === 'number' ? v : typeof v === 'string' || typeof v === 'bigint' ? Number(v) : Number.NaN
  if (!Number.isSafeInteger(n)) throw new DbError(`column ${column} is not an integer`)
  return n
}

function big(row: Row, column: string): bigint {
  const v = row[column]
  if (typeof v === 'bigint') return v
  if (typeof v === 'string' || typeof v === 'number') return BigInt(v)
  throw new DbError(`column ${column} is not a bigint`)
}

function time(row: Row, column: string): Date | undefined {
  const v = row[column]
  if (v === null || v === undefined) return undefined
  if (v instanceof Date) return v
  if (typeof v === 'string') return new Date(v)
  throw new DbError(`column ${column} is not a timestamp`)
}

export type CreateAccountResult = { status: 'ok'; name: string; displayName: string } | { status: 'name_taken' }

export async function createAccount(
  db: Db,
  args: { name: string; displayName?: string; email?: string; passwordHash: string },
  options?: AbortOptions
): Promise<CreateAccountResult> {
  const row = one(
    await db.call('parley.create_account', [args.name, args.displayName ?? null, args.email ?? null, args.passwordHash], options),
    'create_account'
  )
  const status = text(row, 'o_status')
  if (status === 'ok') return { status, name: text(row, 'o_name'), displayName: text(row, 'o_display_name') }
  if (status === 'name_taken') return { status }
  throw new DbError(`create_account: unknown status ${status}`)
}

export interface LoginLookup {
  /** Canonical spelling; undefined for an unknown name. */
  name: string | undefined
  passwordHash: string | undefined
  nameFailures: number
  nameLastFailure: Date | undefined
  addressFailures: number
  addressLastFailure: Date | undefined
  /** The database's clock, which throttling is computed against. */
  now: Date
}

export async function loginLookup(
  db: Db,
  args: { name: string; address: string; windowMs: number },
  options?: AbortOptions
): Promise<LoginLookup> {
  const row = one(await db.call('parley.login_lookup', [args.name, args.address, args.windowMs], options), 'login_lookup')
  return {
    name: maybeText(row, 'o_name'),
    passwordHash: maybeText(row, 'o_password_hash'),
    nameFailures: int(row, 'o_name_failures'),
    nameLastFailure: time(row, 'o_name_last_failure'),
    addressFailures: int(row, 'o_address_failures'),
    addressLastFailure: time(row, 'o_address_last_failure'),
    now: time(row, 'o_now') ?? new Date()
  }
}

export async function loginFailed(
  db: Db,
  args: { name: string; address: string; windowMs: number },
  options?: AbortOptions
): Promise<{ nameFailures: number; addressFailures: number }> {
  const row = one(await db.call('parley.login_failed', [args.name, args.address, args.windowMs], options), 'login_failed')
  return { nameFailures: int(row, 'o_name_failures'), addressFailures: int(row, 'o_address_failures') }
}

export type SerialResult = { status: 'ok'; name: string; serial: bigint } | { status: 'no_account' | 'stale' | 'logged_out' }

function serialResult(row: Row, procedure: string, allowed: readonly string[]): SerialResult {
  const status = text(row, 'o_status')
  if (status === 'ok') return { status, name: text(row, 'o_name'), serial: big(row, 'o_serial') }
  if (allowed.includes(status)) return { status: status as 'no_account' | 'stale' | 'logged_out' }
  throw new DbError(`${procedure}: unknown status ${status}`)
}

export async function loginSucceeded(db: Db, args: { name: string; deviceKey: Uint8Array }, options?: AbortOptions): Promise<SerialResult> {
  const row = one(await db.call('parley.login_succeeded', [args.name, args.deviceKey], options), 'login_succeeded')
  return serialResult(row, 'login_succeeded', ['no_account'])
}

export async function renewCredential(
  db: Db,
  args: { name: string; deviceKey: Uint8Array; serial: bigint },
  options?: AbortOptions
): Promise<SerialResult> {
  const row = one(await db.call('parley.renew_credential', [args.name, args.deviceKey, args.serial], options), 'renew_credential')
  return serialResult(row, 'renew_credential', ['no_account', 'stale', 'logged_out'])
}

export async function logoutDevice(
  db: Db,
  args: { name: string; deviceKey: Uint8Array },
  options?: AbortOptions
): Promise<{ status: 'ok' | 'logged_out' }> {
  const row = one(await db.call('parley.logout_device', [args.name, args.deviceKey], options), 'logout_device')
  const status = text(row, 'o_status')
  if (status === 'ok' || status === 'logged_out') return { status }
  throw new DbError(`logout_device: unknown status ${status}`)
}

export interface AccountSummary {
  name: string
  displayName: string
  createdAt: Date
}

export async function getAccount(db: Db, args: { name: string }, options?: AbortOptions): Promise<AccountSummary | undefined> {
  const row = one(await db.call('parley.get_account', [args.name], options), 'get_account')
  const name = maybeText(row, 'o_name')
  if (name === undefined) return undefined
  return { name, displayName: text(row, 'o_display_name'), createdAt: time(row, 'o_created_at') ?? new Date(0) }
}

export async function searchDirectory(
  db: Db,
  args: { query: string; limit: number },
  options?: AbortOptions
): Promise<Array<{ name: string; displayName: string }>> {
  const rows = await db.call('parley.search_directory', [args.query, args.limit], options)
  return rows.map((row) => ({ name: text(row, 'o_name'), displayName: text(row, 'o_display_name') }))
}
