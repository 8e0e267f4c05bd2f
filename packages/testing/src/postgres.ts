import { execFile, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readdirSync } from 'node:fs'
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'

const run = promisify(execFile)

/** The environment variable through which a test runner hands its server to test files. */
export const PG_URL_ENV = 'PARLEY_TEST_PG_URL'

export interface TestPostgres {
  /** Superuser URL of the server (database "postgres"). */
  url: string
  stop(): Promise<void>
}

/** The newest PostgreSQL server binaries Debian installed, or undefined. */
export function findPostgresBin(): string | undefined {
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return undefined
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a))
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin')
}

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => {
        resolve(typeof address === 'object' && address !== null ? address.port : 0)
      })
    })
  })
}

/**
 * Starts a throwaway PostgreSQL server on a free loopback port, in a temporary
 * folder, without touching the system's clusters. As root it runs as the
 * `postgres` user (PostgreSQL refuses root). Fails loudly when the server
 * binaries are missing: `npm run test:all` installs them.
 */
export async function startPostgres(): Promise<TestPostgres> {
  const bin = findPostgresBin()
  if (bin === undefined) {
    throw new Error(
      'PostgreSQL server binaries not found under /usr/lib/postgresql: run "npm run test:all" (it installs the postgresql package) or "sudo apt-get install postgresql"'
    )
  }
  const isRoot = process.getuid?.() === 0
  const dir = await mkdtemp(join(tmpdir(), 'parley-pg-'))
  const as = async (cmd: string, args: string[]): Promise<void> => {
    if (isRoot) await run('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args])
    else await run(join(bin, cmd), args)
  }
  if (isRoot) {
    const uid = Number(spawnSync('id', ['-u', 'postgres']).stdout.toString().trim())
    const gid = Number(spawnSync('id', ['-g', 'postgres']).stdout.toString().trim())
    if (!Number.isInteger(uid) || uid <= 0) throw new Error('running as root but there is no "postgres" user to run PostgreSQL as')
    await chmod(dir, 0o700)
    await chown(dir, uid, gid)
  }
  const data = join(dir, 'data')
  await as('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale', 'C'])
  let lastError: unknown
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort()
    try {
      await as('pg_ctl', [
        '-D',
        data,
        '-l',
        join(dir, 'log'),
        '-w',
        '-t',
        '30',
        '-o',
        `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 -c shared_buffers=64MB`,
        'start'
      ])
      const url = `postgres://postgres@127.0.0.1:${port}/postgres`
      return {
        url,
        async stop() {
          await as('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']).catch(() => {})
          await rm(dir, { recursive: true, force: true })
        }
      }
    } catch (err) {
      lastError = err // most likely the port was taken in between: try another
    }
  }
  await rm(dir, { recursive: true, force: true })
  throw new Error(`PostgreSQL did not start: ${(lastError as Error).message}`)
}

/**
 * A PostgreSQL server for this test file: the runner's (PARLEY_TEST_PG_URL) or
 * one started here. Never skips: a test that needs PostgreSQL fails without it.
 */
export async function testPostgres(): Promise<TestPostgres> {
  const url = process.env[PG_URL_ENV]
  if (url !== undefined && url !== '') return { url, stop: async () => {} }
  return await startPostgres()
}

/** A new empty database on the server, with its URL; drop it with the returned function. */
export async function freshDatabase(serverUrl: string, prefix = 'parley_test'): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${name}`)
  } finally {
    await admin.end()
  }
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: serverUrl })
      await c.connect()
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      } finally {
        await c.end()
      }
    }
  }
}
