import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes, randomInt } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { accessSync, constants, rmSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'

/** The Debian package that has `turnserver`. */
export const COTURN_PACKAGE = 'coturn'

export interface StartCoturnOptions {
  /** The shared secret (coturn's `static-auth-secret`): printable ASCII, no spaces. */
  secret: string
  /** The address coturn listens on. Default: 127.0.0.1. */
  listeningIp?: string
  /** The address of the relayed transport addresses. Default: `listeningIp`. */
  relayIp?: string
  /** The TURN port (UDP and TCP). Default: one free on this host's loopback for both. */
  port?: number
  /** The relay port range. Default: a free window of `relayPorts` ports below Linux's ephemeral range. */
  minPort?: number
  maxPort?: number
  /** Size of the default relay port window. Default: 64. */
  relayPorts?: number
  /** Run inside this network namespace (`ip netns exec NETNS turnserver ...`). */
  netns?: string
  /** TURN realm. Default: parley. */
  realm?: string
  /** Extra `turnserver` arguments, appended last. */
  args?: string[]
  /** How long to wait for coturn to answer. Default: 10 s. */
  timeoutMs?: number
}

export interface RunningCoturn {
  /** `turn:HOST:PORT?transport=udp`. */
  url: string
  host: string
  port: number
  /** The relay port range. */
  minPort: number
  maxPort: number
  /** The turnserver process (the `ip` process execs it, so this is coturn in a namespace too). */
  child: ChildProcess
  /** Everything coturn logged so far (it never logs the secret). */
  log(): string
  /** SIGTERM, SIGKILL after 2 s; waits for the exit and removes the temporary folder. Safe to call twice. */
  stop(): Promise<void>
}

/** Where `turnserver` is, or undefined. */
export function findTurnserver(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin']
  for (const dir of dirs) {
    if (dir === '') continue
    const candidate = join(dir, 'turnserver')
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

/**
 * Starts a throwaway coturn TURN server: REST API shared-secret auth, UDP and
 * TCP on one port, no TLS/DTLS, no CLI, loopback peers allowed, and no
 * config, database or pid file from the system (all in a temporary folder).
 * Resolves once coturn answers a STUN Binding request (or, inside a network
 * namespace, once it logs that its servers run). Fails loudly when
 * `turnserver` is missing: never skips.
 */
export async function startCoturn(options: StartCoturnOptions): Promise<RunningCoturn> {
  const { secret, netns, realm = 'parley', timeoutMs = 10_000 } = options
  if (!/^[\x21-\x7e]{1,1024}$/.test(secret)) throw new RangeError('startCoturn: the secret must be printable ASCII without spaces')
  const bin = findTurnserver()
  if (bin === undefined) {
    throw new Error(
      `startCoturn: turnserver not found; install the Debian package "${COTURN_PACKAGE}" (apt-get install -y ${COTURN_PACKAGE})`
    )
  }
  const listeningIp = options.listeningIp ?? '127.0.0.1'
  const relayIp = options.relayIp ?? listeningIp
  const local = netns === undefined
  const port = options.port ?? (await freeUdpTcpPort())
  const { minPort, maxPort } =
    options.minPort !== undefined && options.maxPort !== undefined
      ? { minPort: options.minPort, maxPort: options.maxPort }
      : await relayWindow(options.relayPorts ?? 64, local ? relayIp : undefined)

  const dir = await mkdtemp(join(tmpdir(), 'parley-coturn-'))
  // The secret goes in an owner-only config file rather than on the command line, where `ps` shows it.
  // Naming a config file also stops coturn from reading /etc/turnserver.conf.
  const config = join(dir, 'turnserver.conf')
  await writeFile(config, `static-auth-secret=${secret}\n`, { mode: 0o600 })
  const args = [
    '-c',
    config,
    '--listening-ip',
    listeningIp,
    '--relay-ip',
    relayIp,
    '--listening-port',
    String(port),
    '--min-port',
    String(minPort),
    '--max-port',
    String(maxPort),
    '--allow-loopback-peers',
    '--no-cli',
    '--no-tls',
    '--no-dtls',
    '--use-auth-secret',
    '--realm',
    realm,
    '--fingerprint',
    '--log-file',
    'stdout',
    '--simple-log',
    '--pidfile',
    join(dir, 'turnserver.pid'),
    '--userdb',
    join(dir, 'turndb'),
    ...(options.args ?? [])
  ]
  const [command, argv] = netns === undefined ? [bin, args] : ['ip', ['netns', 'exec', netns, bin, ...args]]
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
  let log = ''
  const onOutput = (d: Buffer): void => {
    log += d.toString()
  }
  child.stdout?.on('data', onOutput)
  child.stderr?.on('data', onOutput)
  const exited = new Promise<void>((resolve) => {
    child.once('close', () => resolve())
  })
  const spawnError = new Promise<never>((_, reject) => {
    child.once('error', (err) => reject(new Error(`startCoturn: cannot run ${command}: ${err.message}`, { cause: err })))
  })
  spawnError.catch(() => {})

  // A test that forgets stop() must neither hang on coturn's pipes nor leave coturn running:
  // the child does not hold this process open, and goes with it.
  const killOnExit = (): void => {
    child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  process.on('exit', killOnExit)
  child.unref()
  for (const stream of [child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.()

  let stopped: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopped ??= (async () => {
      process.off('exit', killOnExit)
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 2000)
        await exited
        clearTimeout(timer)
      }
      await rm(dir, { recursive: true, force: true })
    })()
    await stopped
  }

  const host = listeningIp
  const giveUp = new AbortController()
  try {
    const deadline = AbortSignal.any([AbortSignal.timeout(timeoutMs), giveUp.signal])
    const died = exited.then(() => {
      throw new Error(`startCoturn: turnserver exited (${child.exitCode ?? child.signalCode}) before it was ready; its log:\n${log}`)
    })
    const ready = local ? stunAnswers(host, port, deadline) : logSays(() => log, 'Total General servers', deadline)
    await Promise.race([ready, died, spawnError])
  } catch (err) {
    await stop()
    if (err instanceof Error && err.name === 'TimeoutError') {
      throw new Error(`startCoturn: turnserver did not answer on ${host}:${port} within ${timeoutMs} ms; its log:\n${log}`, { cause: err })
    }
    throw err
  } finally {
    // Whatever won the race, the STUN probe or log watch stops now.
    giveUp.abort()
  }
  const urlHost = host.includes(':') ? `[${host}]` : host
  return { url: `turn:${urlHost}:${port}?transport=udp`, host, port, minPort, maxPort, child, log: () => log, stop }
}

/** A port free on loopback for both TCP and UDP (free now; coturn binds it soon). */
async function freeUdpTcpPort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer()
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => {
        const address = server.address()
        server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0))
      })
    })
    if (port !== 0 && (await udpFree('127.0.0.1', port))) return port
  }
  throw new Error('startCoturn: no port free for both TCP and UDP on 127.0.0.1')
}

