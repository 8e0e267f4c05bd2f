import { dirname } from 'node:path'
import type { DatabaseSync } from 'node:sqlite'
import type { InfectedFile, OfferedFile, Transfer, TransferState } from '@parley/protocol'
import { openDatabase } from '../store/sqlite.ts'

export type { InfectedFile, OfferedFile, Transfer, TransferState } from '@parley/protocol'

/** States a transfer does not leave (but for a later word from the recipient: see FileService). */
export const FINAL_STATES: ReadonlySet<TransferState> = new Set(['done', 'quarantined', 'declined', 'cancelled', 'refused', 'failed'])

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS transfers (
    id TEXT NOT NULL,
    direction TEXT NOT NULL,
    peer TEXT NOT NULL,
    files TEXT NOT NULL,
    sources TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    folder TEXT,
    bytes INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    infected TEXT,
    PRIMARY KEY (id, direction)
  );
`

/**
 * Transfers of one device (`files.sqlite` in the profile): offers sent (with
 * where each file is read from, kept here only) and offers received, their
 * state and progress. Survives restarts: accepted transfers resume from here.
 */
export class FileStore {
  readonly #db: DatabaseSync

  /** The folder the database is in (the profile), or undefined for ':memory:'. */
  readonly folder: string | undefined

  constructor(path: string) {
    this.#db = openDatabase(path, SCHEMA)
    this.folder = path === ':memory:' || path === '' ? undefined : dirname(path)
    // A transfers table from before virus scanning.
    const columns = this.#db.prepare('PRAGMA table_info(transfers)').all() as Array<{ name: string }>
    if (!columns.some((c) => c.name === 'infected')) this.#db.exec('ALTER TABLE transfers ADD COLUMN infected TEXT')
  }

  add(
    t: Omit<Transfer, 'createdAt' | 'updatedAt' | 'bytes' | 'reason' | 'folder' | 'infected'> & { sources?: string[] },
    now = Date.now()
  ): boolean {
    const result = this.#db
      .prepare(
        `INSERT INTO transfers (id, direction, peer, files, sources, state, total, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`
      )
      .run(
        t.id,
        t.direction,
        t.peer,
        JSON.stringify(t.files),
        t.sources === undefined ? null : JSON.stringify(t.sources),
        t.state,
        t.total,
        now,
        now
      )
    return Number(result.changes) > 0
  }

  get(id: string, direction: Transfer['direction']): Transfer | undefined {
    const row = this.#db.prepare('SELECT * FROM transfers WHERE id = ? AND direction = ?').get(id, direction) as Row | undefined
    return row === undefined ? undefined : transferOf(row)
  }

  /** Where the files of an outgoing offer are read from (absolute paths, in the offer's order). */
  sources(id: string): string[] | undefined {
    const row = this.#db.prepare("SELECT sources FROM transfers WHERE id = ? AND direction = 'outgoing'").get(id) as
      | { sources: string | null }
      | undefined
    return row?.sources === null || row === undefined ? undefined : (JSON.parse(row.sources) as string[])
  }

  update(
    id: string,
    direction: Transfer['direction'],
    change: Partial<Pick<Transfer, 'state' | 'reason' | 'folder' | 'bytes' | 'infected'>>
  ): void {
    const current = this.get(id, direction)
    if (current === undefined) return
    const next = { ...current, ...change }
    this.#db
      .prepare(
        'UPDATE transfers SET state = ?, reason = ?, folder = ?, bytes = ?, infected = ?, updated_at = ? WHERE id = ? AND direction = ?'
      )
      .run(
        next.state,
        next.reason,
        next.folder,
        next.bytes,
        next.infected.length === 0 ? null : JSON.stringify(next.infected),
        Date.now(),
        id,
        direction
      )
  }

  /** The newest first. */
  list(limit = 100): Transfer[] {
    return (this.#db.prepare('SELECT * FROM transfers ORDER BY created_at DESC LIMIT ?').all(limit) as Row[]).map(transferOf)
  }

  /** Incoming transfers accepted and not finished: what to fetch (again). */
  pending(): Transfer[] {
    return (
      this.#db.prepare("SELECT * FROM transfers WHERE direction = 'incoming' AND state = 'accepted' ORDER BY created_at").all() as Row[]
    ).map(transferOf)
  }

  close(): void {
    this.#db.close()
  }
}

type Row = Record<string, unknown>

function transferOf(r: Row): Transfer {
  return {
    id: r.id as string,
    direction: r.direction as Transfer['direction'],
    peer: r.peer as string,
    files: JSON.parse(r.files as string) as OfferedFile[],
    state: r.state as TransferState,
    reason: (r.reason as string | null) ?? null,
    folder: (r.folder as string | null) ?? null,
    bytes: r.bytes as number,
    infected: r.infected === null || r.infected === undefined ? [] : (JSON.parse(r.infected as string) as InfectedFile[]),
    total: r.total as number,
    createdAt: r.created_at as number,
    updatedAt: r.updated_at as number
  }
}
