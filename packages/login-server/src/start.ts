import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ensurePrivateDir } from '@parley/crypto/keyfile'
import { type Db, openDatabase } from '@parley/db'
import type { PublishedKey } from '@parley/protocol'
import type { FastifyBaseLogger } from 'fastify'
import { pino } from 'pino'
import { type LoginServerConfig, resolveConfig } from './config.ts'
import { KeyRing } from './keyring.ts'
import { buildLoginServer } from './server.ts'

export interface LoginServerInit {
  /** The data folder: signing keys, config.json, and the embedded database unless `dbUrl`. */
  dataDir: string
  /** HOST:PORT. Default: 127.0.0.1:7070. Port 0 picks a free one. */
  listen?: string
  /** postgres://... to use a PostgreSQL server (or pgBouncer) instead of the embedded database. */
  dbUrl?: string
  /** Overrides config.json in the data folder. */
  config?: Partial<LoginServerConfig>
  logger?: FastifyBaseLogger
  /** Log level of the default logger (JSON lines on stderr). Default: info. */
  logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'silent'
}

export interface RunningLoginServer {
  url: string
  keys: PublishedKey[]
  db: Db
  close(): Promise<void>
}

export const CONFIG_FILE = 'config.json'

export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(listen)
  const port = Number(match?.[2])
  if (match === null || port > 65_535) throw new Error(`--listen must be HOST:PORT, not ${JSON.stringify(listen)}`)
  return { host: (match[1] as string).replace(/^\[|\]$/g, ''), port }
}

async function readConfigFile(dataDir: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(join(dataDir, CONFIG_FILE), 'utf8'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new Error(`${join(dataDir, CONFIG_FILE)}: ${(err as Error).message}`)
  }
}

/** Opens keys and database, and serves the login API until `close()`. */
export async function startLoginServer(init: LoginServerInit): Promise<RunningLoginServer> {
  await ensurePrivateDir(init.dataDir)
  const fileConfig = await readConfigFile(init.dataDir)
  const config = resolveConfig({ ...((fileConfig as object) ?? {}), ...(init.config ?? {}) })
  const { host, port } = parseListen(init.listen ?? '127.0.0.1:7070')
  const logger =
    init.logger ??
    pino({ name: 'login-server', level: init.logLevel ?? 'info', redact: ['req.headers.authorization'] }, pino.destination(2))
  const keys = await KeyRing.open(init.dataDir)
  const db = await openDatabase(init.dbUrl === undefined ? { dataDir: init.dataDir } : { url: init.dbUrl })
  const app = buildLoginServer({ db, keys, logger }, config)
  try {
    await app.listen({ host, port })
  } catch (err) {
    await db.close()
    throw err
  }
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('server has no TCP address')
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address
  let closed: Promise<void> | undefined
  return {
    url: `http://${urlHost}:${address.port}`,
    keys: keys.published(),
    db,
    async close() {
      closed ??= (async () => {
        await app.close()
        await db.close()
      })()
      await closed
    }
  }
}
