import type { DatabaseSync } from 'node:sqlite'
import type { Contact, ContactState, MessageState, StoredMessage } from '@parley/protocol'
import { openDatabase } from '../store/sqlite.ts'

/**
 * The daemon's chat database (`<profile>/chat.sqlite`, node:sqlite): every
 * signed envelope as received (the source of truth, so history can be handed
 * to a new device as is), the chat lines materialized from them with edits
 * and deletes applied whatever the order of arrival, full-text search (FTS5),
 * the outbox, contacts, the devices known per user and settings. Writes are
 * transactions with synchronous=FULL: what the API acknowledged survives a
 * crash.
 */

export type { Contact, ContactState, MessageState, StoredMessage } from '@parley/protocol'
export type OutboxState = 'pending' | 'stored' | 'delivered'

/** What the store needs of an envelope (the @parley/messaging Envelope). */
export interface EnvelopeFields {
  id: string
  conv: string
  kind: string
  from: string
  device: string
  lamport: number
  sentAt: number
  body: Record<string, unknown>
}

/** Who last changed a contact's state, and when (Lamport time): the newest wins. */
export interface ContactVersion {
  lamport: number
  device: string
}

export interface OutboxEntry {
  envelopeId: string
  recipient: string
  device: string
  state: OutboxState
  attempts: number
  nextAt: number
  raw: Uint8Array
}