/**
 * A window of relay ports below Linux's ephemeral range (32768+), so that
 * relays never collide with ports the kernel hands out to other sockets; at a
 * random place, so that coturns of tests running side by side rarely share
 * one (and coturn picks another port when a bind fails).
 */
async function relayWindow(size: number, probeIp: string | undefined): Promise<{ minPort: number; maxPort: number }> {
  const low = 20_000
  const high = 32_767
  for (let i = 0; i < 20; i++) {
    const minPort = randomInt(low, high - size + 1)
    const maxPort = minPort + size - 1
    if (probeIp === undefined) return { minPort, maxPort }
    let free = true
    for (let p = minPort; p <= maxPort && free; p++) free = await udpFree(probeIp, p)
    if (free) return { minPort, maxPort }
  }
  throw new Error(`startCoturn: no window of ${size} free UDP ports between ${low} and ${high}`)
}

async function udpFree(ip: string, port: number): Promise<boolean> {
  const socket = createSocket(ip.includes(':') ? 'udp6' : 'udp4')
  return await new Promise((resolve) => {
    socket.once('error', () => {
      socket.close()
      resolve(false)
    })
    socket.bind(port, ip, () => socket.close(() => resolve(true)))
  })
}

/** Sends STUN Binding requests until one is answered (RFC 5389: type 0x0101 with our transaction id). */
async function stunAnswers(host: string, port: number, signal: AbortSignal): Promise<void> {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4')
  const id = randomBytes(12)
  const request = Buffer.alloc(20)
  request.writeUInt16BE(0x0001, 0)
  request.writeUInt16BE(0, 2)
  request.writeUInt32BE(0x2112a442, 4)
  id.copy(request, 8)
  try {
    await new Promise<void>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const done = (err?: unknown): void => {
        clearTimeout(timer)
        signal.removeEventListener('abort', onAbort)
        if (err === undefined) resolve()
        else reject(err)
      }
      const onAbort = (): void => done(signal.reason)
      signal.addEventListener('abort', onAbort)
      socket.on('message', (m) => {
        if (m.length >= 20 && m.readUInt16BE(0) === 0x0101 && m.subarray(8, 20).equals(id)) done()
      })
      // Nothing listening yet: ICMP port unreachable surfaces as an error on some sends; keep trying.
      socket.on('error', () => {})
      const send = (): void => {
        socket.send(request, port, host)
        timer = setTimeout(send, 50)
      }
      send()
    })
  } finally {
    socket.close()
  }
}

async function logSays(log: () => string, text: string, signal: AbortSignal): Promise<void> {
  while (!log().includes(text)) {
    signal.throwIfAborted()
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
