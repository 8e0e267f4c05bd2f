import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createWriteStream, type WriteStream } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { peerIdOf } from '@parley/crypto'
import { ensurePrivateDir, readSecretFile, writeSecretFile } from '@parley/crypto/keyfile'
import { KeyRing, startLoginServer } from '@parley/login-server'
import { Profile } from '@parley/node/profile'
import { isErrorCode, isValidName, type NetworkFile, ParleyError } from '@parley/protocol'
import { type Command, stringFlag } from '../context.ts'
import { UsageError } from '../output.ts'

/** The echo test contact's user name (the report's "Echo / Sound Test Service"; names are 6 to 32 characters). */
export const ECHO_NAME = 'echo123'
const SEED_NAME = 'seed-supernode'
const DEFAULT_USER = 'user'
/** The first user's web address port when nothing else was asked for or used before (the next users: the next ports). */
const DEFAULT_WEB_PORT = 8480
const PARLEY_BIN = fileURLToPath(new URL('../../bin/parley.js', import.meta.url))
/** How long one started role may take to say it is ready. */
const READY_TIMEOUT_MS = 60_000

/** What `parley up` keeps in its folder between runs: the ports it used (so addresses stay the same). */
interface UpState {
  ports: Record<string, number>
}

export const upCommand: Command = {
  path: ['up'],
  usage: 'parley up [--data DIR] [--users NAME,NAME...] [--port PORT]',
  summary:
    'starts a whole network on this machine: login server, seed supernode, the echo test contact and a daemon serving the web client per user',
  options: { users: { type: 'string' }, port: { type: 'string' } },
  positionals: 0,
  async run(ctx) {
    const dir = resolve(stringFlag(ctx, 'data') ?? join(homedir(), '.parley-up'))
    const users = (stringFlag(ctx, 'users') ?? '')
      .split(',')
      .map((u) => u.trim())
      .filter((u) => u !== '')
    for (const u of users)
      if (!isValidName(u)) throw new UsageError(`--users: ${JSON.stringify(u)} is not a user name (6 to 32 characters, a letter first)`)
    if (new Set(users.map((u) => u.toLowerCase())).size !== users.length) throw new UsageError('--users names each user once')
    const portFlag = stringFlag(ctx, 'port')
    if (portFlag !== undefined && !/^\d{1,5}$/.test(portFlag)) throw new UsageError('--port takes the first web address port, e.g. 8480')
    await ensurePrivateDir(dir)
    await mkdir(join(dir, 'logs'), { recursive: true, mode: 0o700 })
    const state = await readState(dir)
    const up = new Up(dir, state)
    const started = performance.now()
    // Ctrl-C from now on stops everything in order, even during the start (it is then done once everything is up).
    const stopping = ctx.waitForStop()
    try {
      // Everything the network file says is known before anything runs (the login server's port and keys, the
      // seed's port and peer id): the login server's database and every daemon start at the same time, and the
      // seed and the echo contact sign in through their own local APIs once the login server answers.
      const loginPort = await up.port('login')
      const loginUrl = `http://127.0.0.1:${loginPort}`
      const network = join(dir, 'network.json')
      const seedPort = await up.port('seed')
      const seedAddr = `/ip4/127.0.0.1/tcp/${seedPort}/p2p/${peerIdOf((await new Profile(join(dir, 'seed')).deviceKey()).publicKey)}`
      await writeNetwork(network, loginUrl, await loginKeys(join(dir, 'login')), [seedAddr])
      const loginStarted = up.loginServer(loginPort)
      loginStarted.catch(() => {})
      const seed = up.role('seed', [
        'supernode',
        '--data',
        join(dir, 'seed'),
        '--network',
        network,
        '--listen',
        `/ip4/127.0.0.1/tcp/${seedPort}`
      ])
      seed.catch(() => {})
      const names = users.length === 0 ? [DEFAULT_USER] : users
      // The web addresses: --port and the next ones; else those of the last run; else 8480 and on when free.
      let nextPort = portFlag === undefined ? undefined : Number(portFlag)
      let preferred = DEFAULT_WEB_PORT
      // The daemons link to the seed once it listens (a link tried earlier would wait for the next round).
      await seed
      const daemons = await Promise.all([
        up.role('echo', ['daemon', '--data', join(dir, 'echo'), '--network', network, '--echo', '--no-promote']),
        ...names.map((name) => {
          const wanted = nextPort
          if (nextPort !== undefined) nextPort++
          const fallback = preferred++
          return up.role(
            `user-${name}`,
            [
              'daemon',
              '--data',
              join(dir, 'users', name),
              '--network',
              network,
              '--no-promote',
              '--api',
              '127.0.0.1:PORT',
              ...(users.length === 0 ? [] : ['--name-hint', name])
            ],
            wanted,
            fallback
          )
        })
      ])
      const login = await loginStarted
      // The seed first: until it is signed in it refuses every hello.
      await up.account('seed', SEED_NAME, 'Seed supernode')
      await up.account('echo', ECHO_NAME, 'Echo / Sound Test Service')
      const webs: Record<string, string> = {}
      for (const [i, name] of names.entries()) webs[name] = String(daemons[i + 1]?.ready.web)
      await writeState(dir, state)
      const web = webs[names[0] as string] as string
      const seconds = Math.round(performance.now() - started) / 1000
      process.stdout.write(`${JSON.stringify({ event: 'ready', web, webs, login, seed: seedAddr, echo: ECHO_NAME, data: dir, seconds })}\n`)
      if (!ctx.flags.json) {
        const lines = names.map((n) => (names.length === 1 ? `  ${webs[n]}` : `  ${n}: ${webs[n]}`))
        process.stderr.write(
          `\nParley is up (${seconds} s). Open in your browser:\n${lines.join('\n')}\n\nThe echo test contact is "${ECHO_NAME}": add it and call it. Logs: ${join(dir, 'logs')}. Ctrl-C stops everything.\n`
        )
      }
      await Promise.race([stopping, up.failed])
    } finally {
      await up.stop()
    }
  }
}

