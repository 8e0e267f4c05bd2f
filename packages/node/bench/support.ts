// Helpers for the overlay benches that run real processes: profiles and network
// files signed by a test login key (no login server), a process's resident memory
// and CPU time from /proc, and a spawner for bench-side scripts with a ready line.
import { type ChildProcess, spawn } from 'node:child_process'
import { readdir, readFile, readlink, writeFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import type { KeyPair } from '@parley/crypto'
import { type CredentialGrant, toBase64Url } from '@parley/protocol'
import type { TestNetwork } from '@parley/testing'
import { Profile } from '../src/index.ts'

/** Credentials in the benches last this long: no renewal (the login URL is a dead end) within a bench. */
const CREDENTIAL_HOURS = 12

/** A credential from the test login key and the grant a profile keeps for it. */
export function grantFor(network: TestNetwork, device: KeyPair, name: string): { credential: string; grant: CredentialGrant } {
  const issuedAt = Date.now() - 1000
  const expiresAt = issuedAt + CREDENTIAL_HOURS * 3_600_000
  const credential = network.credentialFor(device, name, { issuedAt, expiresAt })
  return {
    credential,
    grant: {
      credential,
      name,
      keyId: network.trustedKeys[0]!.id,
      serial: '1',
      issuedAt: new Date(issuedAt).toISOString(),
      expiresAt: new Date(expiresAt).toISOString(),
      renewAt: new Date(expiresAt).toISOString()
    }
  }
}

/** A network file that trusts the test login key, with these seed supernodes. */
export async function writeNetworkFile(path: string, network: TestNetwork, seeds: string[] = []): Promise<string> {
  const keys = network.trustedKeys.map((k) => ({
    id: k.id,
    publicKey: typeof k.publicKey === 'string' ? k.publicKey : toBase64Url(k.publicKey)
  }))
  // Port 9 (discard) on loopback: nothing answers; renewal is not due within a bench.
  await writeFile(path, `${JSON.stringify({ version: 1, login: 'http://127.0.0.1:9', keys, seeds }, null, 2)}\n`)
  return path
}

/** A logged-in profile (device key, network, credential) made through the Profile API, as `parley login` leaves it. */
export async function makeProfile(dir: string, network: TestNetwork, name: string, networkFile: string): Promise<void> {
  const profile = new Profile(dir)
  const device = await profile.deviceKey()
  await profile.network(networkFile)
  await profile.saveCredential(grantFor(network, device, name).grant)
}

export interface ProcMemory {
  /** Resident set size now, MiB. */
  rssMiB: number
  /** Peak resident set size, MiB. */
  hwmMiB: number
}

/** VmRSS and VmHWM of a process from /proc/PID/status. */
export async function procMemory(pid: number): Promise<ProcMemory> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN)
  return { rssMiB: mib(kib('VmRSS') * 1024), hwmMiB: mib(kib('VmHWM') * 1024) }
}

/** User + system CPU seconds a process has used (/proc/PID/stat; clock ticks of 1/100 s on Linux). */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (which may hold spaces), from field 3 on.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** How many sockets a process holds open (its file descriptors that are sockets). */
export async function socketCount(pid: number): Promise<number> {
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])
  let sockets = 0
  for (const fd of fds) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')
    if (target.startsWith('socket:')) sockets++
  }
  return sockets
}

/** The soft and hard limits on open files of a process (/proc/PID/limits). */
export async function openFileLimit(pid: number): Promise<{ soft: number; hard: number }> {
  const limits = await readFile(`/proc/${pid}/limits`, 'utf8')
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(limits)
  const n = (s: string | undefined): number => (s === 'unlimited' || s === undefined ? Number.POSITIVE_INFINITY : Number(s))
  return { soft: n(m?.[1]), hard: n(m?.[2]) }
}

export function mib(bytes: number): number {
  return Number((bytes / 2 ** 20).toFixed(1))
}

