import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import { createAccount, type Db, DbUnavailableError, getAccount, loginSucceeded, openPostgres, searchDirectory } from '@parley/db'
import { databaseContract, tempDir } from '@parley/testing'
import { execute, type LocalCluster, readClusterFile, readStats, splitLocalCluster, startLocalCluster } from '../src/index.ts'

const SETTINGS = { fsync: 'off' }
let dir: string
let cluster: LocalCluster

before(async () => {
  dir = await tempDir('parley-cluster-')
  cluster = await startLocalCluster({ dir, partitions: 4, settings: SETTINGS })
})
after(async () => {
  await cluster?.stop()
  await rm(dir, { recursive: true, force: true })
})

// The accounts contract, unchanged, through pgBouncer and the PL/Proxy proxy.
databaseContract('the PL/Proxy cluster through pgBouncer', async () => await openPostgres({ url: cluster.url }))

/** The partitions hashtext names for users, computed by PostgreSQL itself. */
async function partitionsOf(names: string[], count: number): Promise<Map<string, number>> {
  const rows = await execute<{ n: string; p: number }>(
    cluster.spec.internal,
    'SELECT n, hashtext(lower(n)) & ($2 - 1) AS p FROM unnest($1::text[]) n',
    [names, count]
  )
  return new Map(rows.map((r) => [r.n, Number(r.p)]))
}

async function rowsByPartition(): Promise<Map<string, string[]>> {
  const file = await readClusterFile(dir)
  const out = new Map<string, string[]>()
  for (const p of file?.spec.partitions ?? []) {
    out.set(
      p.name,
      (await execute<{ name_key: string }>(p.url, 'SELECT name_key FROM accounts')).map((r) => r.name_key)
    )
  }
  return out
}