/** The processes `parley up` runs, stopped together (users first, the seed and the login server last). */
class Up {
  readonly #dir: string
  readonly #state: UpState
  readonly #children: Array<{ name: string; child: ChildProcess; exited: Promise<number | null> }> = []
  readonly #logs: WriteStream[] = []
  #closeLogin: (() => Promise<void>) | undefined
  #stopping = false
  #fail: (err: Error) => void = () => {}
  /** Rejects when a role stops by itself: `parley up` then stops the rest and says which. */
  readonly failed: Promise<never>

  constructor(dir: string, state: UpState) {
    this.#dir = dir
    this.#state = state
    this.failed = new Promise<never>((_, reject) => {
      this.#fail = reject
    })
    this.failed.catch(() => {})
  }

  async loginServer(port: number): Promise<string> {
    const server = await startLoginServer({ dataDir: join(this.#dir, 'login'), listen: `127.0.0.1:${port}`, logLevel: 'warn' })
    this.#closeLogin = () => server.close()
    return server.url
  }

  /**
   * The running daemon of profile `key` signed in as `name`, through its own
   * local API: registered with a random password on the first run (kept 0600
   * in `secrets.json`), logged in again when its credential has lapsed.
   */
  async account(key: string, name: string, displayName: string): Promise<void> {
    const secrets = join(this.#dir, 'secrets.json')
    const stored = JSON.parse((await readSecretFile(secrets))?.toString('utf8') ?? '{}') as Record<string, string>
    const api = JSON.parse((await readSecretFile(join(this.#dir, key, 'api.json')))?.toString('utf8') ?? '{}') as {
      url?: string
      token?: string
    }
    if (api.url === undefined || api.token === undefined) throw new ParleyError('INTERNAL', `the ${key} daemon wrote no api.json`)
    const call = async (path: string, body?: object): Promise<{ session: { signedIn: boolean } }> => {
      const response = await fetch(`${api.url}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { authorization: `Bearer ${api.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(30_000)
      })
      const answer = (await response.json()) as { session: { signedIn: boolean }; error?: { code: string; message: string } }
      if (answer.error !== undefined)
        throw new ParleyError(isErrorCode(answer.error.code) ? answer.error.code : 'INTERNAL', `${key}: ${answer.error.message}`)
      return answer
    }
    if ((await call('/v1/session')).session.signedIn) return
    let password = stored[key]
    if (password === undefined) {
      password = randomBytes(24).toString('base64url')
      // Kept before registering: a run stopped in between logs in with it next time.
      await writeSecretFile(secrets, `${JSON.stringify({ ...stored, [key]: password }, null, 2)}\n`)
      await call('/v1/account/register', { name, password, displayName })
    } else await call('/v1/account/login', { name, password })
  }

  /**
   * Starts `parley ARGS` (PORT in an argument becomes the port this role used
   * last time, or a free one) and waits for its ready line. Its stderr goes
   * to `logs/NAME.log`; it stops when this process goes, even killed (its
   * stdin closes).
   */
  async role(name: string, args: string[], port?: number, preferred?: number): Promise<{ ready: Record<string, unknown> }> {
    const chosen = args.some((a) => a.includes('PORT')) ? await this.port(name, port, preferred) : undefined
    const argv = [PARLEY_BIN, ...args.map((a) => a.replace('PORT', String(chosen))), '--stop-with-stdin']
    const log = createWriteStream(join(this.#dir, 'logs', `${name}.log`), { flags: 'a', mode: 0o600 })
    this.#logs.push(log)
    log.write(`--- ${new Date().toISOString()} parley ${args.join(' ')}\n`)
    // Its own process group: Ctrl-C reaches this process only, which stops the roles in order.
    const child = spawn(process.execPath, argv, { stdio: ['pipe', 'pipe', 'pipe'], detached: true })
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    this.#children.push({ name, child, exited })
    child.stderr?.pipe(log, { end: false })
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new ParleyError('TIMEOUT', `${name} was not ready in ${READY_TIMEOUT_MS / 1000} s: see ${log.path}`)),
        READY_TIMEOUT_MS
      )
      void exited.then((code) => {
        clearTimeout(timer)
        reject(new ParleyError('UNAVAILABLE', `${name} stopped (exit ${code}) before it was ready: see ${log.path}`))
      })
      lines.on('line', (line) => {
        log.write(`${line}\n`)
        try {
          const parsed = JSON.parse(line) as Record<string, unknown>
          if (parsed.event === 'ready') {
            clearTimeout(timer)
            resolve(parsed)
          }
        } catch {
          // Not a JSON line: kept in the log only.
        }
      })
    })
    void exited.then((code) => {
      if (!this.#stopping) this.#fail(new ParleyError('UNAVAILABLE', `${name} stopped by itself (exit ${code}): see ${log.path}`))
    })
    if (chosen !== undefined) this.#state.ports[name] = chosen
    return { ready }
  }

  /** The port asked for (which must be free), else the one `key` used last time, else `preferred`, when free; else any free one. */
  async port(key: string, wanted?: number, preferred?: number): Promise<number> {
    if (wanted !== undefined) {
      if (!(await isFree(wanted))) throw new ParleyError('UNAVAILABLE', `port ${wanted} is in use: pass another --port`)
      this.#state.ports[key] = wanted
      return wanted
    }
    for (const candidate of [this.#state.ports[key], preferred]) {
      if (candidate !== undefined && (await isFree(candidate))) {
        this.#state.ports[key] = candidate
        return candidate
      }
    }
    const port = await freePort()
    this.#state.ports[key] = port
    return port
  }

  async stop(): Promise<void> {
    this.#stopping = true
    // The users and the echo contact together, then the seed supernode, then the login server.
    const [seed, ...others] = this.#children
    await Promise.all(others.map((c) => stopChild(c)))
    if (seed !== undefined) await stopChild(seed)
    await this.#closeLogin?.()
    for (const log of this.#logs) log.end()
  }
}

/** SIGINT, and SIGKILL if it has not stopped in 15 s. */
async function stopChild({ child, exited }: { child: ChildProcess; exited: Promise<number | null> }): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT')
  const done = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 15_000).unref())])
  if (!done) child.kill('SIGKILL')
}

async function writeNetwork(file: string, login: string, keys: NetworkFile['keys'], seeds: string[]): Promise<void> {
  const network: NetworkFile = { version: 1, login, keys, seeds }
  await writeFile(file, `${JSON.stringify(network, null, 2)}\n`, { mode: 0o600 })
}

/** The login server's published keys, from its folder (made there on the first run). */
async function loginKeys(dir: string): Promise<NetworkFile['keys']> {
  await ensurePrivateDir(dir)
  const ring = await KeyRing.open(dir)
  return ring.published().map((k) => ({ id: k.id, publicKey: k.publicKey }))
}

async function readState(dir: string): Promise<UpState> {
  try {
    const parsed = JSON.parse(await readFile(join(dir, 'up.json'), 'utf8')) as Partial<UpState>
    const ports: Record<string, number> = {}
    for (const [k, v] of Object.entries(parsed.ports ?? {})) if (Number.isInteger(v) && v > 0 && v < 65536) ports[k] = v
    return { ports }
  } catch {
    return { ports: {} }
  }
}

async function writeState(dir: string, state: UpState): Promise<void> {
  await writeFile(join(dir, 'up.json'), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 })
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)))
  })
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}
