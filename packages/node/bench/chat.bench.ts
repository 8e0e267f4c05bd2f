// Chat between peers on loopback TCP, all in this process (a supernode and the
// chat peers, as packages/node/test/chat.test.ts starts them):
//
// 1. Latency at a paced 1,000 messages/s (open loop), direct and relayed (both
//    peers listen nowhere; the recipient holds a relay reservation on the
//    supernode, so the only path is the circuit relay), from the
//    `chat.message()` call to the recipient's `message.received` event (the
//    envelope is stored in its database then). Side by side, on the same two
//    nodes and connection: a raw libp2p stream echo with frames of the same size
//    at the same pace (one long-lived stream), timed one way (the echo
//    handler's arrival, comparable with the chat figure) and round trip.
// 2. Sustained messages per second one to one (callers each sending one
//    message after another), and into a group of 20 (ChatService.groupMessage:
//    the author sends each line to the 19 other members' devices).
// 3. One message after another (nothing queued), direct and relayed: the
//    latency without load, and where the time goes (a whois alone: message()
//    looks up the recipient and the sender's own user every time; one write
//    transaction of the chat database).
//
// Chat databases are files (WAL, synchronous=FULL, one fsync per write
// transaction) in a temporary folder, as the daemon keeps `chat.sqlite`;
// `--store memory` uses ':memory:' instead. Prints one JSON object on stdout.
//   node packages/node/bench/chat.bench.ts [--store file|memory] [--messages N] [--rate N] [--seconds N]
import { cpus, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { directConversation, encodeEnvelope, signEnvelope } from '@parley/messaging'
import { ms, progressFor, rate, testNetwork } from '@parley/testing'
import type { ParleyNode } from '../src/index.ts'
import {
  befriend,
  benchDir,
  type ChatPeer,
  latency,
  paced,
  type StoreKind,
  sleep,
  startChatPeer,
  startSupernode,
  until
} from './chat-support.ts'

const progress = progressFor('chat')
const { values: flags } = parseArgs({
  options: {
    store: { type: 'string', default: 'file' },
    messages: { type: 'string', default: '2000' },
    rate: { type: 'string', default: '1000' },
    'light-messages': { type: 'string', default: '200' },
    'light-rate': { type: 'string', default: '20' },
    seconds: { type: 'string', default: '10' }
  }
})
const STORE = (flags.store === 'memory' ? 'memory' : 'file') as StoreKind
/** Messages per latency phase, and the pace. */
const MESSAGES = Number(flags.messages)
const RATE = Number(flags.rate)
/** The same again at a rate chat keeps up with (its latency without a queue). */
const LIGHT_MESSAGES = Number(flags['light-messages'])
const LIGHT_RATE = Number(flags['light-rate'])
const WARMUP = 100
/** How long each throughput run sends. */
const THROUGHPUT_MS = Number(flags.seconds) * 1000
/** Everything sent is waited for this long at most after the last send. */
const SETTLE_MS = 180_000
const ECHO_PROTOCOL = '/parley-bench/echo/1.0.0'
/** About a typical chat line; every text is this long (the sequence number is padded). */
const FILLER = 'the quick brown fox jumps over the lazy dog while we talk about lunch plans'

const load = (): number[] => loadavg().map((n) => Number(n.toFixed(2)))
const network = testNetwork()
const { dir, cleanup } = await benchDir('parley-chat-bench-')
const peers: ChatPeer[] = []
let supernode: ParleyNode | undefined

function textFor(tag: string, i: number): string {
  return `${tag} ${String(i).padStart(7, '0')} ${FILLER}`
}

/** The sequence number in a bench text, or -1. */
function seqOf(tag: string, text: unknown): number {
  if (typeof text !== 'string' || !text.startsWith(`${tag} `)) return -1
  return Number(text.slice(tag.length + 1, tag.length + 8))
}

async function peer(name: string, relayed = false): Promise<ChatPeer> {
  const p = await startChatPeer(network, supernode as ParleyNode, name, { store: STORE, dir, relayed })
  peers.push(p)
  return p
}

/** Chat messages paced open loop; per message: call → stored at the recipient, and call → message() resolved. */
async function chatPhase(
  sender: ChatPeer,
  recipient: ChatPeer,
  tag: string,
  count: number,
  perSecond: number
): Promise<Record<string, unknown>> {
  const sentAt = new Float64Array(count).fill(Number.NaN)
  const storedAt = new Float64Array(count).fill(Number.NaN)
  const resolvedAt = new Float64Array(count).fill(Number.NaN)
  const states: Record<string, number> = {}
  let errors = 0
  let stored = 0
  let lastStoredAt = 0
  recipient.onEvent = (type, data) => {
    if (type !== 'message.received') return
    const i = seqOf(tag, data.text)
    if (i >= 0 && i < count && Number.isNaN(storedAt[i] as number)) {
      storedAt[i] = performance.now()
      lastStoredAt = storedAt[i] as number
      stored++
    }
  }
  const loadBefore = load()
  const pacing = await paced(count, perSecond, (i) => {
    sentAt[i] = performance.now()
    sender.chat.message(recipient.name, textFor(tag, i)).then(
      (r) => {
        resolvedAt[i] = performance.now()
        states[r.state] = (states[r.state] ?? 0) + 1
      },
      () => {
        errors++
      }
    )
  })
  const settled = await until(`${tag}: every message stored`, () => stored === count, SETTLE_MS).then(
    () => true,
    () => false
  )
  recipient.onEvent = undefined
  const oneWay = Array.from(storedAt, (t, i) => t - (sentAt[i] as number))
  const resolved = Array.from(resolvedAt, (t, i) => t - (sentAt[i] as number))
  return {
    sent: count,
    stored,
    allStored: settled,
    errors,
    statesWhenResolved: states,
    pacedRatePerSecond: perSecond,
    /** message() calls made per second (below the pace when the event loop falls behind). */
    achievedRatePerSecond: rate(count / (pacing.elapsedMs / 1000)),
    /** Stored at the recipient per second, from the first call to the last arrival. */
    deliveredPerSecond: rate(stored / ((lastStoredAt - (sentAt[0] as number)) / 1000)),
    scheduleLag: latency(pacing.lagMs),
    callToStored: latency(oneWay),
    callToResolved: latency(resolved),
    loadAverage: { before: loadBefore, after: load() }
  }
}

/** Serves the echo protocol on a node: every length-prefixed frame back as it came; `arrived(seq)` on each. */
async function serveEcho(node: ParleyNode, arrived: (seq: number) => void): Promise<void> {
  await node.libp2p.handle(
    ECHO_PROTOCOL,
    async (stream) => {
      const lp = lpStream(stream, { maxDataLength: 1 << 20 })
      try {
        for (;;) {
          const frame = (await lp.read()).subarray()
          arrived(new DataView(frame.buffer, frame.byteOffset).getUint32(0))
          await lp.write(frame)
        }
      } catch {
        stream.abort(new Error('echo ended'))
      }
    },
    { runOnLimitedConnection: true }
  )
}

/** Raw echo frames of `size` bytes, paced the same, on one stream over the existing connection between the two nodes. */
async function echoPhase(
  from: ParleyNode,
  to: ParleyNode,
  size: number,
  count: number,
  perSecond: number,
  arrivals: { at: Float64Array }
): Promise<Record<string, unknown>> {
  const sentAt = new Float64Array(count).fill(Number.NaN)
  const backAt = new Float64Array(count).fill(Number.NaN)
  arrivals.at = new Float64Array(count).fill(Number.NaN)
  const connection = await from.libp2p.dial(peerIdFromString(to.peerId))
  const stream = await connection.newStream(ECHO_PROTOCOL, { runOnLimitedConnection: true })
  const lp = lpStream(stream, { maxDataLength: 1 << 20 })
  let back = 0
  const reading = (async () => {
    while (back < count) {
      const frame = (await lp.read()).subarray()
      const seq = new DataView(frame.buffer, frame.byteOffset).getUint32(0)
      if (seq < count && Number.isNaN(backAt[seq] as number)) {
        backAt[seq] = performance.now()
        back++
      }
    }
  })()
  const loadBefore = load()
  const payload = new Uint8Array(size).fill(0x61)
  let errors = 0
  const pacing = await paced(count, perSecond, (i) => {
    const frame = payload.slice()
    new DataView(frame.buffer).setUint32(0, i)
    sentAt[i] = performance.now()
    lp.write(frame).catch(() => {
      errors++
    })
  })
  const done = await Promise.race([reading.then(() => true), sleep(SETTLE_MS).then(() => false)])
  stream.abort(new Error('echo phase over'))
  return {
    sent: count,
    echoed: back,
    allEchoed: done,
    errors,
    frameBytes: size,
    pacedRatePerSecond: perSecond,
    achievedRatePerSecond: rate(count / (pacing.elapsedMs / 1000)),
    scheduleLag: latency(pacing.lagMs),
    oneWay: latency(Array.from(arrivals.at, (t, i) => t - (sentAt[i] as number))),
    roundTrip: latency(Array.from(backAt, (t, i) => t - (sentAt[i] as number))),
    loadAverage: { before: loadBefore, after: load() }
  }
}

/** Latency at the paced rate between two fresh peers, direct or relayed, with the echo alongside. */
async function latencyRun(mode: 'direct' | 'relayed'): Promise<Record<string, unknown>> {
  const relayed = mode === 'relayed'
  const sender = await peer(`lat_${mode}_a`, relayed)
  const recipient = await peer(`lat_${mode}_b`, relayed)
  await befriend(sender, recipient)
  const path = sender.node.pathTo(peerIdFromString(recipient.node.peerId))
  if (path !== mode) throw new Error(`${mode} run: the path between the peers is ${path}`)
  const arrivals = { at: new Float64Array(0) }
  await serveEcho(recipient.node, (seq) => {
    if (seq < arrivals.at.length && Number.isNaN(arrivals.at[seq] as number)) arrivals.at[seq] = performance.now()
  })
  // The size of one bench line as an envelope on the wire (the echo frames are as large).
  const sample = signEnvelope(
    {
      conv: directConversation(sender.name, recipient.name),
      kind: 'text',
      from: sender.name,
      lamport: 1_000_000,
      body: { text: textFor('measure', 0) }
    },
    sender.device
  )
  const envelopeBytes = encodeEnvelope(sample).length
  progress(`${mode}: warming up (${WARMUP} messages and echoes)`)
  await chatPhase(sender, recipient, 'warm', WARMUP, RATE)
  await echoPhase(sender.node, recipient.node, envelopeBytes, WARMUP, RATE, arrivals)
  const side = async (count: number, perSecond: number, tag: string): Promise<Record<string, unknown>> => {
    progress(`${mode}: ${count} raw echoes at ${perSecond}/s`)
    const echo = await echoPhase(sender.node, recipient.node, envelopeBytes, count, perSecond, arrivals)
    progress(`${mode}: ${count} chat messages at ${perSecond}/s`)
    const chat = await chatPhase(sender, recipient, tag, count, perSecond)
    const c = chat.callToStored as ReturnType<typeof latency>
    const e = echo.oneWay as ReturnType<typeof latency>
    const r = echo.roundTrip as ReturnType<typeof latency>
    progress(`${mode} at ${perSecond}/s: chat p50 ${c.p50Ms} ms p99 ${c.p99Ms} ms; echo one way p50 ${e.p50Ms} ms p99 ${e.p99Ms} ms`)
    return {
      chat,
      echo,
      ratio: {
        note: 'chat call→stored over raw echo one way (and over the echo round trip)',
        p50: ms(c.p50Ms / e.p50Ms),
        p99: ms(c.p99Ms / e.p99Ms),
        p50OverRoundTrip: ms(c.p50Ms / r.p50Ms),
        p99OverRoundTrip: ms(c.p99Ms / r.p99Ms)
      },
      ...(mode === 'direct' ? { aim: { p50Ms: 2, p99Ms: 20, met: c.p50Ms <= 2 && c.p99Ms <= 20 } } : {})
    }
  }
  const atRate = await side(MESSAGES, RATE, 'lat')
  const light = await side(LIGHT_MESSAGES, LIGHT_RATE, 'light')
  progress(`${mode}: one message after another`)
  const oneAtATime = await breakdown(sender, recipient)
  return { path, pathAfter: sender.node.pathTo(peerIdFromString(recipient.node.peerId)), envelopeBytes, atRate, light, oneAtATime }
}

/** `callers` callers each sending one message after another for THROUGHPUT_MS; delivered counted at the recipients. */
async function throughputRun(
  sender: ChatPeer,
  recipients: ChatPeer[],
  callers: number,
  tag: string,
  group?: string
): Promise<Record<string, unknown>> {
  let delivered = 0
  let lastAt = 0
  for (const r of recipients) {
    r.onEvent = (type, data) => {
      if (type === 'message.received' && seqOf(tag, data.text) >= 0) {
        delivered++
        lastAt = performance.now()
      }
    }
  }
  let next = 0
  let sends = 0
  let errors = 0
  const loadBefore = load()
  const start = performance.now()
  const end = start + THROUGHPUT_MS
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < end) {
        const text = textFor(tag, next++)
        try {
          if (group === undefined) await sender.chat.message((recipients[0] as ChatPeer).name, text)
          else await sender.chat.groupMessage(group, text)
          sends++
        } catch {
          errors++
        }
      }
    })
  )
  const sendMs = performance.now() - start
  const expected = sends * recipients.length
  const settled = await until(`${tag}: every message delivered`, () => delivered >= expected, SETTLE_MS).then(
    () => true,
    () => false
  )
  for (const r of recipients) r.onEvent = undefined
  const deliverMs = lastAt - start
  return {
    callers,
    recipients: recipients.length,
    seconds: Number((sendMs / 1000).toFixed(1)),
    messagesSent: sends,
    deliveriesExpected: expected,
    delivered,
    allDelivered: settled,
    errors,
    /** Lines that message() or groupMessage() accepted per second while sending. */
    sentPerSecond: rate(sends / (sendMs / 1000)),
    /** Envelopes stored at the recipients per second, from the first send to the last arrival. */
    deliveriesPerSecond: rate(delivered / (deliverMs / 1000)),
    loadAverage: { before: loadBefore, after: load() }
  }
}

