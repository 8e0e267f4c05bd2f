import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { databaseContract, freshDatabase, type TestPostgres, testPostgres } from '@parley/testing'
import { createAccount, DbUnavailableError, getAccount, openDatabase, openPglite, openPostgres } from '../src/index.ts'

databaseContract('PGlite (embedded)', async () => await openPglite())

let pg: TestPostgres
const dropAll: Array<() => Promise<void>> = []
before(async () => {
  pg = await testPostgres()
})
after(async () => {
  for (const drop of dropAll) await drop()
  await pg?.stop()
})
databaseContract('PostgreSQL (server)', async () => {
  const fresh = await freshDatabase(pg.url)
  dropAll.push(fresh.drop)
  return await openPostgres({ url: fresh.url })
})

describe('durability and failure', () => {
  it('keeps accounts across a restart of the embedded database', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'parley-db-'))
    try {
      const first = await openDatabase({ dataDir: dir })
      await createAccount(first, { name: 'persistent_1', passwordHash: 'h' })
      await first.close()
      const second = await openDatabase({ dataDir: dir })
      assert.equal((await getAccount(second, { name: 'persistent_1' }))?.name, 'persistent_1')
      assert.deepEqual(await createAccount(second, { name: 'persistent_1', passwordHash: 'h' }), { status: 'name_taken' })
      await second.close()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('reports an unreachable server as unavailable, not as a bug', async () => {
    await assert.rejects(openPostgres({ url: 'postgres://postgres@127.0.0.1:1/none', connectTimeoutMs: 2000 }), DbUnavailableError)
  })

  it('reports a call on a closed database as unavailable', async () => {
    const fresh = await freshDatabase(pg.url)
    dropAll.push(fresh.drop)
    const db = await openDatabase({ url: fresh.url })
    await db.close()
    await assert.rejects(getAccount(db, { name: 'anyone_1' }), DbUnavailableError)
  })
})
