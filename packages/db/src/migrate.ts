import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { Db } from './db.ts'
import { DbError } from './errors.ts'

export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations/', import.meta.url))

export interface Migration {
  version: number
  name: string
  sql: string
  checksum: string
}

/** The migration files, `NNNN_name.sql`, in order. */
export async function loadMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort()
  return await Promise.all(
    files.map(async (file) => {
      const sql = await readFile(new URL(file, `file://${dir}/`), 'utf8')
      return {
        version: Number(file.slice(0, 4)),
        name: file.slice(5, -4),
        sql,
        checksum: createHash('sha256').update(sql).digest('hex')
      }
    })
  )
}

export interface MigrateResult {
  applied: number[]
  current: number
}

/**
 * Brings the schema up to date, each migration in its own transaction under an
 * advisory lock (two servers starting at once apply each migration once).
 * Refuses to run when an applied migration's file has changed since.
 */
export async function migrate(db: Db, migrations?: Migration[]): Promise<MigrateResult> {
  const all = migrations ?? (await loadMigrations())
  if (await isClusterProxy(db)) return await checkProxy(db, all)
  const applied: number[] = []
  let current = 0
  for (const m of all) {
    await db.script(async (run) => {
      await run(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`)
      const rows = await run('SELECT checksum FROM schema_migrations WHERE version = $1', [m.version])
      if (rows.length > 0) {
        if (rows[0]?.checksum !== m.checksum) {
          throw new DbError(`migration ${m.version}_${m.name} was changed after it was applied: add a new migration instead`)
        }
        return
      }
      await run(m.sql)
      await run('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [m.version, m.name, m.checksum])
      applied.push(m.version)
    })
    current = m.version
  }
  return { applied, current }
}

/** A PL/Proxy proxy database (see @parley/db-cluster) has the parley_cluster schema and none of the tables. */
async function isClusterProxy(db: Db): Promise<boolean> {
  let proxy = false
  await db.script(async (run) => {
    const rows = await run("SELECT to_regnamespace('parley_cluster') IS NOT NULL AS proxy", [])
    proxy = rows[0]?.proxy === true
  })
  return proxy
}

/**
 * On a cluster proxy nothing is applied: the partitions hold the schema. The
 * proxy records what they run; an edited or pending migration is refused,
 * to be rolled out to the partitions with the cluster tool first.
 */
async function checkProxy(db: Db, all: Migration[]): Promise<MigrateResult> {
  let current = 0
  await db.script(async (run) => {
    const rows = await run('SELECT version, checksum FROM schema_migrations', [])
    const applied = new Map(rows.map((r) => [Number(r.version), String(r.checksum)]))
    for (const m of all) {
      const checksum = applied.get(m.version)
      if (checksum === undefined) {
        throw new DbError(`migration ${m.version}_${m.name} is not on this cluster yet: apply it to the partitions with the cluster tool`)
      }
      if (checksum !== m.checksum)
        throw new DbError(`migration ${m.version}_${m.name} was changed after it was applied: add a new migration instead`)
      current = m.version
    }
  })
  return { applied: [], current }
}
