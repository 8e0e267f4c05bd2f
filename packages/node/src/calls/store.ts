import type { DatabaseSync } from 'node:sqlite'
import { LIMITS } from '@parley/protocol'
import { openDatabase } from '../store/sqlite.ts'

/**
 * How a call ended, from this device's side: `completed` (it was connected),
 * `missed` (rang here, not answered), `no-answer` (this side called, nobody
 * answered), `declined`, `busy`, `cancelled` (the caller gave up, or this side
 * hung up before an answer), `answered-elsewhere` (another device of this
 * user took it), `unavailable` (no device of the callee could be reached) or
 * `failed` (media did not connect, or its certificate was not the signalled
 * one).
 */
export type CallOutcome =
  | 'completed'
  | 'missed'
  | 'no-answer'
  | 'declined'
  | 'busy'
  | 'cancelled'
  | 'answered-elsewhere'
  | 'unavailable'
  | 'failed'

export interface CallRecord {
  id: string
  direction: 'outgoing' | 'incoming'
  /** The other user. */
  peer: string
  video: boolean
  outcome: CallOutcome
  /** Why, in a few words (a refusal code, a failure). */
  reason: string | null
  startedAt: number
  answeredAt: number | null
  endedAt: number
  /** Connected time, seconds. */
  seconds: number
  /** From the dial (or the answer) to the first audio heard here, ms. */
  setupMs: number | null
  /** The media path: the local and remote ICE candidate types of the selected pair ('host', 'srflx', 'relay'). */
  path: string | null
  /** The last live figures of a connected call: estimated MOS (E-model), RTT, jitter, loss. */
  quality: CallQualitySummary | null
}

export interface CallQualitySummary {
  mos: number | null
  rttMs: number | null
  jitterMs: number | null
  lossFraction: number | null
}

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
