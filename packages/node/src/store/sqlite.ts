import { DatabaseSync } from 'node:sqlite'

/**
 * Opens (creating if need be) a node:sqlite database of the profile the way
 * every durable store of the daemon keeps one: WAL, so readers never wait for
 * a writer; `synchronous = FULL`, so a write the API acknowledged survives a
 * crash or a power cut; then `schema` (idempotent DDL: `CREATE ... IF NOT
 * EXISTS`). `path` ':memory:' for tests.
 */
export function openDatabase(path: string, schema: string): DatabaseSync {
  const db = new DatabaseSync(path)
  try {
    db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;')
    db.exec(schema)
  } catch (err) {
    db.close()
    throw err
  }
  return db
}
