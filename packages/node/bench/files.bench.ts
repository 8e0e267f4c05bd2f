// File transfer throughput on loopback (issue 7): one file of SIZE (default 1 GiB,
// random bytes on disk in a temporary folder), side by side in one run:
//
// 1. Parley direct: a supernode and two `parley daemon` processes on loopback TCP,
//    contacts; `parley send-file` offers the file (the sender hashes it then:
//    reported apart as offerMs), the recipient accepts it through its local API
//    (POST /v1/files/ID/accept, the request `parley files accept` makes), and the
//    clock runs from the accept to the recipient's `file.state done` event (every
//    chunk checked, written, synced, the whole file's SHA-256 checked and the file
//    moved into place).
// 2. Parley relayed: the same between two daemons that listen on nothing
//    (files-daemon-host.ts: startDaemon with `listen: []`, which the command line
//    cannot say), found firewalled: they hold relay reservations on the supernode
//    and advertise only those, so the bytes go through the supernode's circuit relay.
//    The supernode's relay limit (LIMITS.overlay.relay: so many bytes per relayed
//    connection, then it is closed) cuts the stream; the transfer resumes every
//    LIMITS.files.retryEveryMs. This part runs for at most --relayed-seconds and
//    reports how far it got, how often it was cut and the rate between cuts.
// 3. A raw libp2p stream: two processes (files-raw-peer.ts) with Parley's
//    transport, encryption and muxer (TCP, Noise, yamux), SIZE over one stream in
//    1 MiB writes, no hashing, to /dev/null.
// 4. scp over loopback to a private sshd (sshd.ts; installed with apt-get when
//    missing and this runs as root), with OpenSSH's default cipher and with
//    aes256-gcm@openssh.com; the scp process's wall time (handshake included).
// 5. The daemons' peak memory (VmHWM, and VmRSS sampled every 100 ms during the
//    transfers) and CPU during the transfers; and what the parts of a transfer cost
//    alone in one process (SHA-256 of 1 MiB chunks, writing and syncing, re-reading
//    and hashing the whole file), to say where the time goes.
// Direct, raw and scp run --runs times, interleaved; ratios use the best run of each.
// Prints one JSON object on stdout; progress on stderr.
//   node packages/node/bench/files.bench.ts [--size MiB] [--runs N] [--relayed-seconds S]
//        [--only direct,relayed,raw,scp,costs] [--cpu-prof DIR]
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, mkdtemp, open, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { LIMITS } from '@parley/protocol'
import { parley, progressFor, type RunningRole, rate, startRole, testNetwork } from '@parley/testing'
import { defaultCipher, ensureOpenssh, type RunningSshd, scpOnce, startSshd } from './sshd.ts'
import {
  cpuSeconds,
  makeProfile,
  mib,
  type ProcMemory,
  procMemory,
  type ScriptProcess,
  sleep,
  startScript,
  writeNetworkFile
} from './support.ts'

const progress = progressFor('files')
const PARTS = ['direct', 'relayed', 'raw', 'scp', 'costs'] as const
type Part = (typeof PARTS)[number]
const { values: flags } = parseArgs({
  options: {
    size: { type: 'string', default: '1024' },
    runs: { type: 'string', default: '2' },
    'relayed-seconds': { type: 'string', default: '90' },
    only: { type: 'string', default: PARTS.join(',') },
    'cpu-prof': { type: 'string' }
  }
})
const SIZE = Number(flags.size) * 1024 * 1024
const RUNS = Number(flags.runs)
const RELAYED_MS = Number(flags['relayed-seconds']) * 1000
const only = new Set(flags.only.split(',').filter((p) => p !== ''))
for (const p of only) if (!(PARTS as readonly string[]).includes(p)) throw new Error(`--only takes ${PARTS.join(',')}, not ${p}`)
const wants = (part: Part): boolean => only.has(part)
if (!(SIZE > 0 && Number.isSafeInteger(SIZE) && RUNS >= 1)) throw new Error('--size (MiB) and --runs are positive whole numbers')
const RAW_PEER = fileURLToPath(new URL('./files-raw-peer.ts', import.meta.url))
const HIDDEN_DAEMON = fileURLToPath(new URL('./files-daemon-host.ts', import.meta.url))
/** A transfer that makes no progress for this long has failed (far longer than a 1 GiB transfer takes). */
const TRANSFER_TIMEOUT_MS = 10 * 60 * 1000

