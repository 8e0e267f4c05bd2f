import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { freePort, postgresUser, runAsPostgres, serverDir } from '@parley/db'
import { LIMITS } from '@parley/protocol'

export interface BouncerInit {
  /** Its folder: pgbouncer.ini, userlist, log, pid, socket. */
  dir: string
  /** The proxy database's URL, which clients reach as database "parley". */
  proxyUrl: string
  /** Default: a free port, remembered in the ini. */
  port?: number
}

/** pgBouncer's settings for Parley: transaction pooling, loopback only. */
export function bouncerIni(init: { dir: string; proxyUrl: string; port: number }): string {
  const proxy = new URL(init.proxyUrl)
  const limits = LIMITS.cluster
  return [
    '[databases]',
    `parley = host=${proxy.hostname} port=${proxy.port} dbname=${proxy.pathname.slice(1)} user=${decodeURIComponent(proxy.username) || 'postgres'}`,
    '',
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${init.port}`,
    `unix_socket_dir = ${init.dir}`,
    'auth_type = trust',
    `auth_file = ${join(init.dir, 'userlist.txt')}`,
    // Transaction pooling: a server connection per transaction; no named prepared statements (pg sends unnamed ones).
    'pool_mode = transaction',
    `max_client_conn = ${limits.bouncerMaxClients}`,
    `default_pool_size = ${limits.bouncerPoolSize}`,
    'ignore_startup_parameters = extra_float_digits,application_name',
    `logfile = ${join(init.dir, 'pgbouncer.log')}`,
    `pidfile = ${join(init.dir, 'pgbouncer.pid')}`,
    ''
  ].join('\n')
}

/** pgBouncer in front of the proxy database; as root it runs as `postgres` (it refuses root). */
export class Bouncer {
  readonly #init: BouncerInit
  #port: number | undefined

  constructor(init: BouncerInit) {
    this.#init = init
    this.#port = init.port
  }

  get url(): string {
    if (this.#port === undefined) throw new Error('pgBouncer is not started')
    return `postgres://postgres@127.0.0.1:${this.#port}/parley`
  }

  get #ini(): string {
    return join(this.#init.dir, 'pgbouncer.ini')
  }

  async start(): Promise<void> {
    await serverDir(this.#init.dir)
    if (this.#port === undefined && existsSync(this.#ini)) {
      const m = /^listen_port = (\d+)$/m.exec(await readFile(this.#ini, 'utf8'))
      if (m !== null) this.#port = Number(m[1])
    }
    this.#port ??= await freePort()
    await writeFile(join(this.#init.dir, 'userlist.txt'), '"postgres" ""\n')
    await writeFile(this.#ini, bouncerIni({ dir: this.#init.dir, proxyUrl: this.#init.proxyUrl, port: this.#port }))
    const pgUser = postgresUser()
    if (pgUser !== undefined) {
      const { chown } = await import('node:fs/promises')
      await chown(this.#ini, pgUser.uid, pgUser.gid)
      await chown(join(this.#init.dir, 'userlist.txt'), pgUser.uid, pgUser.gid)
    }
    // Every client is a file descriptor: the default soft limit (1,024) is below max_client_conn.
    const files = String(2 * LIMITS.cluster.bouncerMaxClients + 64)
    await runAsPostgres('/usr/bin/prlimit', [`--nofile=${files}:${files}`, '/usr/sbin/pgbouncer', '-d', '-q', this.#ini])
    // -d returns once it forked; wait until it accepts connections.
    const pg = (await import('pg')).default
    for (let i = 0; i < 100; i++) {
      const client = new pg.Client({ connectionString: this.url })
      try {
        await client.connect()
        await client.query('SELECT 1')
        await client.end()
        return
      } catch {
        await client.end().catch(() => {})
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
    throw new Error(`pgBouncer did not come up; see ${join(this.#init.dir, 'pgbouncer.log')}`)
  }

  async stop(): Promise<void> {
    let pid: number
    try {
      pid = Number((await readFile(join(this.#init.dir, 'pgbouncer.pid'), 'utf8')).trim())
    } catch {
      return
    }
    if (!Number.isInteger(pid) || pid <= 0) return
    try {
      process.kill(pid, 'SIGINT')
    } catch {
      return
    }
    for (let i = 0; i < 100; i++) {
      try {
        process.kill(pid, 0)
      } catch {
        return
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    process.kill(pid, 'SIGKILL')
  }
}
