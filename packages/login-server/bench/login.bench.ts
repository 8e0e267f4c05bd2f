// Logins per second with the real Argon2id OWASP parameters, through the real
// HTTP server (startLoginServer on a temporary data folder, embedded PGlite),
// with 1 and 4 concurrent clients; raw Argon2id verifications per second
// (Passwords.verify) with 1 and 4 at a time for comparison; and renewals per
// second (each renewal's new credential is the one renewed next).
// The server runs in a worker thread of this process, so that the clients
// (LoginClient over fetch, in the main thread) do not take its JavaScript
// thread; Argon2id runs on libuv's thread pool, shared by both.
//   node packages/login-server/bench/login.bench.ts
// Prints one JSON object on stdout; progress goes to stderr.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { generateKeyPair, type KeyPair } from '@parley/crypto'
import { type DeviceSession, LoginClient } from '@parley/login-client'
import { DEFAULT_CONFIG, type LoginServerConfig, OWASP_ARGON2ID, Passwords, startLoginServer } from '@parley/login-server'
import { ms, percentile, progressFor, rate } from '@parley/testing'
import { pino } from 'pino'

const progress = progressFor('login')

const ACCOUNTS = 50
const LOGIN_MS = 4_000
const ARGON2_MS = 3_000
const RENEW_MS = 3_000
const CONCURRENCIES = [1, 4]

/** No per-address throttling or rate limit gets in the bench's way (all requests come from 127.0.0.1). */
const UNLIMITED = { perMinute: 1_000_000_000, burst: 1_000_000_000 }
const BENCH_CONFIG: Partial<LoginServerConfig> = {
  argon2: OWASP_ARGON2ID,
  throttle: { ...DEFAULT_CONFIG.throttle, freeFailuresPerName: 1_000_000_000, freeFailuresPerAddress: 1_000_000_000 },
  rates: { register: UNLIMITED, search: UNLIMITED, renew: UNLIMITED }
}

interface ServerData {
  dataDir: string
  config: Partial<LoginServerConfig>
}
type FromServer = { type: 'ready'; url: string } | { type: 'closed' } | { type: 'failed'; message: string }

interface Measured {
  concurrency: number
  ops: number
  seconds: number
  opsPerSec: number
  medianMs: number
  p99Ms: number
}

/**
 * `concurrency` callers, each running `op(caller)` one after another until
 * `durationMs` have passed; every call's time is recorded.
 */
async function measure(concurrency: number, durationMs: number, op: (caller: number) => Promise<void>): Promise<Measured> {
  const times: number[] = []
  const start = performance.now()
  const end = start + durationMs
  await Promise.all(
    Array.from({ length: concurrency }, async (_, caller) => {
      while (performance.now() < end) {
        const t0 = performance.now()
        await op(caller)
        times.push(performance.now() - t0)
      }
    })
  )
  const seconds = (performance.now() - start) / 1000
  times.sort((a, b) => a - b)
  return {
    concurrency,
    ops: times.length,
    seconds: Number(seconds.toFixed(2)),
    opsPerSec: rate(times.length / seconds),
    medianMs: ms(percentile(times, 50)),
    p99Ms: ms(percentile(times, 99))
  }
}

/** The worker thread: one login server until the main thread says close. */
async function serve(data: ServerData): Promise<void> {
  const port = parentPort
  if (port === null) throw new Error('serve() runs in a worker thread')
  // Request logs at the default level go to /dev/null (their cost is part of a login); warnings and errors to stderr.
  const logger = pino(
    { name: 'login-server', level: 'info', redact: ['req.headers.authorization'] },
    pino.multistream([
      { level: 'info', stream: pino.destination({ dest: '/dev/null', sync: false }) },
      { level: 'warn', stream: pino.destination(2) }
    ])
  )
  try {
    const server = await startLoginServer({ dataDir: data.dataDir, listen: '127.0.0.1:0', config: data.config, logger })
    port.once('message', () => {
      void server.close().then(
        () => port.postMessage({ type: 'closed' } satisfies FromServer),
        (err: unknown) => port.postMessage({ type: 'failed', message: `close: ${(err as Error).message}` } satisfies FromServer)
      )
    })
    port.postMessage({ type: 'ready', url: server.url } satisfies FromServer)
  } catch (err) {
    port.postMessage({ type: 'failed', message: (err as Error).stack ?? String(err) } satisfies FromServer)
  }
}

interface ServerHandle {
  url: string
  close(): Promise<void>
}

async function startServerWorker(data: ServerData): Promise<ServerHandle> {
  const worker = new Worker(new URL(import.meta.url), { workerData: data })
  const next = (): Promise<FromServer> =>
    new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        worker.off('message', onMessage)
        reject(err)
      }
      const onMessage = (message: FromServer): void => {
        worker.off('error', onError)
        resolve(message)
      }
      worker.once('error', onError)
      worker.once('message', onMessage)
    })
  const ready = await next()
  if (ready.type !== 'ready') {
    await worker.terminate()
    throw new Error(`the login server did not start: ${ready.type === 'failed' ? ready.message : ready.type}`)
  }
  return {
    url: ready.url,
    async close() {
      const closed = next()
      worker.postMessage('close')
      const answer = await closed
      await worker.terminate()
      if (answer.type === 'failed') throw new Error(answer.message)
    }
  }
}

