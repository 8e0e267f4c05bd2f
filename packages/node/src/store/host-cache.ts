import { DatabaseSync } from 'node:sqlite'

/**
 * The host cache (the report's "alternate node table"): every supernode this
 * node has seen, with its addresses, last success, failures and measured
 * latency, kept on disk so that a restart or a lost supernode is recovered
 * from here before the seed list.
 */
export interface CachedHost {
  peerId: string
  addrs: string[]
  lastSuccess: number | null
  failures: number
  latencyMs: number | null
  lastSeen: number
}

/** Entries kept at most; the least useful go first. */
export const HOST_CACHE_MAX = 500

export class HostCache {
  readonly #db: DatabaseSync

  /** `path` ':memory:' for tests. */
  constructor(path: string) {
    this.#db = new DatabaseSync(path)
    this.#db.exec(`
      PRAGMA journal_mode = WAL;
      CREATE TABLE IF NOT EXISTS host_cache (
        peer_id TEXT PRIMARY KEY,
        addrs TEXT NOT NULL,
        last_success INTEGER,
        failures INTEGER NOT NULL DEFAULT 0,
        latency_ms REAL,
        last_seen INTEGER NOT NULL
      );
    `)
  }

  /** A supernode was seen (identify, DHT, another node): add it or refresh its addresses. */
  seen(peerId: string, addrs: string[], now = Date.now()): void {
    if (addrs.length === 0) return
    this.#db
      .prepare(
        `INSERT INTO host_cache (peer_id, addrs, last_seen) VALUES (?, ?, ?)
         ON CONFLICT (peer_id) DO UPDATE SET addrs = excluded.addrs, last_seen = excluded.last_seen`
      )
      .run(peerId, JSON.stringify(addrs.slice(0, 16)), now)
    this.#trim()
  }

  /** A connection and hello with it worked; `latencyMs` from a ping. */
  succeeded(peerId: string, latencyMs: number | undefined, now = Date.now()): void {
    this.#db
      .prepare(
        'UPDATE host_cache SET last_success = ?, failures = 0, latency_ms = coalesce(?, latency_ms), last_seen = ? WHERE peer_id = ?'
      )
      .run(now, latencyMs ?? null, now, peerId)
  }

  failed(peerId: string): void {
    this.#db.prepare('UPDATE host_cache SET failures = failures + 1 WHERE peer_id = ?').run(peerId)
  }

  /** The best candidates first: recent successes, few failures, low latency. */
  candidates(limit = 50, exclude: ReadonlySet<string> = new Set()): CachedHost[] {
    const rows = this.#db
      .prepare(
        `SELECT peer_id, addrs, last_success, failures, latency_ms, last_seen FROM host_cache
         ORDER BY failures ASC, (last_success IS NULL) ASC, last_success DESC, coalesce(latency_ms, 1e9) ASC LIMIT ?`
      )
      .all(limit + exclude.size) as Array<{
      peer_id: string
      addrs: string
      last_success: number | null
      failures: number
      latency_ms: number | null
      last_seen: number
    }>
    return rows
      .filter((r) => !exclude.has(r.peer_id))
      .slice(0, limit)
      .map((r) => ({
        peerId: r.peer_id,
        addrs: JSON.parse(r.addrs) as string[],
        lastSuccess: r.last_success,
        failures: r.failures,
        latencyMs: r.latency_ms,
        lastSeen: r.last_seen
      }))
  }

  get size(): number {
    return Number((this.#db.prepare('SELECT count(*) AS n FROM host_cache').get() as { n: number }).n)
  }

  close(): void {
    this.#db.close()
  }

  #trim(): void {
    this.#db
      .prepare(
        `DELETE FROM host_cache WHERE peer_id IN (
           SELECT peer_id FROM host_cache ORDER BY failures DESC, last_seen ASC
           LIMIT max(0, (SELECT count(*) FROM host_cache) - ?))`
      )
      .run(HOST_CACHE_MAX)
  }
}