/**
 * Where one message's time goes, one after another: message() to resolved and
 * to stored, a whois of the recipient alone (message() looks up the recipient
 * and the sender's own user every time), libp2p.dial() of the recipient with
 * its connection open (every outbox pass dials), and one write transaction of
 * the chat database (message() and the receiver make several each).
 */
async function breakdown(sender: ChatPeer, recipient: ChatPeer, count = 100): Promise<Record<string, unknown>> {
  const toResolved: number[] = []
  const toStored: number[] = []
  let storedAt = 0
  recipient.onEvent = (type) => {
    if (type === 'message.received') storedAt = performance.now()
  }
  for (let i = 0; i < count; i++) {
    storedAt = 0
    const t = performance.now()
    await sender.chat.message(recipient.name, textFor('seq', i))
    toResolved.push(performance.now() - t)
    await until('stored', () => storedAt > 0, SETTLE_MS)
    toStored.push(storedAt - t)
  }
  recipient.onEvent = undefined
  const whois: number[] = []
  for (let i = 0; i < count; i++) {
    const t = performance.now()
    await sender.node.records.whois(recipient.name)
    whois.push(performance.now() - t)
  }
  // What ChatService.#deliver does first on every pass: dial the device (a connection is open already).
  const dial: number[] = []
  for (let i = 0; i < count; i++) {
    const t = performance.now()
    await sender.node.libp2p.dial(peerIdFromString(recipient.node.peerId))
    dial.push(performance.now() - t)
  }
  const write: number[] = []
  for (let i = 0; i < count; i++) {
    const t = performance.now()
    sender.store.setSetting('bench', String(i))
    write.push(performance.now() - t)
  }
  return {
    messages: count,
    callToResolved: latency(toResolved),
    callToStored: latency(toStored),
    whoisOfRecipient: latency(whois),
    dialWithConnectionOpen: latency(dial),
    oneWriteTransaction: latency(write)
  }
}