/** MB/s (10^6 bytes a second, as scp and most tools count). */
const mbps = (bytes: number, ms: number): number => rate(bytes / 1e6 / (ms / 1000))
const ratio = (a: number | undefined, b: number | undefined): number | null =>
  a === undefined || b === undefined || b === 0 ? null : Number((a / b).toFixed(2))
const best = (runs: number[]): number | undefined => (runs.length === 0 ? undefined : Math.max(...runs))

const dir = await mkdtemp(join(tmpdir(), 'parley-bench-files-'))
/** Every process this bench started and has not stopped: daemons, the supernode, raw stream peers. */
const processes = new Set<{ stop(): Promise<unknown> }>()
const sockets = new Set<WebSocket>()
let sshd: RunningSshd | undefined
let cleaned: Promise<void> | undefined
async function cleanUp(): Promise<void> {
  cleaned ??= (async () => {
    for (const s of sockets) s.close()
    for (const p of [...processes].reverse()) await p.stop().catch(() => null)
    await sshd?.stop().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  })()
  await cleaned
}
process.once('SIGTERM', () => void cleanUp().finally(() => process.exit(130)))
process.once('SIGINT', () => void cleanUp().finally(() => process.exit(130)))

/** SIZE random bytes at PATH, written 1 MiB at a time; its SHA-256. */
async function writeRandomFile(path: string, size: number): Promise<string> {
  const hash = createHash('sha256')
  const handle = await open(path, 'w')
  try {
    for (let at = 0; at < size; at += 1024 * 1024) {
      const piece = randomBytes(Math.min(1024 * 1024, size - at))
      hash.update(piece)
      await handle.write(piece)
    }
  } finally {
    await handle.close()
  }
  return hash.digest('hex')
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const piece of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) hash.update(piece)
  return hash.digest('hex')
}

/** Resident memory of some processes, sampled every 100 ms while it runs: the highest VmRSS of each. */
class MemorySampler {
  readonly #peaks = new Map<number, number>()
  readonly #timer: ReturnType<typeof setInterval>
  constructor(pids: number[]) {
    const sample = (): void => {
      for (const pid of pids)
        void procMemory(pid)
          .then((m) => this.#peaks.set(pid, Math.max(this.#peaks.get(pid) ?? 0, m.rssMiB)))
          .catch(() => {})
    }
    sample()
    this.#timer = setInterval(sample, 100)
  }
  stop(): Map<number, number> {
    clearInterval(this.#timer)
    return this.#peaks
  }
}

/**
 * The size of a file being received, every 50 ms: when the first byte came, when
 * the last did, and how fast it grew while it grew (stalls, such as a relayed
 * connection cut and resumed seconds later, left out).
 */
class GrowthSampler {
  readonly #samples: Array<{ ms: number; bytes: number }> = []
  readonly #timer: ReturnType<typeof setInterval>
  readonly #started = performance.now()
  constructor(path: string) {
    this.#timer = setInterval(() => {
      const ms = performance.now() - this.#started
      void stat(path)
        .then((s) => this.#samples.push({ ms, bytes: s.size }))
        .catch(() => {})
    }, 50)
  }
  stop(): { firstByteMs: number | null; lastByteMs: number | null; growingMs: number; growingMBps: number | null; stallsOver1s: number } {
    clearInterval(this.#timer)
    const samples = this.#samples.sort((a, b) => a.ms - b.ms)
    let growingMs = 0
    let grown = 0
    let stalls = 0
    let still = 0
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1] as { ms: number; bytes: number }
      const b = samples[i] as { ms: number; bytes: number }
      if (b.bytes > a.bytes) {
        growingMs += b.ms - a.ms
        grown += b.bytes - a.bytes
        if (still > 1000) stalls++
        still = 0
      } else still += b.ms - a.ms
    }
    const first = samples.find((x) => x.bytes > 0)
    const last = samples.at(-1)
    return {
      firstByteMs: first === undefined ? null : Math.round(first.ms),
      lastByteMs: last === undefined ? null : Math.round(samples.find((x) => x.bytes === last.bytes)?.ms ?? last.ms),
      growingMs: Math.round(growingMs),
      growingMBps: growingMs > 0 ? mbps(grown, growingMs) : null,
      stallsOver1s: stalls
    }
  }
}

// Parley: processes, the local API and its event stream.