interface Account {
  name: string
  password: string
  device: KeyPair
}

async function main(): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'parley-login-bench-'))
  let interrupted = false
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (interrupted) return
      interrupted = true
      progress(`${signal}: stopping`)
      void rm(dataDir, { recursive: true, force: true }).finally(() => process.exit(130))
    })
  }
  let server: ServerHandle | undefined
  try {
    progress(`starting the login server in a worker thread (data in ${dataDir})`)
    server = await startServerWorker({ dataDir, config: BENCH_CONFIG })
    const client = new LoginClient({ url: server.url, timeoutMs: 60_000 })

    const accounts: Account[] = Array.from({ length: ACCOUNTS }, (_, i) => ({
      name: `bench_user_${String(i).padStart(3, '0')}`,
      password: `Bench password ${i}: correct horse`,
      device: generateKeyPair()
    }))
    progress(`registering ${ACCOUNTS} accounts (4 at a time)`)
    const registerStart = performance.now()
    for (let i = 0; i < ACCOUNTS; i += 4) {
      await Promise.all(accounts.slice(i, i + 4).map((a) => client.register({ name: a.name, password: a.password })))
    }
    const registerSeconds = (performance.now() - registerStart) / 1000

    let nextAccount = 0
    const login = async (): Promise<void> => {
      // Consecutive accounts: concurrent logins never wait on one another's per-name lock.
      const account = accounts[nextAccount++ % ACCOUNTS] as Account
      const grant = await client.login(account)
      if (grant.name !== account.name) throw new Error(`logged in as ${grant.name}, not ${account.name}`)
    }
    for (let i = 0; i < 4; i++) await login() // warm-up
    const logins: Measured[] = []
    for (const c of CONCURRENCIES) {
      progress(`logins, ${c} at a time, for ${LOGIN_MS} ms`)
      logins.push(await measure(c, LOGIN_MS, login))
    }

    const passwords = new Passwords(OWASP_ARGON2ID)
    const password = 'Bench password: correct horse'
    const phc = await passwords.hash(password)
    const argon2: Measured[] = []
    for (const c of CONCURRENCIES) {
      progress(`Argon2id verifications (Passwords.verify), ${c} at a time, for ${ARGON2_MS} ms`)
      argon2.push(
        await measure(c, ARGON2_MS, async () => {
          if (!(await passwords.verify(phc, password))) throw new Error('Argon2id verification failed')
        })
      )
    }

    const renewals: Measured[] = []
    for (const c of CONCURRENCIES) {
      // One chain per caller, each on its own account: a credential can be renewed once, so each renewal renews the last one's.
      const sessions: DeviceSession[] = []
      const lastSerial: bigint[] = []
      for (let i = 0; i < c; i++) {
        const account = accounts[i] as Account
        const grant = await client.login(account)
        sessions.push({ device: account.device, credential: grant.credential })
        lastSerial[i] = BigInt(grant.serial)
      }
      const renew = async (caller: number): Promise<void> => {
        const session = sessions[caller] as DeviceSession
        const grant = await client.renew(session)
        const serial = BigInt(grant.serial)
        if (serial <= (lastSerial[caller] as bigint)) throw new Error('a renewal did not give a newer credential')
        lastSerial[caller] = serial
        session.credential = grant.credential
      }
      for (let i = 0; i < c; i++) await renew(i) // warm-up
      progress(`renewals, ${c} at a time, for ${RENEW_MS} ms`)
      renewals.push(await measure(c, RENEW_MS, renew))
    }

    const result = {
      bench: 'login',
      method:
        'login server in a worker thread (embedded PGlite, info logs to /dev/null), LoginClient over HTTP on 127.0.0.1 in the main thread; N callers each waiting for its answer before the next request',
      argon2Params: OWASP_ARGON2ID,
      threadPoolSize: Number(process.env.UV_THREADPOOL_SIZE ?? 4),
      accounts: ACCOUNTS,
      registerPerSec: rate(ACCOUNTS / registerSeconds),
      logins,
      argon2Verify: argon2,
      renewals,
      loginVsArgon2: Object.fromEntries(
        logins.map((l, i) => [`concurrency${l.concurrency}`, Number((l.opsPerSec / (argon2[i]?.opsPerSec ?? Number.NaN)).toFixed(3))])
      )
    }
    process.stdout.write(`${JSON.stringify(result)}\n`)
  } finally {
    await server?.close().catch((err: unknown) => progress(`closing the server: ${(err as Error).message}`))
    await rm(dataDir, { recursive: true, force: true })
  }
}

if (isMainThread) await main()
else await serve(workerData as ServerData)
