// The database contract: the same assertions on every implementation of the
// stored-procedure API (PGlite, one PostgreSQL, the PL/Proxy cluster behind pgBouncer).
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import {
  createAccount,
  type Db,
  DbError,
  getAccount,
  loadMigrations,
  loginFailed,
  loginLookup,
  loginSucceeded,
  logoutDevice,
  migrate,
  renewCredential,
  searchDirectory
} from '@parley/db'

const key = (n: number): Uint8Array => new Uint8Array(32).fill(n)

/** One contract, every implementation: the same assertions on PGlite and on PostgreSQL. */
export function databaseContract(mode: string, open: () => Promise<Db>): void {
  describe(`database contract on ${mode}`, () => {
    let db: Db
    before(async () => {
      db = await open()
      await migrate(db)
    })
    after(async () => {
      await db?.close()
    })

    it('applies migrations once and again is a no-op', async () => {
      const again = await migrate(db)
      assert.deepEqual(again.applied, [])
      assert.equal(again.current, (await loadMigrations()).at(-1)?.version)
    })

    it('refuses to run when an applied migration was edited', async () => {
      const migrations = await loadMigrations()
      const edited = migrations.map((m, i) => (i === 0 ? { ...m, checksum: 'changed' } : m))
      await assert.rejects(migrate(db, edited), DbError)
    })

    it('creates accounts and keeps names unique case-insensitively', async () => {
      const made = await createAccount(db, { name: 'Dora_Explorer', passwordHash: 'h1', displayName: 'Dora E.' })
      assert.deepEqual(made, { status: 'ok', name: 'Dora_Explorer', displayName: 'Dora E.' })
      assert.deepEqual(await createAccount(db, { name: 'dora_explorer', passwordHash: 'h2' }), { status: 'name_taken' })
      assert.deepEqual(await createAccount(db, { name: 'DORA_EXPLORER', passwordHash: 'h3' }), { status: 'name_taken' })
      const found = await getAccount(db, { name: 'DoRa_ExPlOrEr' })
      assert.equal(found?.name, 'Dora_Explorer')
      assert.equal(found?.displayName, 'Dora E.')
      assert.equal(await getAccount(db, { name: 'nobody_here' }), undefined)
    })

    it('lets exactly one of many concurrent registrations of a name win', async () => {
      const spellings = Array.from({ length: 24 }, (_, i) => (i % 2 === 0 ? 'racer_name' : 'RACER_name'))
      const results = await Promise.all(spellings.map((name, i) => createAccount(db, { name, passwordHash: `h${i}` })))
      assert.equal(results.filter((r) => r.status === 'ok').length, 1)
      assert.equal(results.filter((r) => r.status === 'name_taken').length, 23)
    })

    it('counts failed logins per name and per address, within a window', async () => {
      await createAccount(db, { name: 'fail_counter', passwordHash: 'h' })
      const first = await loginLookup(db, { name: 'FAIL_counter', address: '192.0.2.7', windowMs: 60_000 })
      assert.equal(first.name, 'fail_counter')
      assert.equal(first.passwordHash, 'h')
      assert.equal(first.nameFailures, 0)
      for (let i = 1; i <= 3; i++) {
        const counts = await loginFailed(db, { name: 'fail_counter', address: '192.0.2.7', windowMs: 60_000 })
        assert.equal(counts.nameFailures, i)
      }
      const later = await loginLookup(db, { name: 'fail_counter', address: '192.0.2.7', windowMs: 60_000 })
      assert.equal(later.nameFailures, 3)
      assert.equal(later.addressFailures, 3)
      assert.ok(later.nameLastFailure instanceof Date)
      // An unknown name is counted the same way, and looks the same apart from the missing hash.
      await loginFailed(db, { name: 'ghost_user', address: '192.0.2.8', windowMs: 60_000 })
      const ghost = await loginLookup(db, { name: 'ghost_user', address: '192.0.2.8', windowMs: 60_000 })
      assert.equal(ghost.name, undefined)
      assert.equal(ghost.passwordHash, undefined)
      assert.equal(ghost.nameFailures, 1)
      // Old failures are forgotten: with a 1 ms window, nothing recent counts, and the next failure starts again at 1.
      await new Promise((resolve) => setTimeout(resolve, 5))
      assert.equal((await loginLookup(db, { name: 'fail_counter', address: '192.0.2.7', windowMs: 1 })).nameFailures, 0)
      assert.equal((await loginFailed(db, { name: 'fail_counter', address: '192.0.2.7', windowMs: 1 })).nameFailures, 1)
    })

    it('issues serials per device, renews only the current one, once, and stops after logout', async () => {
      await createAccount(db, { name: 'serial_user', passwordHash: 'h' })
      await loginFailed(db, { name: 'serial_user', address: '192.0.2.9', windowMs: 60_000 })
      const a = await loginSucceeded(db, { name: 'SERIAL_USER', deviceKey: key(1) })
      assert.deepEqual(a, { status: 'ok', name: 'serial_user', serial: 1n })
      assert.equal(
        (await loginLookup(db, { name: 'serial_user', address: '192.0.2.9', windowMs: 60_000 })).nameFailures,
        0,
        'a success clears the name'
      )
      const b = await loginSucceeded(db, { name: 'serial_user', deviceKey: key(2) })
      assert.deepEqual(b, { status: 'ok', name: 'serial_user', serial: 2n })

      assert.deepEqual(await renewCredential(db, { name: 'serial_user', deviceKey: key(1), serial: 1n }), {
        status: 'ok',
        name: 'serial_user',
        serial: 3n
      })
      assert.deepEqual(
        await renewCredential(db, { name: 'serial_user', deviceKey: key(1), serial: 1n }),
        { status: 'stale' },
        'replayed renewal'
      )
      assert.deepEqual(
        await renewCredential(db, { name: 'serial_user', deviceKey: key(2), serial: 1n }),
        { status: 'stale' },
        'other device'
      )
      // Concurrent renewals of one credential: exactly one wins.
      const racing = await Promise.all(
        Array.from({ length: 8 }, () => renewCredential(db, { name: 'serial_user', deviceKey: key(2), serial: 2n }))
      )
      assert.equal(racing.filter((r) => r.status === 'ok').length, 1)

      assert.deepEqual(await logoutDevice(db, { name: 'serial_user', deviceKey: key(1) }), { status: 'ok' })
      assert.deepEqual(await logoutDevice(db, { name: 'serial_user', deviceKey: key(1) }), { status: 'logged_out' })
      assert.deepEqual(await renewCredential(db, { name: 'serial_user', deviceKey: key(1), serial: 3n }), { status: 'logged_out' })
      assert.deepEqual(await renewCredential(db, { name: 'serial_user', deviceKey: key(9), serial: 1n }), { status: 'logged_out' })
      assert.deepEqual(await renewCredential(db, { name: 'no_such_user', deviceKey: key(1), serial: 1n }), { status: 'no_account' })
      assert.deepEqual(await loginSucceeded(db, { name: 'no_such_user', deviceKey: key(1) }), { status: 'no_account' })
    })

    it('searches the directory by name prefix and display name, literally', async () => {
      await createAccount(db, { name: 'zeta_alpha', passwordHash: 'h', displayName: 'Zeta Alpha' })
      await createAccount(db, { name: 'zeta_beta', passwordHash: 'h', displayName: 'Bea Trice' })
      await createAccount(db, { name: 'omega_one', passwordHash: 'h', displayName: 'Zetan Omega' })
      const names = async (query: string, limit = 20): Promise<string[]> => (await searchDirectory(db, { query, limit })).map((r) => r.name)
      assert.deepEqual(await names('zeta'), ['zeta_alpha', 'zeta_beta', 'omega_one'], 'name matches first, then display names')
      assert.deepEqual(await names('ZETA_B'), ['zeta_beta'])
      assert.deepEqual(await names('trice'), ['zeta_beta'], 'a word of the display name')
      assert.deepEqual(await names('zeta', 1), ['zeta_alpha'])
      assert.deepEqual(await names('%'), [], 'wildcards are literal')
      assert.deepEqual(await names('zeta_'), ['zeta_alpha', 'zeta_beta'], 'an underscore is literal')
      assert.deepEqual(await names("'; DROP TABLE accounts; --"), [])
      assert.equal((await getAccount(db, { name: 'zeta_alpha' }))?.name, 'zeta_alpha', 'still there')
    })
  })
}