interface ApiEvent {
  seq: number
  type: string
  data: Record<string, unknown>
  /** When this bench got it (performance.now()). */
  gotAt: number
}

interface Daemon {
  name: string
  data: string
  /** `parley daemon` or `parley supernode`, or files-daemon-host.ts. */
  process: RunningRole | ScriptProcess
  pid: number
  events: ApiEvent[]
  api(path: string, body?: object): Promise<Record<string, unknown>>
  /** The first event (seen since `fromSeq`) that `match` takes, waiting for it up to `timeoutMs`. */
  next(match: (e: ApiEvent) => boolean, timeoutMs: number, fromSeq?: number): Promise<ApiEvent>
}

/** `parley ARGS` (args with `--data DIR`), or, with `hidden`, files-daemon-host.ts DIR NETWORK (a daemon nobody can dial). */
async function startDaemonProcess(
  name: string,
  data: string,
  launch: { args: string[]; env?: NodeJS.ProcessEnv } | { hidden: string }
): Promise<Daemon> {
  const running =
    'hidden' in launch
      ? await startScript(HIDDEN_DAEMON, [data, launch.hidden])
      : await startRole(launch.args, launch.env === undefined ? {} : { env: launch.env })
  processes.add(running)
  const { url, token } = JSON.parse(await readFile(join(data, 'api.json'), 'utf8')) as { url: string; token: string }
  const api = async (path: string, body?: object): Promise<Record<string, unknown>> => {
    const response = await fetch(`${url}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(60_000)
    })
    const answer = (await response.json()) as Record<string, unknown>
    if (!response.ok) throw new Error(`${name} ${path}: ${response.status} ${JSON.stringify(answer)}`)
    return answer
  }
  const events: ApiEvent[] = []
  const waiting = new Set<() => void>()
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/events`, ['parley.events.v1', `parley.token.${token}`])
  sockets.add(socket)
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve(), { once: true })
    socket.addEventListener('error', () => reject(new Error(`${name}: the event stream did not open`)), { once: true })
  })
  socket.addEventListener('message', (m) => {
    const event = JSON.parse(String(m.data)) as Omit<ApiEvent, 'gotAt'>
    if (typeof event.seq !== 'number') return
    events.push({ ...event, gotAt: performance.now() })
    for (const wake of waiting) wake()
  })
  const next = async (match: (e: ApiEvent) => boolean, timeoutMs: number, fromSeq = 0): Promise<ApiEvent> =>
    await new Promise((resolve, reject) => {
      const check = (): void => {
        const found = events.find((e) => e.seq > fromSeq && match(e))
        if (found === undefined) return
        clearTimeout(timer)
        waiting.delete(check)
        resolve(found)
      }
      const timer = setTimeout(() => {
        waiting.delete(check)
        reject(new Error(`${name}: no such event in ${timeoutMs} ms; the last: ${JSON.stringify(events.slice(-3))}`))
      }, timeoutMs)
      waiting.add(check)
      check()
    })
  return { name, data, process: running, pid: running.child.pid as number, events, api, next }
}

/** `parley ARGS --data DIR --json`, exit 0 expected; its JSON. */
async function cli(data: string, args: string[]): Promise<Record<string, unknown>> {
  const r = await parley([...args, '--data', data, '--json'], { timeoutMs: 120_000 })
  if (r.code !== 0) throw new Error(`parley ${args.join(' ')} (${data}): exit ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout) as Record<string, unknown>
}

async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (ok(value)) return value
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)}`)
    await sleep(200)
  }
}

/** Two daemons' users become contacts (a request from the CLI, accepted from the CLI). */
async function befriend(a: Daemon, b: Daemon): Promise<void> {
  const contacts = async (d: Daemon): Promise<Array<{ name: string; state: string }>> =>
    (await cli(d.data, ['contacts', 'list'])).contacts as Array<{ name: string; state: string }>
  await cli(a.data, ['contacts', 'add', b.name])
  await until(
    `${b.name} sees the request`,
    () => contacts(b),
    (c) => c.some((x) => x.name === a.name && x.state === 'incoming')
  )
  await cli(b.data, ['contacts', 'accept', a.name])
  await until(
    `${a.name} sees the acceptance`,
    () => contacts(a),
    (c) => c.some((x) => x.name === b.name && x.state === 'accepted')
  )
}

