// Call set-up between two peers on loopback TCP, in this process (a supernode
// and the two peers, as packages/node/test/calls.test.ts starts them): from
// `calls.call()` (the dial) to the first frame at the callee that is not
// silence, the callee answering as soon as its device rings. Through the whole
// path: the callee's devices looked up, the invite over the overlay, ringing,
// the answer, trickle ICE, DTLS, Opus through libwebrtc's jitter buffer. The
// caller plays a tone once connected, as someone would say hello.
//
// 1. Direct (host candidates) and through TURN (a real coturn on loopback,
//    credentials from the supernode, iceTransportPolicy 'relay').
// 2. Beside them, in the same run, the floor: two peer connections in this
//    process signalled directly (no overlay), from createOffer to the first
//    audio at the callee (packages/calls/bench/floor.bench.ts measures the same).
// 3. CPU time of this process per connected call (both ends; user + system),
//    over calls held for a few seconds.
// Prints one JSON object on stdout.
//   node packages/node/bench/calls.bench.ts [--runs N] [--hold SECONDS]
import { randomBytes } from 'node:crypto'
import { cpus, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { peerIdFromString } from '@libp2p/peer-id'
import { AudioPeer, connectDirectly, type IceServer, TurnSecret, turnUrls } from '@parley/calls'
import { generateKeyPair } from '@parley/crypto'
import { progressFor, startCoturn, testNetwork, timeSummary } from '@parley/testing'
import { CallService, CallStore, type CallView, ChatService, ChatStore, type ParleyNode, TurnService } from '../src/index.ts'
import { startClientNode, startSupernode, until } from './chat-support.ts'

const progress = progressFor('calls')
const { values: flags } = parseArgs({ options: { runs: { type: 'string', default: '20' }, hold: { type: 'string', default: '3' } } })
const RUNS = Number(flags.runs)
const HOLD_SECONDS = Number(flags.hold)
/** 440 Hz at -12 dBFS. */
const TONE = Int16Array.from({ length: 48_000 * 10 }, (_, i) => Math.round(8_000 * Math.sin((2 * Math.PI * 440 * i) / 48_000)))

interface Peer {
  name: string
  node: ParleyNode
  chat: ChatService
  calls: CallService
  ice: { servers: () => Promise<IceServer[]>; policy: 'all' | 'relay' }
  stop(): Promise<void>
}

const summary = timeSummary

const network = testNetwork()
const supernode = await startSupernode(network, 'calls_bench_super')

async function startPeer(name: string): Promise<Peer> {
  const device = generateKeyPair()
  const node = await startClientNode(network, supernode, name, { device })
  await node.records.publish({ addrs: node.addresses, presence: 'online' })
  const chat = new ChatService({ node, store: new ChatStore(':memory:'), device, me: () => name, emit: () => {} })
  await chat.start()
  const ice: Peer['ice'] = { servers: async () => [], policy: 'all' }
  const calls = new CallService({
    node,
    chat,
    store: new CallStore(':memory:'),
    me: () => name,
    emit: () => {},
    iceServers: async () => await ice.servers(),
    iceTransportPolicy: () => ice.policy,
    // Far more calls a minute from one user than a device takes by default (LIMITS.calls.invitesPerMinute).
    inviteRate: { perMinute: 60_000, burst: 1_000 }
  })
  await calls.start()
  return {
    name,
    node,
    chat,
    calls,
    ice,
    async stop() {
      await calls.stop()
      await chat.stop()
      await node.stop()
    }
  }
}

const caller = await startPeer('bench_caller')
const callee = await startPeer('bench_callee')
await caller.chat.addContact(callee.name)
await until('the request arrives', () => callee.chat.contacts().length === 1)
await callee.chat.acceptContact(caller.name)
await until('accepted', () => caller.chat.isContact(callee.name))

/** One call: dial → first audio at the callee (ms), then hung up. */
async function setupOnce(): Promise<{ setupMs: number; path: string | null }> {
  const ringing = callee.calls.nextIncoming({ signal: AbortSignal.timeout(10_000) })
  const dialed = performance.now()
  const placed = await caller.calls.call(callee.name, { play: TONE })
  await ringing
  const answeredAt = performance.now()
  await callee.calls.answer(placed.id)
  let view: CallView | undefined
  await until('first audio at the callee', () => (view = callee.calls.get(placed.id))?.setupMs != null || view?.state === 'ended', 10_000)
  if (view?.setupMs == null) throw new Error(`the call ended without audio: ${view?.outcome} ${view?.reason}`)
  const setupMs = answeredAt - dialed + view.setupMs
  const path = view.path
  await caller.calls.hangUp(placed.id)
  await callee.calls.ended(placed.id)
  return { setupMs, path }
}

async function setupRuns(label: string): Promise<{ setup: ReturnType<typeof summary>; paths: string[]; failed: number }> {
  await setupOnce().catch(() => undefined) // a cold run: libwebrtc's threads, the first lookup
  const times: number[] = []
  const paths = new Set<string>()
  let failed = 0
  for (let i = 0; i < RUNS; i++) {
    try {
      const run = await setupOnce()
      times.push(run.setupMs)
      if (run.path !== null) paths.add(run.path)
      progress(`${label} ${i + 1}/${RUNS}: ${run.setupMs.toFixed(1)} ms (${run.path})`)
    } catch (err) {
      failed++
      progress(`${label} ${i + 1}/${RUNS} failed: ${String(err)}`)
    }
  }
  return { setup: summary(times), paths: [...paths], failed }
}

/** The floor: two peer connections signalled directly, createOffer → first audio at the callee. */
async function floorOnce(): Promise<number> {
  const a = new AudioPeer()
  const b = new AudioPeer()
  const signal = AbortSignal.timeout(10_000)
  try {
    const playing = a.player.play(TONE, { signal }).catch(() => {})
    const started = performance.now()
    await connectDirectly(a.pc, b.pc, { signal })
    const first = await (await b.remoteAudio({ signal })).firstAudio({ signal })
    a.player.close()
    await playing
    return first - started
  } finally {
    a.close()
    b.close()
  }
}

/** CPU of this process (both ends of the call) per second of a connected call, % of one core. */
async function cpuPerCall(): Promise<{ cpuPercentOfOneCore: number; heldSeconds: number }> {
  const ringing = callee.calls.nextIncoming({ signal: AbortSignal.timeout(10_000) })
  const placed = await caller.calls.call(callee.name, { play: TONE })
  await callee.calls.answer((await ringing).id)
  await until('connected', () => callee.calls.get(placed.id)?.state === 'active', 10_000)
  const before = process.cpuUsage()
  const started = performance.now()
  await new Promise((r) => setTimeout(r, HOLD_SECONDS * 1000))
  const used = process.cpuUsage(before)
  const elapsed = performance.now() - started
  await caller.calls.hangUp(placed.id)
  await callee.calls.ended(placed.id)
  return { cpuPercentOfOneCore: Math.round(((used.user + used.system) / 1000 / elapsed) * 1000) / 10, heldSeconds: HOLD_SECONDS }
}

/**
 * End-to-end audio delay on loopback: in a connected call, a 100 ms tone burst handed to the caller's player
 * (its queue empty), timed to the first chunk at the callee's recorder that is loud again; and the MOS the
 * call's own statistics give (E-model), with no loss on the path.
 */
async function audioDelay(): Promise<{
  delay: ReturnType<typeof summary>
  mos: number | null
  rttMs: number | null
  jitterMs: number | null
}> {
  const ringing = callee.calls.nextIncoming({ signal: AbortSignal.timeout(10_000) })
  const placed = await caller.calls.call(callee.name)
  await callee.calls.answer((await ringing).id)
  await until('connected', () => callee.calls.get(placed.id)?.state === 'active' && caller.calls.get(placed.id)?.state === 'active', 10_000)
  const recorder = await callee.calls.recorderOf(placed.id)
  const burst = TONE.subarray(0, 4_800)
  const delays: number[] = []
  for (let i = 0; i < 15; i++) {
    await new Promise((r) => setTimeout(r, 400))
    let heardAt = 0
    recorder.onSamples = (chunk) => {
      let sum = 0
      for (const v of chunk) sum += v * v
      if (heardAt === 0 && Math.sqrt(sum / chunk.length) > 1_000) heardAt = performance.now()
    }
    const sentAt = performance.now()
    await caller.calls.play(placed.id, burst)
    await until('the burst is heard', () => heardAt !== 0, 5_000)
    delays.push(heardAt - sentAt)
    recorder.onSamples = undefined
  }
  const quality = callee.calls.get(placed.id)?.quality ?? null
  await caller.calls.hangUp(placed.id)
  await callee.calls.ended(placed.id)
  return { delay: summary(delays), mos: quality?.mos ?? null, rttMs: quality?.rttMs ?? null, jitterMs: quality?.jitterMs ?? null }
}

/**
 * A conference hosted by the caller with 4 participants (all in this process): CPU of the process over a few
 * seconds while every participant plays a tone and the host mixes, per participant; and with one call, for the
 * difference. Both ends of every call are in this process.
 */
async function conferenceCpu(): Promise<{ participants: number; cpuPercentOfOneCore: number; perParticipant: number }> {
  const guests = [callee, ...(await Promise.all(['bench_conf_1', 'bench_conf_2', 'bench_conf_3'].map(async (n) => await startPeer(n))))]
  const ids: string[] = []
  for (const guest of guests) {
    const ringing = guest.calls.nextIncoming({ signal: AbortSignal.timeout(10_000) })
    const placed = await caller.calls.call(guest.name, ids.length === 0 ? {} : { conference: ids[0] as string })
    await guest.calls.answer((await ringing).id)
    await until('connected', () => caller.calls.get(placed.id)?.state === 'active', 10_000)
    ids.push(placed.id)
  }
  for (const [i, guest] of guests.entries()) void guest.calls.play(ids[i] as string, TONE).catch(() => {})
  const before = process.cpuUsage()
  const started = performance.now()
  await new Promise((r) => setTimeout(r, HOLD_SECONDS * 1000))
  const used = process.cpuUsage(before)
  const elapsed = performance.now() - started
  for (const id of ids) await caller.calls.hangUp(id)
  for (const [i, guest] of guests.entries()) await guest.calls.ended(ids[i] as string)
  for (const guest of guests.slice(1)) await guest.stop()
  const percent = Math.round(((used.user + used.system) / 1000 / elapsed) * 1000) / 10
  return { participants: guests.length, cpuPercentOfOneCore: percent, perParticipant: Math.round((percent / guests.length) * 10) / 10 }
}

const load = (): number[] => loadavg().map((n) => Number(n.toFixed(2)))
const loadAtStart = load()
progress('direct')
const direct = await setupRuns('direct')
const cpu = await cpuPerCall()
progress('audio delay')
const mouthToEar = await audioDelay()
progress('conference')
const conference = await conferenceCpu()

progress('through TURN')
const secret = randomBytes(24).toString('base64url')
const coturn = await startCoturn({ secret })
const turn = new TurnService(supernode, {
  host: coturn.host,
  port: coturn.port,
  urls: turnUrls(coturn.host, coturn.port),
  secret: new TurnSecret(secret)
})
await turn.start()
const askers: TurnService[] = []
for (const p of [caller, callee]) {
  const asker = new TurnService(p.node)
  await asker.start()
  askers.push(asker)
  p.ice.servers = async () => await asker.iceServers([peerIdFromString(supernode.peerId)])
  p.ice.policy = 'relay'
}
const relayed = await setupRuns('turn')

progress('floor')
await floorOnce().catch(() => undefined)
const floorTimes: number[] = []
for (let i = 0; i < RUNS; i++) floorTimes.push(await floorOnce())
const floor = summary(floorTimes)

for (const a of askers) await a.stop()
await turn.stop()
await coturn.stop()
await caller.stop()
await callee.stop()
await supernode.stop()

process.stdout.write(
  `${JSON.stringify({
    bench: 'calls',
    note: 'one process on 2 shared cores: a supernode and two peers on loopback TCP; the callee answers as soon as it rings; the caller plays a tone once connected. Setup = calls.call() (the dial) → first non-silent 10 ms frame at the callee',
    cpus: cpus().length,
    runs: RUNS,
    setup: {
      direct: { ...direct.setup, paths: direct.paths, failed: direct.failed },
      turn: { ...relayed.setup, paths: relayed.paths, failed: relayed.failed },
      floor,
      ratio: { directP50OverFloorP50: Math.round((direct.setup.p50Ms / floor.p50Ms) * 100) / 100 },
      aim: { p50Ms: 50, p95Ms: 150, met: direct.setup.p50Ms <= 50 && direct.setup.p95Ms <= 150 }
    },
    cpuPerConnectedCall: { ...cpu, note: 'both ends of one call (caller and callee) in this process' },
    audioDelay: {
      ...mouthToEar.delay,
      note: 'a 100 ms tone handed to the caller’s player (queue empty) → the first loud chunk at the callee’s recorder: Opus, RTP over loopback, the jitter buffer, the sink; the player’s 10 ms frame clock included'
    },
    conferenceCpu: {
      ...conference,
      note: 'a conference of the host and 4 participants, everyone in this process: both ends of 4 calls and the host’s mixing; per participant = total / 4'
    },
    mosNoLoss: { mos: mouthToEar.mos, rttMs: mouthToEar.rttMs, jitterMs: mouthToEar.jitterMs, aim: 4.0 },
    loadAverage: { atStart: loadAtStart, atEnd: load() }
  })}\n`
)
process.exit(direct.failed + relayed.failed === 0 ? 0 : 1)
