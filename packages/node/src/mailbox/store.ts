import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { bytesEqual, LIMITS } from '@parley/protocol'
import { MailboxError } from './errors.ts'
import type { MailboxItem, MailboxItemRef } from './item.ts'
import type { MailboxPutOutcome } from './wire.ts'

/** The mailbox limits; a process (or a test) may lower any of them. */
export type MailboxLimits = { -readonly [K in keyof typeof LIMITS.mailbox]: number }

export function mailboxLimits(overrides: Partial<MailboxLimits> = {}): MailboxLimits {
  return { ...LIMITS.mailbox, ...overrides }
}

export interface MailboxPage {
  /** Item encodings, oldest first. */
  items: Uint8Array[]
  /** The cursor to ask from next. */
  next: number
  more: boolean
}

interface Pending {
  item: MailboxItem
  now: number
  resolve: (outcome: MailboxPutOutcome) => void
  reject: (err: MailboxError) => void
}

interface Counts {
  n: number
  b: number
}

/**
 * A supernode's share of the mailbox, in SQLite (`node:sqlite`): the items it
 * keeps, by recipient device, and tombstones of the items it deleted, so that
 * an item is never taken twice (kept until the item would have expired; after
 * that the item is refused as EXPIRED anyway).
 *
 * Durability: WAL with `synchronous = FULL`, so a put is acknowledged only
 * once its commit is on disk (NORMAL could lose the last commits to a power
 * cut, and a sender that saw "stored" would not deposit again). Puts that
 * arrive together share one transaction and one fsync (group commit): the
 * checks and inserts of a batch run in order inside it, and every put of the
 * batch resolves only after COMMIT.
 *
 * Checks in `put`: replay (the same sender device and id for the same
 * recipient device, stored or deleted: REPLAYED; the very same bytes again
 * are `unchanged`, so a sender may retry safely), the sender's quotas for the
 * recipient and in all (QUOTA), the supernode's totals (FULL). Signatures and
 * senders are the service's to check before.
 */
export class MailboxStore {
  readonly #db: DatabaseSync
  readonly #limits: MailboxLimits
  readonly #s: Record<
    | 'find'
    | 'tombstone'
    | 'perRecipient'
    | 'perSender'
    | 'insert'
    | 'page'
    | 'remove'
    | 'bury'
    | 'tombstones'
    | 'expiredCounts'
    | 'sweepItems'
    | 'sweepTombstones',
    StatementSync
  >
  #items = 0
  #bytes = 0
  #pending: Pending[] = []
  #flushing: Promise<void> | undefined
  #open = true