describe('the cluster', () => {
  let db: Db
  before(async () => {
    db = await openPostgres({ url: cluster.url, maxConnections: 16 })
  })
  after(async () => {
    await db?.close()
  })

  it('keeps each user only on the partition hashtext names, in a table named accounts', async () => {
    const names = Array.from({ length: 64 }, (_, i) => `Route_User_${i}`)
    for (const name of names) assert.equal((await createAccount(db, { name, passwordHash: 'h' })).status, 'ok')
    const rows = await rowsByPartition()
    const homes = await partitionsOf(names, 4)
    for (const name of names) {
      const home = `p${homes.get(name)}`
      for (const [partition, keys] of rows) {
        assert.equal(
          keys.filter((k) => k === name.toLowerCase()).length,
          partition === home ? 1 : 0,
          `${name} on ${partition} (home ${home})`
        )
      }
    }
    for (const [partition, keys] of rows)
      assert.ok(
        keys.some((k) => k.startsWith('route_user_')),
        `${partition} got some of the 64`
      )
  })

  it('finds users on every partition in a directory search, merged and ordered', async () => {
    const results = await searchDirectory(db, { query: 'route_user_', limit: 100 })
    assert.equal(results.length, 64)
    const sorted = [...results].map((r) => r.name.toLowerCase())
    assert.deepEqual(sorted, [...sorted].sort())
    assert.equal((await searchDirectory(db, { query: 'route_user_', limit: 10 })).length, 10)
  })

  it('keeps serving the other partitions while one is down, and loses no acknowledged registration', async () => {
    const server = cluster.servers.get('p1')
    assert.ok(server)
    const acked: string[] = []
    const failures: Array<{ name: string; partition: number; error: unknown }> = []
    let killed = false
    let stop = false
    let n = 0
    const homes = await partitionsOf(
      Array.from({ length: 20_000 }, (_, i) => `Load_User_${i}`),
      4
    )
    const worker = async (): Promise<void> => {
      while (!stop) {
        const name = `Load_User_${n++}`
        const partition = homes.get(name) ?? -1
        try {
          const r = await createAccount(db, { name, passwordHash: 'h' })
          if (r.status === 'ok') acked.push(name)
        } catch (error) {
          failures.push({ name, partition, error })
        }
      }
    }
    const workers = Array.from({ length: 4 }, worker)
    try {
      await new Promise((resolve) => setTimeout(resolve, 500))
      const pid = await server.pid()
      assert.ok(pid)
      process.kill(pid, 'SIGKILL')
      killed = true
      await new Promise((resolve) => setTimeout(resolve, 1500))
    } finally {
      stop = true
      await Promise.all(workers)
    }
    assert.ok(killed)
    assert.ok(failures.length > 0, 'calls for partition 1 failed while it was down')
    for (const f of failures) {
      assert.equal(f.partition, 1, `${f.name} on partition ${f.partition} failed: ${String(f.error)}`)
      assert.ok(f.error instanceof DbUnavailableError, `a clear "try again": ${String(f.error)}`)
    }
    const afterKill = acked.filter((name) => !failures.some((f) => f.name === name))
    assert.ok(afterKill.length > failures.length, 'the other partitions went on')

    await server.start()
    for (const name of acked) assert.equal((await getAccount(db, { name }))?.name, name, `${name} was acknowledged`)
  })

  it('splits under load: doubles the partitions, loses no registration and no login', async () => {
    const acked = new Map<string, number>() // name -> acknowledged logins
    let stop = false
    let n = 0
    const errors: unknown[] = []
    const worker = async (w: number): Promise<void> => {
      while (!stop) {
        const name = `Split_${w}_${n++}`
        try {
          if ((await createAccount(db, { name, passwordHash: 'h' })).status !== 'ok') continue
          acked.set(name, 0)
          for (let i = 0; i < 2; i++) {
            const login = await loginSucceeded(db, { name, deviceKey: new Uint8Array(32).fill(w) })
            if (login.status === 'ok') acked.set(name, (acked.get(name) ?? 0) + 1)
          }
        } catch (error) {
          errors.push(error)
          if (errors.length > 100) stop = true
        }
      }
    }
    const workers = Array.from({ length: 4 }, (_, w) => worker(w))
    let result: Awaited<ReturnType<typeof splitLocalCluster>>
    try {
      await new Promise((resolve) => setTimeout(resolve, 300))
      result = await splitLocalCluster({ dir, settings: SETTINGS })
      await new Promise((resolve) => setTimeout(resolve, 500))
    } finally {
      stop = true
      await Promise.all(workers)
    }

    assert.deepEqual(errors, [], 'no call failed during the split')
    assert.equal(result.spec.partitions.length, 8)
    assert.ok(
      result.moved.every((m) => m > 0),
      `every new partition took users: ${result.moved.join()}`
    )
    const rows = await rowsByPartition()
    assert.equal(rows.size, 8)
    const all = [...rows.values()].flat()
    assert.equal(new Set(all).size, all.length, 'no user on two partitions')
    const homes = await partitionsOf([...acked.keys()], 8)
    const serials = new Map<string, number>()
    for (const p of (await readClusterFile(dir))?.spec.partitions ?? []) {
      for (const r of await execute<{ k: string; s: string }>(p.url, 'SELECT name_key AS k, credential_serial::text AS s FROM accounts')) {
        serials.set(`${p.name}/${r.k}`, Number(r.s))
      }
    }
    for (const [name, logins] of acked) {
      const home = `p${homes.get(name)}`
      assert.ok(rows.get(home)?.includes(name.toLowerCase()), `${name} on its partition ${home}`)
      assert.equal(serials.get(`${home}/${name.toLowerCase()}`), logins, `${name}: every acknowledged login counted`)
    }
    assert.ok(acked.size > 20, `the load ran through the split (${acked.size} users)`)
    // And the proxy serves everyone after the split.
    for (const name of [...acked.keys()].slice(0, 50)) assert.equal((await getAccount(db, { name }))?.name, name)
  })
  it('carries every registration and login through PgQ to the statistics, also from the new partitions', async () => {
    await createAccount(db, { name: 'After_Split_1', passwordHash: 'h' })
    await loginSucceeded(db, { name: 'After_Split_1', deviceKey: new Uint8Array(32).fill(9) })
    const rows = await rowsByPartition()
    const accounts = [...rows.values()].flat().length
    const logins = (
      await Promise.all(
        ((await readClusterFile(dir))?.spec.partitions ?? []).map(
          async (p) => await execute<{ s: string }>(p.url, 'SELECT coalesce(sum(credential_serial), 0)::text AS s FROM accounts')
        )
      )
    ).reduce((sum, r) => sum + Number(r[0]?.s), 0)
    // Every credential serial came from a login or a renewal; the contract suite renewed a few times.
    let stats = await readStats(cluster.spec.internal)
    for (let i = 0; i < 100 && (stats.totals.registrations < accounts || stats.totals.credentialsIssued < logins); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      stats = await readStats(cluster.spec.internal)
    }
    assert.equal(stats.totals.registrations, accounts, 'one account_created event per account')
    assert.equal(stats.totals.credentialsIssued, logins, 'one credential event per serial (logins and renewals)')
    assert.equal(stats.totals.logins, logins - stats.totals.credentialRenewals, 'a login event for every credential that was not a renewal')
    // A batch may come twice (the consumer restarts to follow the split): it then counts as duplicates
    // only, so every event is in the audit trail exactly once and the counters match it.
    const audited = await execute<{ n: number }>(cluster.spec.internal, 'SELECT count(*)::int AS n FROM parley_internal.audit_events')
    assert.equal(stats.totals.events, audited[0]?.n)
    assert.ok(
      stats.eventsByPartition.some((e) => e.partition === 'p7'),
      'the consumer follows the split'
    )
    assert.equal(
      stats.registrationsPerDay.reduce((sum, d) => sum + d.registrations, 0),
      accounts
    )
  })
})
