import pg from 'pg'
import { type ClusterPartition, type ClusterSpec, initPartition, switchPartitions } from './cluster.ts'

export interface SplitInit {
  spec: ClusterSpec
  /** One new, empty database per existing partition: new partition N + i takes over part of partition i. */
  newDatabases: string[]
  /** Called with each step, for the operator. */
  progress?: (message: string) => void
}

export interface SplitResult {
  spec: ClusterSpec
  /** Accounts moved to each new partition. */
  moved: number[]
  /** How long traffic to the old partitions was held (ms). */
  pauseMs: number
}

/**
 * Doubles the partitions the report's way: prepare the new partitions, then,
 * holding every old partition still (their procedures wait on the split
 * lock), copy the rows that move, switch the proxy to 2N partitions at once,
 * and drop the moved rows from the old ones. Calls that waited for a moved user
 * are refused there with PZ001 and retried by the driver, which the switched
 * proxy now sends to the new partition: no row and no login is lost.
 */
export async function splitCluster(init: SplitInit): Promise<SplitResult> {
  const progress = init.progress ?? (() => {})
  const old = [...init.spec.partitions].sort((a, b) => a.index - b.index)
  const n = old.length
  const m = 2 * n
  if (init.newDatabases.length !== n) throw new Error(`a split of ${n} partitions needs ${n} new databases`)
  const added: ClusterPartition[] = init.newDatabases.map((url, i) => ({ index: n + i, name: `p${n + i}`, url }))

  progress(`preparing ${n} new partitions`)
  for (const p of added) await initPartition(p.url, p.index, m)

  const sources = await Promise.all(old.map(async (p) => await connect(p.url)))
  const targets = await Promise.all(added.map(async (p) => await connect(p.url)))
  const proxy = await connect(init.spec.proxy)
  const moved: number[] = []
  let pauseMs = 0
  try {
    progress('holding the old partitions')
    const held = Date.now()
    await Promise.all(
      sources.map(async (c) => {
        await c.query('BEGIN')
        await c.query('SELECT parley.split_lock()')
      })
    )
    progress('copying the rows that move')
    await Promise.all(
      sources.map(async (source, i) => {
        const rows = (await source.query('SELECT * FROM parley.split_export($1, $2)', [m, n + i])).rows[0]
        const target = targets[i] as pg.Client
        const result = await target.query('SELECT * FROM parley.split_import($1, $2, $3)', [
          JSON.stringify(rows.o_accounts),
          JSON.stringify(rows.o_devices),
          JSON.stringify(rows.o_failures)
        ])
        moved[i] = Number(result.rows[0].o_accounts)
      })
    )
    progress(`switching the proxy to ${m} partitions`)
    await switchPartitions(proxy, added, { replace: false })
    progress('dropping moved rows from the old partitions')
    await Promise.all(
      sources.map(async (c) => {
        await c.query('SELECT * FROM parley.split_finish($1)', [m])
        await c.query('COMMIT')
      })
    )
    pauseMs = Date.now() - held
  } catch (err) {
    await Promise.all(sources.map(async (c) => await c.query('ROLLBACK').catch(() => {})))
    throw err
  } finally {
    await Promise.all([...sources, ...targets, proxy].map(async (c) => await c.end().catch(() => {})))
  }
  return { spec: { ...init.spec, partitions: [...old, ...added] }, moved, pauseMs }
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  return client
}
