import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

/**
 * pgqd, the PgQ ticker daemon Debian packages (`pgqd`): it connects to the
 * listed databases of one server and calls `pgq.ticker()` every ticker period,
 * plus PgQ's maintenance (table rotation, retry queue). It is a plain libpq
 * client, so it runs as root as well as any user that may connect.
 *
 * Use it or the consumer's own ticking (`EventConsumer` with `tick: true`) for
 * a database, never both: concurrent `pgq.ticker()` calls from two sources can
 * cut ticks whose snapshots disagree.
 */
export interface PgqdInit {
  /** postgres:// URLs of the databases to tick. One pgqd runs per server (host, port, user). */
  databases: readonly string[]
  /** How often pgqd calls pgq.ticker() (the queue's ticker_max_lag decides whether a tick is made). Default: 100 ms. */
  tickerPeriodMs?: number
  /** How often pgqd runs PgQ maintenance. Default: 30 s. */
  maintPeriodMs?: number
  /** How often pgqd looks again at a database it could not use (down, or pgq not installed yet). Default: 1 s. */
  checkPeriodMs?: number
  /** The pgqd program. Default: `pgqd` (Debian installs /usr/bin/pgqd). */
  command?: string
  /**
   * Wait until pgqd reports every database ready (pgq found) before resolving;
   * install the queues first. Default: true, for up to 15 s.
   */
  waitReady?: boolean
  readyTimeoutMs?: number
}

export interface RunningPgqd {
  /** Stops every pgqd started (SIGTERM, then SIGKILL after 5 s) and removes their folders. Safe to call twice. */
  stop(): Promise<void>
  /** What the daemons logged so far (one log per server). */
  logs(): Promise<string>
  /** Process ids, one per server. */
  readonly pids: readonly number[]
}

interface Server {
  connstr: string
  databases: string[]
}

function quoteConnValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`
}

function groupByServer(urls: readonly string[]): Server[] {
  const servers = new Map<string, Server>()
  for (const raw of urls) {
    const url = new URL(raw)
    const database = decodeURIComponent(url.pathname.replace(/^\//, ''))
    if (database === '') throw new Error(`pgqd: ${url.protocol}//${url.host}: the URL names no database`)
    if (database.includes(',')) throw new Error(`pgqd: database name ${database} contains a comma`)
    const parts = [`host=${quoteConnValue(decodeURIComponent(url.hostname.replace(/^\[|\]$/g, '')) || 'localhost')}`]
    parts.push(`port=${quoteConnValue(url.port || '5432')}`)
    if (url.username !== '') parts.push(`user=${quoteConnValue(decodeURIComponent(url.username))}`)
    if (url.password !== '') parts.push(`password=${quoteConnValue(decodeURIComponent(url.password))}`)
    const sslmode = url.searchParams.get('sslmode')
    if (sslmode !== null) parts.push(`sslmode=${quoteConnValue(sslmode)}`)
    const connstr = parts.join(' ')
    const server = servers.get(connstr) ?? { connstr, databases: [] }
    if (!server.databases.includes(database)) server.databases.push(database)
    servers.set(connstr, server)
  }
  return [...servers.values()]
}

const seconds = (msValue: number): string => String(Math.max(msValue, 1) / 1000)

/** Starts pgqd for the given databases (one daemon per server). */
export async function startPgqd(init: PgqdInit): Promise<RunningPgqd> {
  const servers = groupByServer(init.databases)
  if (servers.length === 0) throw new Error('pgqd: no databases to tick')
  const command = init.command ?? 'pgqd'
  // When this process dies without stopping them, the kernel sends the daemons SIGTERM.
  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p))
  const dir = await mkdtemp(join(tmpdir(), 'parley-pgqd-'))
  const children: Array<{ child: ChildProcess; exited: Promise<void>; log: string; databases: string[] }> = []
  let stopped: Promise<void> | undefined

  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      await Promise.all(
        children.map(async ({ child, exited }) => {
          if (child.exitCode === null && child.signalCode === null) {
            child.kill('SIGTERM')
            const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
            await exited
            clearTimeout(timer)
          }
        })
      )
      await rm(dir, { recursive: true, force: true })
    })())

  const logs = async (): Promise<string> =>
    (await Promise.all(children.map(async ({ log }) => await readFile(log, 'utf8').catch(() => '')))).join('')

  try {
    for (const [i, server] of servers.entries()) {
      const ini = join(dir, `pgqd-${i}.ini`)
      const log = join(dir, `pgqd-${i}.log`)
      await writeFile(
        ini,
        [
          '[pgqd]',
          `logfile = ${log}`,
          `pidfile = ${join(dir, `pgqd-${i}.pid`)}`,
          `base_connstr = ${server.connstr}`,
          `initial_database = ${server.databases[0]}`,
          `database_list = ${server.databases.join(',')}`,
          `ticker_period = ${seconds(init.tickerPeriodMs ?? 100)}`,
          `maint_period = ${seconds(init.maintPeriodMs ?? 30_000)}`,
          `check_period = ${seconds(init.checkPeriodMs ?? 1_000)}`,
          `retry_period = ${seconds(init.checkPeriodMs ?? 1_000)}`,
          ''
        ].join('\n'),
        { mode: 0o600 }
      )
      const argv = ['-q', ini]
      const child =
        setpriv === undefined
          ? spawn(command, argv, { stdio: 'ignore' })
          : spawn(setpriv, ['--pdeathsig', 'TERM', '--', command, ...argv], { stdio: 'ignore' })
      const exited = new Promise<void>((resolve) => {
        child.once('exit', () => resolve())
        child.once('error', () => resolve())
      })
      const spawnError = new Promise<Error>((resolve) => child.once('error', resolve))
      children.push({ child, exited, log, databases: server.databases })
      const failed = await Promise.race([spawnError, sleep(50).then(() => undefined)])
      if (failed !== undefined) throw new Error(`pgqd: cannot run ${command}: ${failed.message} (Debian package "pgqd")`)
    }

    if (init.waitReady !== false) {
      const deadline = Date.now() + (init.readyTimeoutMs ?? 15_000)
      for (;;) {
        const dead = children.find(({ child }) => child.exitCode !== null || child.signalCode !== null)
        if (dead !== undefined) throw new Error(`pgqd exited (${dead.child.exitCode ?? dead.child.signalCode}):\n${await logs()}`)
        const pending: string[] = []
        for (const { log, databases } of children) {
          const text = await readFile(log, 'utf8').catch(() => '')
          for (const db of databases) if (!text.includes(`[${db}]: pgq version ok`)) pending.push(db)
        }
        if (pending.length === 0) break
        if (Date.now() > deadline)
          throw new Error(`pgqd: no pgq ready in ${pending.join(', ')} (install the queues first):\n${await logs()}`)
        await sleep(50)
      }
    }
  } catch (err) {
    await stop()
    throw err
  }

  return { stop, logs, pids: children.map(({ child }) => child.pid ?? -1) }
}