  /** `path` ':memory:' for tests; a file in the node's profile otherwise. */
  constructor(path: string, limits: Partial<MailboxLimits> = {}) {
    this.#limits = mailboxLimits(limits)
    this.#db = new DatabaseSync(path)
    this.#db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = FULL;
      CREATE TABLE IF NOT EXISTS mailbox_items (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        device TEXT NOT NULL,
        from_device TEXT NOT NULL,
        id TEXT NOT NULL,
        sender TEXT NOT NULL,
        recipient TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        size INTEGER NOT NULL,
        bytes BLOB NOT NULL,
        UNIQUE (device, from_device, id)
      );
      CREATE INDEX IF NOT EXISTS mailbox_items_by_device ON mailbox_items (device, seq);
      CREATE INDEX IF NOT EXISTS mailbox_items_by_sender ON mailbox_items (sender, recipient);
      CREATE INDEX IF NOT EXISTS mailbox_items_by_expiry ON mailbox_items (expires_at);
      CREATE TABLE IF NOT EXISTS mailbox_tombstones (
        device TEXT NOT NULL,
        from_device TEXT NOT NULL,
        id TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (device, from_device, id)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS mailbox_tombstones_by_expiry ON mailbox_tombstones (expires_at);
    `)
    const q = (sql: string): StatementSync => this.#db.prepare(sql)
    this.#s = {
      find: q('SELECT bytes FROM mailbox_items WHERE device = ? AND from_device = ? AND id = ?'),
      tombstone: q('SELECT 1 AS t FROM mailbox_tombstones WHERE device = ? AND from_device = ? AND id = ?'),
      perRecipient: q(
        'SELECT count(*) AS n, coalesce(sum(size), 0) AS b FROM mailbox_items WHERE sender = ? AND recipient = ? AND expires_at > ?'
      ),
      perSender: q('SELECT count(*) AS n, coalesce(sum(size), 0) AS b FROM mailbox_items WHERE sender = ? AND expires_at > ?'),
      insert: q(
        `INSERT INTO mailbox_items (device, from_device, id, sender, recipient, created_at, expires_at, size, bytes)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
      ),
      page: q('SELECT seq, bytes FROM mailbox_items WHERE device = ? AND seq > ? AND expires_at > ? ORDER BY seq LIMIT ?'),
      remove: q('DELETE FROM mailbox_items WHERE device = ? AND from_device = ? AND id = ? RETURNING size, expires_at'),
      bury: q('INSERT OR IGNORE INTO mailbox_tombstones (device, from_device, id, expires_at) VALUES (?, ?, ?, ?)'),
      tombstones: q('SELECT count(*) AS n FROM mailbox_tombstones WHERE device = ?'),
      expiredCounts: q('SELECT count(*) AS n, coalesce(sum(size), 0) AS b FROM mailbox_items WHERE expires_at <= ?'),
      sweepItems: q('DELETE FROM mailbox_items WHERE expires_at <= ?'),
      sweepTombstones: q('DELETE FROM mailbox_tombstones WHERE expires_at <= ?')
    }
    const totals = q('SELECT count(*) AS n, coalesce(sum(size), 0) AS b FROM mailbox_items').get() as unknown as Counts
    this.#items = Number(totals.n)
    this.#bytes = Number(totals.b)
  }

  /** Items kept (expired ones count until swept). */
  get size(): number {
    return this.#items
  }

  get bytes(): number {
    return this.#bytes
  }

  /**
   * Stores a checked item; resolves once it is committed to disk. Rejects with
   * MailboxError REPLAYED, QUOTA, FULL, or UNAVAILABLE (storage failed or closed).
   */
  async put(item: MailboxItem, now = Date.now()): Promise<MailboxPutOutcome> {
    if (!this.#open) throw new MailboxError('UNAVAILABLE', 'the mailbox store is closed')
    const done = new Promise<MailboxPutOutcome>((resolve, reject) => {
      this.#pending.push({ item, now, resolve, reject })
    })
    this.#flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      this.#flushing = undefined
      this.#flush()
    })
    return await done
  }

  #flush(): void {
    const batch = this.#pending
    this.#pending = []
    if (batch.length === 0) return
    const outcomes: Array<MailboxPutOutcome | MailboxError> = []
    const delta = { items: 0, bytes: 0 }
    try {
      this.#db.exec('BEGIN IMMEDIATE')
      try {
        for (const p of batch) {
          try {
            outcomes.push(this.#putOne(p.item, p.now, delta))
          } catch (err) {
            if (!(err instanceof MailboxError)) throw err
            outcomes.push(err)
          }
        }
        this.#db.exec('COMMIT')
      } catch (err) {
        if (this.#db.isTransaction) this.#db.exec('ROLLBACK')
        throw err
      }
    } catch (err) {
      const failed = new MailboxError('UNAVAILABLE', 'the mailbox store could not commit', { cause: err })
      for (const p of batch) p.reject(failed)
      return
    }
    this.#items += delta.items
    this.#bytes += delta.bytes
    batch.forEach((p, i) => {
      const outcome = outcomes[i] as MailboxPutOutcome | MailboxError
      if (outcome instanceof MailboxError) p.reject(outcome)
      else p.resolve(outcome)
    })
  }

  #putOne(item: MailboxItem, now: number, delta: { items: number; bytes: number }): MailboxPutOutcome {
    const s = this.#s
    const found = s.find.get(item.device, item.fromDevice, item.id) as { bytes: Uint8Array } | undefined
    if (found !== undefined) {
      if (bytesEqual(found.bytes, item.bytes)) return 'unchanged'
      throw new MailboxError('REPLAYED', 'another item with this id from this sender is kept for this device')
    }
    if (s.tombstone.get(item.device, item.fromDevice, item.id) !== undefined)
      throw new MailboxError('REPLAYED', 'an item with this id from this sender was already delivered to this device')
    const size = item.bytes.length
    const sender = item.from.toLowerCase()
    const recipient = item.to.toLowerCase()
    const l = this.#limits
    const forRecipient = s.perRecipient.get(sender, recipient, now) as unknown as Counts
    if (Number(forRecipient.n) + 1 > l.perRecipientItems || Number(forRecipient.b) + size > l.perRecipientBytes)
      throw new MailboxError(
        'QUOTA',
        `a sender keeps at most ${l.perRecipientItems} items (${l.perRecipientBytes} bytes) for one user here`
      )
    const all = s.perSender.get(sender, now) as unknown as Counts
    if (Number(all.n) + 1 > l.perSenderItems || Number(all.b) + size > l.perSenderBytes)
      throw new MailboxError('QUOTA', `a sender keeps at most ${l.perSenderItems} items (${l.perSenderBytes} bytes) here`)
    const full = (): boolean => this.#items + delta.items + 1 > l.supernodeItems || this.#bytes + delta.bytes + size > l.supernodeBytes
    if (full()) {
      // Expired items make room first.
      const expired = s.expiredCounts.get(now) as unknown as Counts
      s.sweepItems.run(now)
      delta.items -= Number(expired.n)
      delta.bytes -= Number(expired.b)
      if (full()) throw new MailboxError('FULL', 'this supernode keeps no more mailbox items')
    }
    s.insert.run(item.device, item.fromDevice, item.id, sender, recipient, item.createdAt, item.expiresAt, size, item.bytes)
    delta.items++
    delta.bytes += size
    return 'stored'
  }

  /** A page of a device's live items after `after` (a cursor from an earlier page, 0 at first). */
  fetch(device: string, after: number, now = Date.now()): MailboxPage {
    this.#assertOpen()
    const l = this.#limits
    const rows = this.#s.page.all(device, after, now, l.fetchPageItems + 1) as Array<{ seq: number; bytes: Uint8Array }>
    const items: Uint8Array[] = []
    let bytes = 0
    let next = after
    for (const row of rows) {
      if (items.length >= l.fetchPageItems) break
      // One item always fits (fetchPageBytes >= itemMaxBytes), so a page always moves on.
      if (items.length > 0 && bytes + row.bytes.length > l.fetchPageBytes) break
      items.push(row.bytes)
      bytes += row.bytes.length
      next = Number(row.seq)
    }
    return { items, next, more: rows.length > items.length }
  }

  /**
   * Deletes a device's items and leaves a tombstone for each one named, so
   * that none is stored again: until the item's expiry, or the expiry the
   * device gives for an item this supernode never held (at most
   * tombstonesPerDevice of those, and at most itemMaxTtlMs ahead).
   * Resolves with how many items were deleted.
   */
  delete(device: string, refs: MailboxItemRef[], now = Date.now()): number {
    this.#assertOpen()
    const s = this.#s
    let deleted = 0
    let freedBytes = 0
    try {
      this.#db.exec('BEGIN IMMEDIATE')
      let tombstones = Number((s.tombstones.get(device) as { n: number }).n)
      for (const ref of refs) {
        const removed = s.remove.get(device, ref.fromDevice, ref.id) as { size: number; expires_at: number } | undefined
        if (removed !== undefined) {
          deleted++
          freedBytes += Number(removed.size)
          tombstones += Number(s.bury.run(device, ref.fromDevice, ref.id, Number(removed.expires_at)).changes)
          continue
        }
        const until = Math.min(ref.expiresAt, now + this.#limits.itemMaxTtlMs)
        if (until <= now || tombstones >= this.#limits.tombstonesPerDevice) continue
        tombstones += Number(s.bury.run(device, ref.fromDevice, ref.id, until).changes)
      }
      this.#db.exec('COMMIT')
    } catch (err) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK')
      throw new MailboxError('UNAVAILABLE', 'the mailbox store could not delete', { cause: err })
    }
    this.#items -= deleted
    this.#bytes -= freedBytes
    return deleted
  }

  /** Drops expired items and tombstones. */
  sweep(now = Date.now()): { items: number; tombstones: number } {
    this.#assertOpen()
    const expired = this.#s.expiredCounts.get(now) as unknown as Counts
    const items = Number(this.#s.sweepItems.run(now).changes)
    const tombstones = Number(this.#s.sweepTombstones.run(now).changes)
    this.#items -= Number(expired.n)
    this.#bytes -= Number(expired.b)
    return { items, tombstones }
  }

  /** Commits what is pending, then closes the database (safe twice). */
  async close(): Promise<void> {
    if (!this.#open) return
    while (this.#flushing !== undefined) await this.#flushing
    this.#open = false
    this.#db.close()
  }

  #assertOpen(): void {
    if (!this.#open) throw new MailboxError('UNAVAILABLE', 'the mailbox store is closed')
  }
}
