import { readFile } from 'node:fs/promises'
import { loadMigrations, migrate, openPostgres } from '@parley/db'
import pg from 'pg'
import { installInternalSchema, installPartitionQueue } from './consumer.ts'

/** One partition database of the cluster. */
export interface ClusterPartition {
  index: number
  /** p0, p1, ...: also the name of its event source in the audit trail. */
  name: string
  url: string
}

/** What the cluster is: written to `<dir>/cluster.json` by init and split, read by everything else. */
export interface ClusterSpec {
  version: 1
  partitions: ClusterPartition[]
  /** The PL/Proxy proxy database (behind pgBouncer). */
  proxy: string
  /** The internal database: statistics and the audit trail from PgQ. */
  internal: string
}

export const SQL_DIR = new URL('../sql/', import.meta.url)

export async function readSql(name: string): Promise<string> {
  return await readFile(new URL(name, SQL_DIR), 'utf8')
}

/** Runs one script (or a few statements) on a database, then disconnects. */
export async function execute<T extends pg.QueryResultRow = pg.QueryResultRow>(url: string, sql: string, params?: unknown[]): Promise<T[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const result = params === undefined ? await client.query<T>(sql) : await client.query<T>(sql, params)
    const last = Array.isArray(result) ? result.at(-1) : result
    return (last?.rows ?? []) as T[]
  } finally {
    await client.end()
  }
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0
}

/** Creates a database on a server unless it exists; returns its URL. */
export async function ensureDatabase(serverUrl: string, name: string): Promise<string> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`bad database name ${name}`)
  const exists = await execute(serverUrl, 'SELECT 1 FROM pg_database WHERE datname = $1', [name])
  if (exists.length === 0) await execute(serverUrl, `CREATE DATABASE ${name}`)
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return url.toString()
}

/** libpq connection string for PL/Proxy, from a postgres:// URL. */
export function connstrOf(url: string): string {
  const u = new URL(url)
  const parts = [`host=${u.hostname}`, `port=${u.port || '5432'}`, `dbname=${decodeURIComponent(u.pathname.slice(1))}`, 'connect_timeout=2']
  if (u.username !== '') parts.push(`user=${decodeURIComponent(u.username)}`)
  if (u.password !== '') parts.push(`password=${decodeURIComponent(u.password)}`)
  return parts.join(' ')
}

/**
 * Makes a database a partition: the schema and procedures (the same migrations
 * as a single database), PgQ with the event queue, and its place in the cluster.
 */
export async function initPartition(url: string, index: number, count: number): Promise<void> {
  const db = await openPostgres({ url })
  try {
    await migrate(db)
  } finally {
    await db.close()
  }
  await installPartitionQueue(url)
  await execute(url, await readSql('partition-split.sql'))
  await setPartitionInfo(url, index, count)
}

export async function setPartitionInfo(url: string, index: number, count: number, client?: pg.ClientBase): Promise<void> {
  const sql = `INSERT INTO parley.partition_info (partition_index, partition_count) VALUES ($1, $2)
    ON CONFLICT (only_row) DO UPDATE SET partition_index = EXCLUDED.partition_index, partition_count = EXCLUDED.partition_count`
  if (client !== undefined) await client.query(sql, [index, count])
  else await execute(url, sql, [index, count])
}

/**
 * Makes a database the proxy: PL/Proxy functions with the partitions'
 * signatures and the partition list. Records the partitions' migrations so
 * that the login server's `migrate()` finds the schema complete.
 */
export async function initProxy(url: string, partitions: ClusterPartition[]): Promise<void> {
  if (!isPowerOfTwo(partitions.length)) throw new Error('PL/Proxy needs a power of two partitions')
  await execute(url, await readSql('proxy.sql'))
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query('BEGIN')
    await switchPartitions(client, partitions, { replace: true })
    for (const m of await loadMigrations()) {
      await client.query(
        'INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3) ON CONFLICT (version) DO UPDATE SET checksum = EXCLUDED.checksum',
        [m.version, m.name, m.checksum]
      )
    }
    await client.query('COMMIT')
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    await client.end()
  }
}

/** Points the proxy at these partitions (added to the ones it has, or instead of them), at once. */
export async function switchPartitions(proxy: pg.ClientBase, partitions: ClusterPartition[], options: { replace: boolean }): Promise<void> {
  await proxy.query('SELECT * FROM parley_cluster.switch_partitions($1, $2, $3, $4)', [
    options.replace,
    partitions.map((p) => p.index),
    partitions.map((p) => p.name),
    partitions.map((p) => connstrOf(p.url))
  ])
}

export interface InitClusterInit {
  /** Power of two. */
  partitions: number
  /** PostgreSQL servers (superuser URLs) for the partitions, used round-robin. */
  servers: string[]
  /** The server for the proxy and internal databases. Default: the first of `servers`. */
  proxyServer?: string
  /** Database name prefix. Default: parley. */
  prefix?: string
}

/** Creates and sets up every database of a cluster on the given servers. */
export async function initCluster(init: InitClusterInit): Promise<ClusterSpec> {
  if (!isPowerOfTwo(init.partitions)) throw new Error('--partitions must be a power of two (PL/Proxy routes by the low bits of the hash)')
  if (init.servers.length === 0) throw new Error('name at least one PostgreSQL server')
  const prefix = init.prefix ?? 'parley'
  const partitions: ClusterPartition[] = []
  for (let i = 0; i < init.partitions; i++) {
    const server = init.servers[i % init.servers.length] as string
    const url = await ensureDatabase(server, `${prefix}_p${i}`)
    await initPartition(url, i, init.partitions)
    partitions.push({ index: i, name: `p${i}`, url })
  }
  const main = init.proxyServer ?? (init.servers[0] as string)
  const proxy = await ensureDatabase(main, `${prefix}_proxy`)
  await initProxy(proxy, partitions)
  const internal = await ensureDatabase(main, `${prefix}_internal`)
  await installInternalSchema(internal)
  return { version: 1, partitions, proxy, internal }
}
