import { join } from 'node:path'
import type { Db } from './db.ts'
import { migrate } from './migrate.ts'
import { openPglite } from './pglite.ts'
import { openPostgres } from './postgres.ts'

export interface OpenDatabaseInit {
  /** postgres://... for a server (or pgBouncer); omitted: the embedded database in `dataDir`. */
  url?: string
  /** The login server's data folder; the embedded database lives in `<dataDir>/db`. */
  dataDir?: string
  /** Apply pending migrations. Default: true. */
  migrate?: boolean
}

/** Opens the database the configuration names and brings its schema up to date. */
export async function openDatabase(init: OpenDatabaseInit): Promise<Db> {
  const db =
    init.url !== undefined
      ? await openPostgres({ url: init.url })
      : await openPglite(init.dataDir === undefined ? {} : { dataDir: join(init.dataDir, 'db') })
  if (init.migrate !== false) {
    try {
      await migrate(db)
    } catch (err) {
      await db.close()
      throw err
    }
  }
  return db
}
