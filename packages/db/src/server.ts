import { execFile, spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { chmod, chown, mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** The newest PostgreSQL server binaries Debian installed, or undefined. */
export function findPostgresBin(): string | undefined {
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return undefined
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a))
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin')
}

/** A free TCP port on loopback (free now; the caller binds it soon). */
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

/** The uid/gid of the `postgres` user, when this process is root (PostgreSQL and pgBouncer refuse to run as root). */
export function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined
  const uid = Number(spawnSync('id', ['-u', 'postgres']).stdout.toString().trim())
  const gid = Number(spawnSync('id', ['-g', 'postgres']).stdout.toString().trim())
  if (!Number.isInteger(uid) || uid <= 0) throw new Error('running as root but there is no "postgres" user to run PostgreSQL as')
  return { uid, gid }
}

/** Runs a program as the `postgres` user when root, else as this user. */
export async function runAsPostgres(file: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  if (postgresUser() !== undefined) return await run('runuser', ['-u', 'postgres', '--', file, ...args])
  return await run(file, args)
}

/**
 * Makes a folder that the server's user owns (0700). As root, its parent and
 * grandparent are made passable (o+x, not readable) for that user.
 */
export async function serverDir(dir: string): Promise<void> {
  const pgUser = postgresUser()
  if (pgUser !== undefined) {
    for (const parent of [dirname(dirname(dir)), dirname(dir)]) {
      await mkdir(parent, { recursive: true, mode: 0o711 })
      const mode = (await stat(parent)).mode & 0o777
      if ((mode & 0o001) === 0) await chmod(parent, mode | 0o011)
    }
  }
  await mkdir(dir, { recursive: true, mode: 0o700 })
  if (pgUser !== undefined) {
    await chown(dir, pgUser.uid, pgUser.gid)
    await chmod(dir, 0o700)
  }
}

export interface PostgresServerInit {
  /** The server's folder: data/, log, socket, port. Made on first start. */
  dir: string
  /** Default: a free port, remembered in `<dir>/port` for later starts. */
  port?: number
  /** Extra `-c` settings. */
  settings?: Record<string, string>
}

/**
 * One PostgreSQL server (Debian's binaries) in a folder of ours, on loopback:
 * initdb on first start (trust authentication for local connections, user
 * postgres), pg_ctl to start and stop. The postmaster runs on its own; stop it
 * with `stop()`. As root, everything runs as the `postgres` user.
 */
export class PostgresServer {
  readonly dir: string
  readonly #settings: Record<string, string>
  #port: number | undefined

  constructor(init: PostgresServerInit) {
    this.dir = init.dir
    this.#port = init.port
    this.#settings = init.settings ?? {}
  }

  get port(): number {
    if (this.#port === undefined) throw new Error(`PostgreSQL in ${this.dir} has no port yet: start it`)
    return this.#port
  }

  /** A connection URL for a database on this server (superuser postgres). */
  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`
  }

  get #data(): string {
    return join(this.dir, 'data')
  }

  #bin(name: string): string {
    const bin = findPostgresBin()
    if (bin === undefined) {
      throw new Error(
        'PostgreSQL server binaries not found under /usr/lib/postgresql: run "npm run test:all" (it installs them) or "sudo apt-get install postgresql"'
      )
    }
    return join(bin, name)
  }

  async start(): Promise<void> {
    await serverDir(this.dir)
    if (!existsSync(join(this.#data, 'PG_VERSION'))) {
      await runAsPostgres(this.#bin('initdb'), [
        '-D',
        this.#data,
        '-A',
        'trust',
        '-U',
        'postgres',
        '--no-sync',
        '-E',
        'UTF8',
        '--locale',
        'C'
      ])
    }
    const portFile = join(this.dir, 'port')
    if (this.#port === undefined && existsSync(portFile)) this.#port = Number(await readFile(portFile, 'utf8'))
    const fixed = this.#port !== undefined
    let lastError: unknown
    // A free port can be taken in between (try another); a server killed hard can leave backends
    // holding its shared memory for a moment (wait and try again on the same port).
    for (let attempt = 0; attempt < (fixed ? 20 : 5); attempt++) {
      if (fixed && attempt > 0) await new Promise((resolve) => setTimeout(resolve, 250))
      const port = this.#port ?? (await freePort())
      const settings = Object.entries({ listen_addresses: '127.0.0.1', max_connections: '200', shared_buffers: '64MB', ...this.#settings })
        .map(([k, v]) => `-c ${k}=${v}`)
        .join(' ')
      try {
        await runAsPostgres(this.#bin('pg_ctl'), [
          '-D',
          this.#data,
          '-l',
          join(this.dir, 'log'),
          '-w',
          '-t',
          '60',
          '-o',
          `-p ${port} -k ${this.dir} ${settings}`,
          'start'
        ])
        this.#port = port
        await writeFile(portFile, String(port))
        return
      } catch (err) {
        lastError = err
      }
    }
    throw new Error(`PostgreSQL in ${this.dir} did not start: ${(lastError as Error).message}`)
  }

  async stop(mode: 'smart' | 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (!existsSync(join(this.#data, 'postmaster.pid'))) return
    await runAsPostgres(this.#bin('pg_ctl'), ['-D', this.#data, '-m', mode, '-w', 'stop']).catch(() => {})
  }

  /** The postmaster's process id, or undefined when it is not running. */
  async pid(): Promise<number | undefined> {
    try {
      const first = (await readFile(join(this.#data, 'postmaster.pid'), 'utf8')).split('\n')[0]
      const pid = Number(first)
      return Number.isInteger(pid) && pid > 0 ? pid : undefined
    } catch {
      return undefined
    }
  }
}
