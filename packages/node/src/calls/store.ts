import type { DatabaseSync } from 'node:sqlite'
import { type CallOutcome, type CallQualitySummary, type CallRecord, LIMITS } from '@parley/protocol'
import { openDatabase } from '../store/sqlite.ts'

export type { CallOutcome, CallQualitySummary, CallRecord } from '@parley/protocol'

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS calls (
    id TEXT PRIMARY KEY,
    direction TEXT NOT NULL,
    peer TEXT NOT NULL,
    video INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    started_at INTEGER NOT NULL,
    answered_at INTEGER,
    ended_at INTEGER NOT NULL,
    seconds REAL NOT NULL,
    path TEXT,
    quality TEXT,
    setup_ms REAL
  );
  CREATE INDEX IF NOT EXISTS calls_by_time ON calls (started_at);
`

/** The call history of one device (`calls.sqlite` in the profile): one row per call, written when it ends. */
export class CallStore {
  readonly #db: DatabaseSync

  constructor(path: string) {
    this.#db = openDatabase(path, SCHEMA)
  }

  add(record: CallRecord): void {
    this.#db
      .prepare(
        `INSERT INTO calls (id, direction, peer, video, outcome, reason, started_at, answered_at, ended_at, seconds, path, quality, setup_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
      )
      .run(
        record.id,
        record.direction,
        record.peer,
        record.video ? 1 : 0,
        record.outcome,
        record.reason,
        record.startedAt,
        record.answeredAt,
        record.endedAt,
        record.seconds,
        record.path,
        record.quality === null ? null : JSON.stringify(record.quality),
        record.setupMs
      )
    // The oldest go past the limit.
    this.#db
      .prepare('DELETE FROM calls WHERE id IN (SELECT id FROM calls ORDER BY started_at DESC LIMIT -1 OFFSET ?)')
      .run(LIMITS.calls.historyMax)
  }

  /** The newest first. */
  list(limit = 50): CallRecord[] {
    return (this.#db.prepare('SELECT * FROM calls ORDER BY started_at DESC LIMIT ?').all(limit) as Row[]).map(recordOf)
  }

  get(id: string): CallRecord | undefined {
    const row = this.#db.prepare('SELECT * FROM calls WHERE id = ?').get(id) as Row | undefined
    return row === undefined ? undefined : recordOf(row)
  }

  close(): void {
    this.#db.close()
  }
}

type Row = Record<string, unknown>

function recordOf(r: Row): CallRecord {
  return {
    id: r.id as string,
    direction: r.direction as CallRecord['direction'],
    peer: r.peer as string,
    video: r.video === 1,
    outcome: r.outcome as CallOutcome,
    reason: (r.reason as string | null) ?? null,
    startedAt: r.started_at as number,
    answeredAt: (r.answered_at as number | null) ?? null,
    endedAt: r.ended_at as number,
    seconds: r.seconds as number,
    path: (r.path as string | null) ?? null,
    quality: typeof r.quality === 'string' ? (JSON.parse(r.quality) as CallQualitySummary) : null,
    setupMs: (r.setup_ms as number | null) ?? null
  }
}