/** How `from` reaches `to`'s devices now (`direct` or `relayed`), from its local API. */
async function pathTo(from: Daemon, to: Daemon): Promise<string[]> {
  const peer = await from.api(`/v1/net/peer/${to.name}`)
  return (peer.devices as Array<{ path: string }>).map((d) => d.path)
}

interface TransferRun {
  path: string[]
  /** `parley send-file`: the sender hashes the whole file, then the recipient's device takes the offer. */
  offerMs: number
  /** From the accept to the recipient's done event (or to the deadline). */
  ms: number
  /** Bytes verified on the recipient's disk at the end. */
  bytes: number
  done: boolean
  mbps: number
  cpuPercentOfOneCore: { sender: number; receiver: number }
  /** CPU seconds (user + system, all threads) each side spent on the transfer: steadier than rates on a busy machine. */
  cpuSeconds: { sender: number; receiver: number }
  rssMiBBefore: { sender: number; receiver: number }
  peakRssMiBDuring: { sender: number; receiver: number }
  /** The partial file on the recipient's disk: first and last byte (ms after the accept), its growth while it grew. */
  disk: ReturnType<GrowthSampler['stop']>
  /** Resumes (`file.retry` events) and why. */
  retries: Array<{ atMs: number; bytes: number; reason: string }>
}

/** One file from `sender` to `receiver`: offered, accepted, and done (or given up at `deadlineMs`). */
async function transfer(sender: Daemon, receiver: Daemon, source: string, deadlineMs = TRANSFER_TIMEOUT_MS): Promise<TransferRun> {
  const path = await pathTo(sender, receiver)
  const fromSeq = receiver.events.at(-1)?.seq ?? 0
  const offerStarted = performance.now()
  const offer = await cli(sender.data, ['send-file', receiver.name, source])
  const offerMs = performance.now() - offerStarted
  const id = String(offer.id)
  await receiver.next((e) => e.type === 'file.offer' && e.data.id === id, 30_000, fromSeq)
  const folder = join(dir, `received-${id.slice(0, 8)}`)
  const rssBefore = await Promise.all([procMemory(sender.pid), procMemory(receiver.pid)])
  const cpu0 = await Promise.all([cpuSeconds(sender.pid), cpuSeconds(receiver.pid)])
  const memory = new MemorySampler([sender.pid, receiver.pid])
  const partial = join(folder, '.parley-incoming', id, '0')
  const growth = new GrowthSampler(partial)
  const started = performance.now()
  await receiver.api(`/v1/files/${id}/accept`, { folder })
  let end: ApiEvent | undefined
  try {
    end = await receiver.next(
      (e) => e.type === 'file.state' && e.data.id === id && (e.data.state === 'done' || e.data.state === 'failed'),
      deadlineMs,
      fromSeq
    )
  } catch {
    // The deadline: what arrived is measured below.
  }
  const ms = (end?.gotAt ?? performance.now()) - started
  const peaks = memory.stop()
  const disk = growth.stop()
  const cpu1 = await Promise.all([cpuSeconds(sender.pid), cpuSeconds(receiver.pid)])
  const done = end?.data.state === 'done'
  if (end?.data.state === 'failed') throw new Error(`the transfer failed: ${String(end.data.reason)}`)
  let bytes = SIZE
  if (!done) {
    await receiver.api(`/v1/files/${id}/cancel`, {}).catch(() => {})
    bytes = (await stat(partial).catch(() => undefined))?.size ?? 0
  } else {
    const received = await stat(join(folder, 'payload.bin'))
    if (received.size !== SIZE) throw new Error(`received ${received.size} bytes, not ${SIZE}`)
  }
  const during = receiver.events.filter((e) => e.seq > fromSeq && e.data.id === id)
  let lastBytes = 0
  const retries: TransferRun['retries'] = []
  for (const e of during) {
    if (e.type === 'file.progress') lastBytes = Number(e.data.bytes)
    if (e.type === 'file.retry') retries.push({ atMs: Math.round(e.gotAt - started), bytes: lastBytes, reason: String(e.data.reason) })
  }
  await rm(folder, { recursive: true, force: true })
  const cpu = (i: 0 | 1): number => Math.round((100 * ((cpu1[i] as number) - (cpu0[i] as number))) / (ms / 1000))
  const used = (i: 0 | 1): number => Number(((cpu1[i] as number) - (cpu0[i] as number)).toFixed(2))
  return {
    path,
    offerMs: Math.round(offerMs),
    ms: Math.round(ms),
    bytes,
    done,
    mbps: mbps(bytes, ms),
    cpuPercentOfOneCore: { sender: cpu(0), receiver: cpu(1) },
    cpuSeconds: { sender: used(0), receiver: used(1) },
    rssMiBBefore: { sender: (rssBefore[0] as ProcMemory).rssMiB, receiver: (rssBefore[1] as ProcMemory).rssMiB },
    peakRssMiBDuring: { sender: peaks.get(sender.pid) ?? Number.NaN, receiver: peaks.get(receiver.pid) ?? Number.NaN },
    disk,
    retries
  }
}