const started = performance.now()
const loadAtStart = load()
try {
  supernode = await startSupernode(network, 'chat_bench_super')
  const direct = await latencyRun('direct')
  const relayed = await latencyRun('relayed')

  progress(`one to one: 1 and 32 callers for ${THROUGHPUT_MS / 1000} s each`)
  const a = await peer('tput_a')
  const b = await peer('tput_b')
  await befriend(a, b)
  await throughputRun(a, [b], 4, 'warm1')
  const oneToOneSequential = await throughputRun(a, [b], 1, 'one1')
  const oneToOneConcurrent = await throughputRun(a, [b], 32, 'one32')
  progress(`one to one: ${oneToOneSequential.deliveriesPerSecond}/s with 1 caller, ${oneToOneConcurrent.deliveriesPerSecond}/s with 32`)

  progress('a group of 20: starting 20 more peers')
  const g = await peer('group_sender')
  const members: ChatPeer[] = []
  for (let i = 0; i < 19; i++) members.push(await peer(`group_member_${i}`))
  const { conv } = await g.chat.createGroup(
    'bench group',
    members.map((m) => m.name)
  )
  await until('every member has the group', () => members.every((m) => m.chat.groups().some((x) => x.conv === conv)), 30_000)
  await throughputRun(g, members, 1, 'warmg', conv)
  const group1 = await throughputRun(g, members, 1, 'group1', conv)
  const group4 = await throughputRun(g, members, 4, 'group4', conv)
  progress(`group of 20: ${group1.sentPerSecond} lines/s (${group1.deliveriesPerSecond} deliveries/s) with 1 caller`)

  const result = {
    bench: 'chat',
    transport: 'tcp loopback',
    note: 'one process: the supernode, both peers (20 in the group) and the bench share one event loop on 2 shared cores (others run tests: timings are noisy); direct = TCP between the peers, relayed = both peers listen nowhere and the recipient holds a relay reservation on the supernode',
    store: STORE === 'file' ? 'files in a temporary folder (WAL, synchronous=FULL), as the daemon keeps chat.sqlite' : ':memory:',
    cpus: cpus().length,
    messagesPerLatencyPhase: MESSAGES,
    pacedRatePerSecond: RATE,
    lightMessages: LIGHT_MESSAGES,
    lightRatePerSecond: LIGHT_RATE,
    latency: { direct, relayed },
    throughput: {
      note: 'closed loop: each caller sends one line after another (message(), or groupMessage() in a group of 20, where each line goes to the 19 other members: 19 deliveries)',
      oneToOne: { sequential: oneToOneSequential, concurrent: oneToOneConcurrent },
      groupOf20: { sequential: group1, concurrent: group4 }
    },
    loadAverage: { start: loadAtStart, end: load() },
    seconds: Number(((performance.now() - started) / 1000).toFixed(1))
  }
  process.stdout.write(`${JSON.stringify(result)}\n`)
} finally {
  progress('stopping')
  await Promise.all(peers.map(async (p) => await p.stop()))
  await supernode?.stop().catch(() => {})
  await cleanup()
}
process.exit(0)