export interface ScriptProcess {
  child: ChildProcess
  pid: number
  ready: Record<string, unknown>
  stderr(): string
  /** Writes `line` on its stdin and resolves with the next JSON line on stdout whose event is `event`. */
  ask(line: string, event: string): Promise<Record<string, unknown>>
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

/** Runs `node FILE ARGS` (a bench-side script) and waits for its `{"event":"ready"}` line on stdout. */
export async function startScript(
  file: string,
  args: string[],
  options: { nodeArgs?: string[]; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}
): Promise<ScriptProcess> {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), file, ...args], {
    env: options.env ?? process.env,
    stdio: ['pipe', 'pipe', 'pipe']
  })
  let stderr = ''
  const waiting: Array<{ event: string; resolve: (v: Record<string, unknown>) => void }> = []
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const lines = createInterface({ input: child.stdout! })
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${file} not ready in time; stderr:\n${stderr}`))
    }, options.timeoutMs ?? 60_000)
    lines.on('line', (line) => {
      try {
        const parsed = JSON.parse(line) as Record<string, unknown>
        if (parsed.event === 'ready') {
          clearTimeout(timer)
          resolve(parsed)
        }
        const i = waiting.findIndex((w) => w.event === parsed.event)
        if (i >= 0) waiting.splice(i, 1)[0]!.resolve(parsed)
      } catch {
        // not JSON: ignore
      }
    })
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`${file} exited with ${code} before it was ready; stderr:\n${stderr}`))
    })
  })
  return {
    child,
    pid: child.pid as number,
    ready,
    stderr: () => stderr,
    async ask(line, event) {
      const answer = new Promise<Record<string, unknown>>((resolve) => waiting.push({ event, resolve }))
      child.stdin?.write(`${line}\n`)
      return await answer
    },
    async stop(signal = 'SIGINT') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
      child.kill(signal)
      return await exited
    }
  }
}

export const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

/** libp2p's error-level debug lines (DEBUG='*:error'), in the environment given to a process. */
export const ERROR_LOG_ENV = { DEBUG: '*:error', DEBUG_COLORS: '0' }
/** And the connection manager's trace, which says why it refuses an inbound connection. */
export const REFUSALS_LOG_ENV = { DEBUG: '*:error,libp2p:connection-manager', DEBUG_COLORS: '0' }

/** Lines counted by what they mean, whatever else is logged. */
const MEANINGS: Record<string, RegExp> = {
  /** libp2p's connection monitor closed a connection whose ping did not come back in time. */
  pingFailureAborts: /aborting connection due to ping failure/,
  /** The connection manager refused an inbound connection, by reason. */
  refusedMaxConnections: /refused - maxConnections exceeded/,
  refusedPendingUpgrades: /refused - incomingPendingConnections exceeded/,
  refusedPerHostRate: /refused - inboundConnectionThreshold exceeded/,
  /** Inbound upgrades (Noise, yamux) that did not finish in time. */
  inboundUpgradeTimeouts: /failed to upgrade inbound connection.*(timeout|TimeoutError|aborted)/i
}

/** Counts error-level debug lines by what they say (namespace and first words, addresses and numbers left out). */
export class ErrorLines {
  readonly counts = new Map<string, number>()
  readonly meanings: Record<string, number> = Object.fromEntries(Object.keys(MEANINGS).map((k) => [k, 0]))

  add(text: string): void {
    for (const line of text.split('\n')) {
      for (const [meaning, pattern] of Object.entries(MEANINGS)) if (pattern.test(line)) this.meanings[meaning]!++
      const m = /(\S+:error) (.*)$/.exec(line)
      if (m === null) continue
      const words = (m[2] as string)
        .replace(/\/ip4\/\S+|12D3Koo\w+|[0-9a-f]{16,}|\+?\d+m?s\b|\d+/g, '…')
        .split(/\s+/)
        .slice(0, 9)
        .join(' ')
      // Namespaces carry connection and stream ids: left out too.
      const namespace = (m[1] as string)
        .split(':')
        .map((part) => (/\d/.test(part) ? '…' : part))
        .join(':')
      const key = `${namespace} ${words}`.slice(0, 140)
      this.counts.set(key, (this.counts.get(key) ?? 0) + 1)
    }
  }

  /** The counts by meaning, and the most frequent lines, most first. */
  top(n = 8): Record<string, unknown> {
    return { ...this.meanings, mostFrequent: Object.fromEntries([...this.counts].sort((a, b) => b[1] - a[1]).slice(0, n)) }
  }
}