// The raw libp2p stream and scp.

interface RawRun {
  ms: number
  mbps: number
  cpuPercentOfOneCore: { sender: number; receiver: number }
  cpuSeconds: { sender: number; receiver: number }
}

async function rawOnce(): Promise<RawRun> {
  const receiver = await startScript(RAW_PEER, ['receive'])
  processes.add(receiver)
  const sender = await startScript(RAW_PEER, ['send', (receiver.ready.addrs as string[])[0] as string, String(SIZE)])
  processes.add(sender)
  try {
    const cpu0 = await Promise.all([cpuSeconds(sender.pid), cpuSeconds(receiver.pid)])
    const started = performance.now()
    // The empty line only registers the wait on the receiver's stdout.
    const received = receiver.ask('', 'received')
    const sent = await sender.ask('go', 'sent')
    const got = await received
    const ms = performance.now() - started
    const cpu1 = await Promise.all([cpuSeconds(sender.pid), cpuSeconds(receiver.pid)])
    if (sent.error !== undefined || got.error !== undefined || got.bytes !== SIZE)
      throw new Error(`raw stream: sent ${JSON.stringify(sent)}, received ${JSON.stringify(got)}`)
    const cpu = (i: 0 | 1): number => Math.round((100 * ((cpu1[i] as number) - (cpu0[i] as number))) / (ms / 1000))
    const used = (i: 0 | 1): number => Number(((cpu1[i] as number) - (cpu0[i] as number)).toFixed(2))
    return {
      ms: Math.round(ms),
      mbps: mbps(SIZE, ms),
      cpuPercentOfOneCore: { sender: cpu(0), receiver: cpu(1) },
      cpuSeconds: { sender: used(0), receiver: used(1) }
    }
  } finally {
    for (const s of [sender, receiver]) {
      await s.stop()
      processes.delete(s)
    }
  }
}

async function scpRun(server: RunningSshd, source: string, sourceHash: string, cipher?: string): Promise<{ ms: number; mbps: number }> {
  const target = join(dir, 'scp-target.bin')
  try {
    const ms = await scpOnce(server, source, target, cipher)
    const copied = await sha256File(target)
    if (copied !== sourceHash) throw new Error(`scp${cipher === undefined ? '' : ` -c ${cipher}`}: the copy differs from the source`)
    return { ms: Math.round(ms), mbps: mbps(SIZE, ms) }
  } finally {
    await rm(target, { force: true })
  }
}

// What the parts of a transfer cost alone, in this process, over SIZE bytes.

async function costs(source: string): Promise<Record<string, number>> {
  const chunk = LIMITS.files.chunkBytes
  const buffer = randomBytes(chunk)
  let t = performance.now()
  for (let at = 0; at < SIZE; at += chunk) createHash('sha256').update(buffer).digest()
  const sha256Chunks = mbps(SIZE, performance.now() - t)
  // As the recipient writes: 1 MiB appends, and one datasync at the end.
  const target = join(dir, 'write-test.bin')
  const handle = await open(target, 'a')
  t = performance.now()
  for (let at = 0; at < SIZE; at += chunk) await handle.write(buffer)
  const writeMs = performance.now() - t
  t = performance.now()
  await handle.datasync()
  const datasyncMs = performance.now() - t
  await handle.close()
  await rm(target, { force: true })
  // As the recipient checks the whole file at the end (read back, SHA-256).
  t = performance.now()
  await sha256File(source)
  const rehashMs = performance.now() - t
  // Copies: the sender's frame (hash + chunk) and the recipient's reassembly of a 1 MiB frame from Noise's 64 KiB pieces.
  const frame = Buffer.allocUnsafe(chunk + 32)
  t = performance.now()
  for (let at = 0; at < SIZE; at += chunk) buffer.copy(frame, 32)
  const copy = mbps(SIZE, performance.now() - t)
  return {
    sha256ChunksMBps: sha256Chunks,
    appendMBps: mbps(SIZE, writeMs),
    datasyncMs: Math.round(datasyncMs),
    wholeFileRehashMBps: mbps(SIZE, rehashMs),
    wholeFileRehashMs: Math.round(rehashMs),
    memcpyMBps: copy
  }
}