const STATE_RANK: Record<MessageState, number> = { received: 0, pending: 0, stored: 1, delivered: 2, read: 3, refused: 4 }

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS envelopes (
    id TEXT PRIMARY KEY,
    conv TEXT NOT NULL,
    kind TEXT NOT NULL,
    author TEXT NOT NULL,
    device TEXT NOT NULL,
    lamport INTEGER NOT NULL,
    sent_at INTEGER NOT NULL,
    target TEXT,
    edit_text TEXT,
    raw BLOB NOT NULL,
    received_at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS envelopes_conv ON envelopes (conv, lamport, id);
  CREATE INDEX IF NOT EXISTS envelopes_target ON envelopes (target) WHERE target IS NOT NULL;
  CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    conv TEXT NOT NULL,
    author TEXT NOT NULL,
    device TEXT NOT NULL,
    lamport INTEGER NOT NULL,
    sent_at INTEGER NOT NULL,
    text TEXT NOT NULL,
    reply_to TEXT,
    edited INTEGER NOT NULL DEFAULT 0,
    edit_lamport INTEGER,
    edit_id TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL
  );
  CREATE INDEX IF NOT EXISTS messages_order ON messages (conv, lamport, id);
  CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5 (text, content = 'messages', content_rowid = 'seq');
  CREATE TRIGGER IF NOT EXISTS messages_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
  END;
  CREATE TRIGGER IF NOT EXISTS messages_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
  END;
  CREATE TRIGGER IF NOT EXISTS messages_au AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
    INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
  END;
  CREATE TABLE IF NOT EXISTS outbox (
    envelope_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    device TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    PRIMARY KEY (envelope_id, device)
  );
  CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_at);
  CREATE TABLE IF NOT EXISTS contacts (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    message TEXT,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    version_device TEXT NOT NULL DEFAULT ''
  );
  CREATE TABLE IF NOT EXISTS devices (
    name TEXT NOT NULL,
    peer_id TEXT NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (name, peer_id)
  );
  CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`

export class ChatStore {
  readonly #db: DatabaseSync

  /** `path` ':memory:' for tests. */
  constructor(path: string) {
    this.#db = openDatabase(path, SCHEMA)
    // A contacts table from before contact states had versions.
    const columns = this.#db.prepare('PRAGMA table_info(contacts)').all() as Array<{ name: string }>
    if (!columns.some((c) => c.name === 'version'))
      this.#db.exec(`
        ALTER TABLE contacts ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE contacts ADD COLUMN version_device TEXT NOT NULL DEFAULT '';
      `)
  }

  close(): void {
    this.#db.close()
  }

  /** The highest Lamport time of any envelope kept: the clock starts after it. */
  maxLamport(): number {
    const row = this.#db.prepare('SELECT max(lamport) AS l FROM envelopes').get() as { l: number | null }
    return row.l ?? 0
  }

  /**
   * Keeps an envelope and applies it (idempotent: a duplicate changes
   * nothing). `state` is the state of a new text line: 'pending' for one this
   * device sends, 'received' otherwise.
   */
  add(envelope: EnvelopeFields, raw: Uint8Array, state: MessageState = 'received', now = Date.now()): 'added' | 'duplicate' {
    const target = typeof envelope.body.target === 'string' ? envelope.body.target : null
    return this.#transaction(() => {
      const inserted = this.#db
        .prepare(
          `INSERT INTO envelopes (id, conv, kind, author, device, lamport, sent_at, target, edit_text, raw, received_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
        )
        .run(
          envelope.id,
          envelope.conv,
          envelope.kind,
          envelope.from,
          envelope.device,
          envelope.lamport,
          envelope.sentAt,
          target,
          envelope.kind === 'edit' ? String(envelope.body.text ?? '') : null,
          raw,
          now
        )
      if (inserted.changes === 0) return 'duplicate'
      if (envelope.kind === 'text') {
        const text = String(envelope.body.text ?? '')
        const replyTo = typeof envelope.body.replyTo === 'string' ? envelope.body.replyTo : null
        this.#db
          .prepare(
            `INSERT INTO messages (id, conv, author, device, lamport, sent_at, text, reply_to, state)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
          )
          .run(envelope.id, envelope.conv, envelope.from, envelope.device, envelope.lamport, envelope.sentAt, text, replyTo, state)
        // Edits and deletes that came before their target apply now.
        const early = this.#db
          .prepare(`SELECT id, kind, author, lamport, edit_text FROM envelopes WHERE target = ? AND kind IN ('edit', 'delete')`)
          .all(envelope.id) as Array<{ id: string; kind: string; author: string; lamport: number; edit_text: string | null }>
        for (const e of early) this.#applyChange(envelope.id, e.kind, e.author, e.lamport, e.id, e.edit_text ?? '')
      } else if ((envelope.kind === 'edit' || envelope.kind === 'delete') && target !== null) {
        this.#applyChange(target, envelope.kind, envelope.from, envelope.lamport, envelope.id, String(envelope.body.text ?? ''))
      }
      return 'added'
    })
  }

  /** The raw envelope bytes kept for an id. */
  raw(id: string): Uint8Array | undefined {
    const row = this.#db.prepare('SELECT raw FROM envelopes WHERE id = ?').get(id) as { raw: Uint8Array } | undefined
    return row?.raw
  }

  /** Every envelope of a conversation, in causal order (to hand history to a new device). */
  envelopes(conv: string, limit: number): Uint8Array[] {
    const rows = this.#db
      .prepare(
        'SELECT raw FROM (SELECT raw, lamport, id FROM envelopes WHERE conv = ? ORDER BY lamport DESC, id DESC LIMIT ?) ORDER BY lamport, id'
      )
      .all(conv, limit) as Array<{ raw: Uint8Array }>
    return rows.map((r) => r.raw)
  }

  /** The raw envelopes of one kind in a conversation, in order (a group's membership history). */
  envelopesOfKind(conv: string, kind: string): Uint8Array[] {
    const rows = this.#db.prepare('SELECT raw FROM envelopes WHERE conv = ? AND kind = ? ORDER BY lamport, id').all(conv, kind) as Array<{
      raw: Uint8Array
    }>
    return rows.map((r) => r.raw)
  }

  /** The raw envelopes of one kind in every conversation, oldest first, at most `limit`. */
  envelopesByKind(kind: string, limit: number): Uint8Array[] {
    const rows = this.#db.prepare('SELECT raw FROM envelopes WHERE kind = ? ORDER BY lamport, id LIMIT ?').all(kind, limit) as Array<{
      raw: Uint8Array
    }>
    return rows.map((r) => r.raw)
  }

  /** The parts of one voicemail (envelopes of kind 'voicemail' whose body names this call), oldest first. */
  voicemailEnvelopes(call: string, limit: number): Uint8Array[] {
    const rows = this.#db
      .prepare(
        `SELECT raw FROM envelopes WHERE kind = 'voicemail' AND json_extract(CAST(raw AS TEXT), '$.body.call') = ? ORDER BY lamport, id LIMIT ?`
      )
      .all(call, limit) as Array<{ raw: Uint8Array }>
    return rows.map((r) => r.raw)
  }

  /** The newest `limit` envelopes after a Lamport time, oldest first (typing is never kept). */
  envelopesSince(lamport: number, limit: number): Uint8Array[] {
    const rows = this.#db
      .prepare(
        'SELECT raw FROM (SELECT raw, lamport, id FROM envelopes WHERE lamport > ? ORDER BY lamport DESC, id DESC LIMIT ?) ORDER BY lamport, id'
      )
      .all(lamport, limit) as Array<{ raw: Uint8Array }>
    return rows.map((r) => r.raw)
  }

  /** The group conversations this device knows. */
  groupConversations(): string[] {
    const rows = this.#db.prepare(`SELECT DISTINCT conv FROM envelopes WHERE kind = 'group'`).all() as Array<{ conv: string }>
    return rows.map((r) => r.conv)
  }

  /** The conversations this device has, most recent first. */
  conversations(): Array<{ conv: string; lastAt: number; messages: number }> {
    return this.#db
      .prepare('SELECT conv, max(sent_at) AS lastAt, count(*) AS messages FROM messages GROUP BY conv ORDER BY lastAt DESC')
      .all() as Array<{ conv: string; lastAt: number; messages: number }>
  }

  /** The last `limit` chat lines of a conversation, oldest first. */
  history(conv: string, limit: number): StoredMessage[] {
    const rows = this.#db
      .prepare(`SELECT * FROM (SELECT * FROM messages WHERE conv = ? ORDER BY lamport DESC, id DESC LIMIT ?) ORDER BY lamport, id`)
      .all(conv, limit) as unknown as MessageRow[]
    return rows.map(toMessage)
  }

  message(id: string): StoredMessage | undefined {
    const row = this.#db.prepare('SELECT * FROM messages WHERE id = ?').get(id) as unknown as MessageRow | undefined
    return row === undefined ? undefined : toMessage(row)
  }

  /** Full-text search over chat lines (FTS5 query syntax), best matches first. */
  search(query: string, limit: number, conv?: string): StoredMessage[] {
    const rows = this.#db
      .prepare(
        `SELECT m.* FROM messages_fts f JOIN messages m ON m.seq = f.rowid
         WHERE messages_fts MATCH ? AND m.deleted = 0 ${conv === undefined ? '' : 'AND m.conv = ?'}
         ORDER BY f.rank LIMIT ?`
      )
      .all(...(conv === undefined ? [ftsQuery(query), limit] : [ftsQuery(query), conv, limit])) as unknown as MessageRow[]
    return rows.map(toMessage)
  }

  /** Raises a sent line's state (never lowers it: read > delivered > stored > pending). */
  raiseState(id: string, state: MessageState): boolean {
    const current = this.#db.prepare('SELECT state FROM messages WHERE id = ?').get(id) as { state: MessageState } | undefined
    if (current === undefined || STATE_RANK[state] <= STATE_RANK[current.state]) return false
    this.#db.prepare('UPDATE messages SET state = ? WHERE id = ?').run(state, id)
    return true
  }

  // The outbox: one entry per envelope and recipient device, until delivered or stored.

  enqueue(envelopeId: string, recipient: string, devices: string[], now = Date.now()): void {
    this.#transaction(() => {
      const insert = this.#db.prepare(
        `INSERT INTO outbox (envelope_id, recipient, device, state, next_at) VALUES (?, ?, ?, 'pending', ?) ON CONFLICT DO NOTHING`
      )
      for (const device of devices) insert.run(envelopeId, recipient, device, now)
    })
  }

  /** Entries due for an attempt, oldest first. */
  due(now = Date.now(), limit = 100): OutboxEntry[] {
    const rows = this.#db
      .prepare(
        `SELECT o.envelope_id, o.recipient, o.device, o.state, o.attempts, o.next_at, e.raw
         FROM outbox o JOIN envelopes e ON e.id = o.envelope_id
         WHERE o.state != 'delivered' AND o.next_at <= ? ORDER BY o.next_at LIMIT ?`
      )
      .all(now, limit) as Array<{
      envelope_id: string
      recipient: string
      device: string
      state: OutboxState
      attempts: number
      next_at: number
      raw: Uint8Array
    }>
    return rows.map((r) => ({
      envelopeId: r.envelope_id,
      recipient: r.recipient,
      device: r.device,
      state: r.state,
      attempts: r.attempts,
      nextAt: r.next_at,
      raw: r.raw
    }))
  }

  /** Records an attempt's outcome: delivered (done), stored (the mailbox has it; the device gets it from there), or retry later. */
  settle(envelopeId: string, device: string, outcome: OutboxState, retryAt: number): void {
    if (outcome === 'delivered') {
      this.#db.prepare('DELETE FROM outbox WHERE envelope_id = ? AND device = ?').run(envelopeId, device)
      return
    }
    this.#db
      .prepare('UPDATE outbox SET state = ?, attempts = attempts + 1, next_at = ? WHERE envelope_id = ? AND device = ?')
      .run(outcome, retryAt, envelopeId, device)
  }

  /** A stored copy that the device fetched from a mailbox: nothing left to do for it. */
  forget(envelopeId: string, device: string): void {
    this.#db.prepare('DELETE FROM outbox WHERE envelope_id = ? AND device = ?').run(envelopeId, device)
  }

  outboxSize(): number {
    return (this.#db.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n
  }

  // Contacts and devices.

  contact(name: string): Contact | undefined {
    const row = this.#db.prepare('SELECT name, state, message, updated_at FROM contacts WHERE name = ?').get(name) as
      | { name: string; state: ContactState; message: string | null; updated_at: number }
      | undefined
    return row === undefined ? undefined : { name: row.name, state: row.state, message: row.message, updatedAt: row.updated_at }
  }

  /**
   * Sets a contact's state if `version` is newer than the one it has (the
   * last writer wins, by Lamport time, then device): every device of the user
   * ends with the same state whatever order the changes arrive in. Whether it
   * was applied.
   */
  setContact(name: string, state: ContactState, message: string | null, version: ContactVersion, now = Date.now()): boolean {
    const result = this.#db
      .prepare(
        `INSERT INTO contacts (name, state, message, updated_at, version, version_device) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET state = excluded.state, message = coalesce(excluded.message, contacts.message),
           updated_at = excluded.updated_at, version = excluded.version, version_device = excluded.version_device
         WHERE (excluded.version, excluded.version_device) > (contacts.version, contacts.version_device)`
      )
      .run(name, state, message, now, version.lamport, version.device)
    return Number(result.changes) > 0
  }

  /** The version of a contact's state (Lamport time 0 when there is none). */
  contactVersion(name: string): ContactVersion {
    const row = this.#db.prepare('SELECT version, version_device FROM contacts WHERE name = ?').get(name) as
      | { version: number; version_device: string }
      | undefined
    return { lamport: row?.version ?? 0, device: row?.version_device ?? '' }
  }

  contacts(): Contact[] {
    const rows = this.#db
      .prepare(`SELECT name, state, message, updated_at FROM contacts WHERE state != 'removed' ORDER BY name`)
      .all() as Array<{
      name: string
      state: ContactState
      message: string | null
      updated_at: number
    }>
    return rows.map((r) => ({ name: r.name, state: r.state, message: r.message, updatedAt: r.updated_at }))
  }

  rememberDevice(name: string, peerId: string, now = Date.now()): void {
    this.#db
      .prepare(
        `INSERT INTO devices (name, peer_id, last_seen) VALUES (?, ?, ?) ON CONFLICT (name, peer_id) DO UPDATE SET last_seen = max(devices.last_seen, excluded.last_seen)`
      )
      .run(name, peerId, now)
  }

  /** The devices of a user this device has seen (directory, messages), most recent first. */
  devicesOf(name: string, limit = 8): string[] {
    const rows = this.#db.prepare('SELECT peer_id FROM devices WHERE name = ? ORDER BY last_seen DESC LIMIT ?').all(name, limit) as Array<{
      peer_id: string
    }>
    return rows.map((r) => r.peer_id)
  }

  setting(key: string): string | undefined {
    return (this.#db.prepare('SELECT value FROM settings WHERE key = ?').get(key) as { value: string } | undefined)?.value
  }

  setSetting(key: string, value: string): void {
    this.#db
      .prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value')
      .run(key, value)
  }

  #applyChange(target: string, kind: string, author: string, lamport: number, id: string, text: string): void {
    const row = this.#db.prepare('SELECT author, deleted, edit_lamport, edit_id FROM messages WHERE id = ?').get(target) as
      | { author: string; deleted: number; edit_lamport: number | null; edit_id: string | null }
      | undefined
    // Only the author changes a line; a delete is final; among edits the latest (lamport, id) wins.
    if (row === undefined || row.author !== author || row.deleted === 1) return
    if (kind === 'delete') {
      this.#db.prepare(`UPDATE messages SET deleted = 1, text = '' WHERE id = ?`).run(target)
      return
    }
    const newer = row.edit_lamport === null || lamport > row.edit_lamport || (lamport === row.edit_lamport && id > (row.edit_id ?? ''))
    if (newer)
      this.#db
        .prepare('UPDATE messages SET text = ?, edited = 1, edit_lamport = ?, edit_id = ? WHERE id = ?')
        .run(text, lamport, id, target)
  }

  /** Runs `work` in one transaction (one disk sync); nested calls join the outer one. */
  transaction<T>(work: () => T): T {
    return this.#transaction(work)
  }

  #depth = 0

  #transaction<T>(work: () => T): T {
    if (this.#depth > 0) {
      this.#depth++
      try {
        return work()
      } finally {
        this.#depth--
      }
    }
    this.#db.exec('BEGIN IMMEDIATE')
    this.#depth = 1
    try {
      const result = work()
      this.#db.exec('COMMIT')
      return result
    } catch (err) {
      this.#db.exec('ROLLBACK')
      throw err
    } finally {
      this.#depth = 0
    }
  }
}

interface MessageRow {
  id: string
  conv: string
  author: string
  device: string
  lamport: number
  sent_at: number
  text: string
  reply_to: string | null
  edited: number
  deleted: number
  state: MessageState
}

function toMessage(r: MessageRow): StoredMessage {
  return {
    id: r.id,
    conv: r.conv,
    from: r.author,
    device: r.device,
    lamport: r.lamport,
    at: r.sent_at,
    text: r.text,
    replyTo: r.reply_to,
    edited: r.edited === 1,
    deleted: r.deleted === 1,
    state: r.state
  }
}

/** Plain words become an FTS5 query of quoted terms (no syntax errors from user input). */
function ftsQuery(query: string): string {
  const terms = query.match(/[\p{L}\p{N}_]+/gu) ?? []
  return terms.length === 0 ? '""' : terms.map((t) => `"${t}"`).join(' ')
}
