import { randomBytes } from 'node:crypto'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PostgresServer } from '@parley/db'
import pg from 'pg'

export { findPostgresBin, freePort } from '@parley/db'

/** The environment variable through which a test runner hands its server to test files. */
export const PG_URL_ENV = 'PARLEY_TEST_PG_URL'

export interface TestPostgres {
  /** Superuser URL of the server (database "postgres"). */
  url: string
  stop(): Promise<void>
}

/** A temporary folder that the `postgres` user can pass through (for servers started as root). */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  await chmod(dir, 0o711)
  return dir
}

/**
 * Starts a throwaway PostgreSQL server on a free loopback port, in a temporary
 * folder, without touching the system's clusters; fsync off. Fails loudly
 * when the server binaries are missing: `npm run test:all` installs them.
 */
export async function startPostgres(): Promise<TestPostgres> {
  const dir = await tempDir('parley-pg-')
  const server = new PostgresServer({ dir: join(dir, 'server'), settings: { fsync: 'off' } })
  try {
    await server.start()
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
  return {
    url: server.url(),
    async stop() {
      await server.stop()
      await rm(dir, { recursive: true, force: true })
    }
  }
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