try {
  const source = join(dir, 'payload.bin')
  progress(`writing ${mib(SIZE)} MiB of random bytes`)
  const sourceHash = await writeRandomFile(source, SIZE)
  const network = testNetwork()

  // The network: a supernode; two daemons on loopback TCP; two that listen only through the supernode's relay.
  let direct: [Daemon, Daemon] | undefined
  let relayed: [Daemon, Daemon] | undefined
  let supernode: Daemon | undefined
  if (wants('direct') || wants('relayed')) {
    const snData = join(dir, 'sn')
    const snNet = await writeNetworkFile(join(dir, 'net-sn.json'), network)
    await makeProfile(snData, network, 'files_bench_sn', snNet)
    supernode = await startDaemonProcess('files_bench_sn', snData, { args: ['supernode', '--data', snData, '--network', snNet] })
    const seed = (supernode.process.ready.addrs as string[])[0] as string
    const net = await writeNetworkFile(join(dir, 'net.json'), network, [seed])
    const daemon = async (name: string, options: { hidden?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<Daemon> => {
      const data = join(dir, name)
      await makeProfile(data, network, name, net)
      if (options.hidden === true) return await startDaemonProcess(name, data, { hidden: net })
      const args = ['daemon', '--data', data, '--network', net]
      return await startDaemonProcess(name, data, options.env === undefined ? { args } : { args, env: options.env })
    }
    if (wants('direct')) {
      const profileDir = flags['cpu-prof']
      if (profileDir !== undefined) await mkdir(profileDir, { recursive: true })
      const env =
        profileDir === undefined
          ? undefined
          : { ...process.env, NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir} --cpu-prof-interval=500` }
      direct = [
        await daemon('files_bench_a', env === undefined ? {} : { env }),
        await daemon('files_bench_b', env === undefined ? {} : { env })
      ]
      await befriend(direct[0], direct[1])
      progress('direct daemons up and contacts')
    }
    if (wants('relayed')) {
      relayed = [await daemon('files_bench_c', { hidden: true }), await daemon('files_bench_d', { hidden: true })]
      for (const d of relayed)
        await until(
          `${d.name} holds a relay reservation`,
          () => d.api('/v1/net'),
          (n) => (n.addrs as string[]).length > 0 && (n.addrs as string[]).every((a) => a.includes('/p2p-circuit'))
        )
      await befriend(relayed[0], relayed[1])
      progress('relayed daemons up (firewalled, relay addresses only) and contacts')
    }
  }

  let server: RunningSshd | undefined
  let ssh: { cipher: string; version: string; installed: boolean } | undefined
  if (wants('scp')) {
    const installed = await ensureOpenssh(progress)
    server = sshd = await startSshd()
    ssh = { ...(await defaultCipher(server)), installed }
    progress(`sshd on 127.0.0.1:${server.port}; ssh's default cipher: ${ssh.cipher}`)
  }

  const runs = { direct: [] as TransferRun[], raw: [] as RawRun[], scpDefault: [] as number[], scpAes: [] as number[] }
  const scpMs = { default: [] as number[], aes: [] as number[] }
  for (let run = 1; run <= RUNS; run++) {
    if (wants('raw')) {
      const r = await rawOnce()
      runs.raw.push(r)
      progress(`run ${run}: raw libp2p stream ${r.mbps} MB/s`)
    }
    if (server !== undefined) {
      const d = await scpRun(server, source, sourceHash)
      runs.scpDefault.push(d.mbps)
      scpMs.default.push(d.ms)
      const a = await scpRun(server, source, sourceHash, 'aes256-gcm@openssh.com')
      runs.scpAes.push(a.mbps)
      scpMs.aes.push(a.ms)
      progress(`run ${run}: scp ${d.mbps} MB/s (${ssh?.cipher}), ${a.mbps} MB/s (aes256-gcm)`)
    }
    if (direct !== undefined) {
      const t = await transfer(direct[0], direct[1], source)
      runs.direct.push(t)
      progress(
        `run ${run}: parley direct ${t.mbps} MB/s (${t.path.join(',')}), offer ${t.offerMs} ms, cpu ${JSON.stringify(t.cpuPercentOfOneCore)}`
      )
    }
  }

  let relayedRun: TransferRun | undefined
  if (relayed !== undefined) {
    progress(`relayed: at most ${RELAYED_MS / 1000} s`)
    relayedRun = await transfer(relayed[0], relayed[1], source, RELAYED_MS)
    progress(
      `relayed: ${mib(relayedRun.bytes)} MiB in ${relayedRun.ms} ms (${relayedRun.mbps} MB/s), ${relayedRun.retries.length} resumes, ${relayedRun.disk.growingMBps} MB/s while flowing`
    )
  }

  const memory = async (d: Daemon | undefined): Promise<number | null> => (d === undefined ? null : (await procMemory(d.pid)).hwmMiB)
  const peakMemory = {
    note: 'VmHWM of each process over its whole life (start-up, contacts, the transfers); the daemons of each part ran only that part',
    direct: direct === undefined ? null : { sender: await memory(direct[0]), receiver: await memory(direct[1]) },
    relayed: relayed === undefined ? null : { sender: await memory(relayed[0]), receiver: await memory(relayed[1]) },
    supernode: await memory(supernode)
  }
  const parts = wants('costs') ? await costs(source) : null

  const directBest = best(runs.direct.map((r) => r.mbps))
  const rawBest = best(runs.raw.map((r) => r.mbps))
  const scpDefaultBest = best(runs.scpDefault)
  const scpAesBest = best(runs.scpAes)
  const relay = LIMITS.overlay.relay
  process.stdout.write(
    `${JSON.stringify({
      bench: 'files',
      transport: 'tcp loopback',
      fileMiB: mib(SIZE),
      runs: RUNS,
      note: 'MB/s = 10^6 bytes/s; best of the runs in the ratios; Parley timed from the accept to the verified file in place; scp timed as the whole scp process',
      parleyDirect: {
        bestMBps: directBest ?? null,
        runs: runs.direct.map(({ retries, ...r }) => ({ ...r, resumes: retries.length }))
      },
      parleyRelayed:
        relayedRun === undefined
          ? null
          : {
              ...relayedRun,
              retries: relayedRun.retries.slice(0, 5),
              resumes: relayedRun.retries.length,
              relayLimit: { bytesPerConnectionEachWay: relay.dataLimitBytes, durationMs: relay.durationLimitMs },
              retryEveryMs: LIMITS.files.retryEveryMs,
              deadlineSeconds: RELAYED_MS / 1000
            },
      rawLibp2pStream: { stack: 'tcp + noise + yamux, 1 MiB writes', bestMBps: rawBest ?? null, runs: runs.raw },
      scp:
        ssh === undefined
          ? null
          : {
              sshVersion: ssh.version,
              defaultCipher: ssh.cipher,
              installedOpensshServer: ssh.installed,
              defaultCipherMBps: scpDefaultBest ?? null,
              aes256GcmMBps: scpAesBest ?? null,
              runs: { default: runs.scpDefault, aes256gcm: runs.scpAes, defaultMs: scpMs.default, aes256gcmMs: scpMs.aes }
            },
      ratios: {
        directOverScpDefault: ratio(directBest, scpDefaultBest),
        directOverScpAes256Gcm: ratio(directBest, scpAesBest),
        directOverRaw: ratio(directBest, rawBest),
        relayedOverDirect: ratio(relayedRun?.mbps, directBest),
        relayedWhileFlowingOverDirect: ratio(relayedRun?.disk.growingMBps ?? undefined, directBest)
      },
      aims: {
        direct300MBps: directBest === undefined ? null : directBest >= 300,
        directAtLeastScp: directBest === undefined || scpDefaultBest === undefined ? null : directBest >= scpDefaultBest,
        directAtLeastHalfRaw: directBest === undefined || rawBest === undefined ? null : directBest >= rawBest / 2
      },
      peakMemoryMiB: peakMemory,
      costsAlone: parts
    })}\n`
  )
} finally {
  progress('stopping')
  await cleanUp()
}
process.exit(0)
