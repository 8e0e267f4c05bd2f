// The offline mailbox on one supernode, on loopback TCP, all in this process:
//
// 1. Store and fetch rate: a few senders deposit N sealed items for one
//    recipient device (MailboxService.deposit, several at once per sender), then
//    the recipient collects them (every page, each item checked: signature and
//    the sender's credential) and removes them. Items/s and MB/s of encoded
//    items, for chat-sized items (a chat envelope sealed to the device) and for
//    64 KiB payloads. The supernode keeps its mailbox in a SQLite file in a
//    temporary folder (WAL, synchronous=FULL, group commit), as in its profile;
//    its per-sender rates and quotas are raised so the store and the protocol
//    are measured, not the limits (LIMITS.mailbox allows 120 puts a minute per
//    sender).
// 2. Offline delivery: a message to a contact whose device is off is sealed
//    into its mailbox; the device comes back (node started and linked to the
//    supernode, as the daemon does before its chat service), and the time from
//    ChatService.start() with collect() called at once (as the daemon does) to
//    the message in its history is taken, several times.
//
// Prints one JSON object on stdout.
//   node packages/node/bench/mailbox.bench.ts [--items N] [--large-items N] [--trials N]
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { generateKeyPair, type KeyPair } from '@parley/crypto'
import { directConversation, encodeEnvelope, publicKeyOfPeerId, seal, signEnvelope } from '@parley/messaging'
import { progressFor, rate, testNetwork } from '@parley/testing'
import type { MailboxItem, ParleyNode } from '../src/index.ts'
import { befriend, benchDir, type ChatPeer, latency, startChatPeer, startClientNode, startSupernode } from './chat-support.ts'

const progress = progressFor('mailbox')
const { values: flags } = parseArgs({
  options: {
    items: { type: 'string', default: '4000' },
    'large-items': { type: 'string', default: '400' },
    senders: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '8' },
    trials: { type: 'string', default: '10' }
  }
})
const ITEMS = Number(flags.items)
const LARGE_ITEMS = Number(flags['large-items'])
const SENDERS = Number(flags.senders)
/** Deposits each sender has in flight at once. */
const CONCURRENCY = Number(flags.concurrency)
const TRIALS = Number(flags.trials)
const LARGE_BYTES = 64 * 1024
const MB = 1_000_000
const FILLER = 'the quick brown fox jumps over the lazy dog while we talk about lunch plans'

const load = (): number[] => loadavg().map((n) => Number(n.toFixed(2)))
const network = testNetwork()
const { dir, cleanup } = await benchDir('parley-mailbox-bench-')
const nodes: ParleyNode[] = []
const peers: ChatPeer[] = []
let supernode: ParleyNode | undefined

async function client(name: string, device = generateKeyPair()): Promise<ParleyNode> {
  const node = await startClientNode(network, supernode as ParleyNode, name, { device })
  nodes.push(node)
  return node
}

/** Store, fetch and delete `count` items of one kind: made and sealed beforehand, so only the mailbox is timed. */
async function storeAndFetch(kind: 'chat' | 'large', count: number): Promise<Record<string, unknown>> {
  const recipientName = `mbx_${kind}_rcpt`
  const recipient = await client(recipientName)
  const devices = Array.from({ length: SENDERS }, () => generateKeyPair())
  const senders = await Promise.all(devices.map(async (device, i) => await client(`mbx_${kind}_sender_${i}`, device)))
  const recipientKey = publicKeyOfPeerId(recipient.peerId) as Uint8Array
  progress(`${kind}: sealing and signing ${count} items`)
  const prepared: MailboxItem[][] = senders.map(() => [])
  const makeStarted = performance.now()
  const largePlain = crypto.getRandomValues(new Uint8Array(LARGE_BYTES))
  for (let i = 0; i < count; i++) {
    const s = i % SENDERS
    const sender = senders[s] as ParleyNode
    const name = `mbx_${kind}_sender_${s}`
    let plaintext: Uint8Array
    let id: string
    if (kind === 'chat') {
      // What ChatService deposits: the signed envelope, sealed to the device; its id is the envelope's.
      const envelope = signEnvelope(
        {
          conv: directConversation(name, recipientName),
          kind: 'text',
          from: name,
          lamport: i + 1,
          body: { text: `mbx ${String(i).padStart(7, '0')} ${FILLER}` }
        },
        devices[s] as KeyPair
      )
      plaintext = encodeEnvelope(envelope)
      id = envelope.id
    } else {
      plaintext = largePlain
      id = `large${i}`
    }
    const sealed = await seal(plaintext, recipientKey)
    prepared[s]?.push(sender.mailbox.item({ id, to: recipientName, device: recipient.peerId, sealed }))
  }
  const makeMs = performance.now() - makeStarted
  const all = prepared.flat()
  const itemBytes = all.reduce((n, it) => n + it.bytes.length, 0)
  const sealedBytes = all.reduce((n, it) => n + it.sealed.length, 0)

  progress(`${kind}: ${SENDERS} senders deposit ${count} items (${CONCURRENCY} at once each)`)
  const loadBefore = load()
  const putTimes: number[] = []
  let stored = 0
  const refusals: Record<string, number> = {}
  const putStarted = performance.now()
  await Promise.all(
    senders.map(async (sender, s) => {
      const queue = [...(prepared[s] as MailboxItem[])]
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
            const t = performance.now()
            const result = await sender.mailbox.deposit(item)
            putTimes.push(performance.now() - t)
            if (result.stored > 0) stored++
            for (const r of result.refused) refusals[r.code] = (refusals[r.code] ?? 0) + 1
          }
        })
      )
    })
  )
  const putMs = performance.now() - putStarted
  const keptOnSupernode = supernode?.mailbox.store?.size ?? Number.NaN

  progress(`${kind}: the recipient collects and removes them`)
  const collectStarted = performance.now()
  const found = await recipient.mailbox.collect(recipientName)
  const collectMs = performance.now() - collectStarted
  const removeStarted = performance.now()
  const removed = await recipient.mailbox.remove(found.items)
  const removeMs = performance.now() - removeStarted
  const loadAfter = load()
  const fetchedBytes = found.items.reduce((n, it) => n + it.bytes.length, 0)
  for (const node of [recipient, ...senders]) {
    await node.stop().catch(() => {})
    nodes.splice(nodes.indexOf(node), 1)
  }
  return {
    items: count,
    senders: SENDERS,
    depositsInFlightPerSender: CONCURRENCY,
    itemBytes: { mean: Math.round(itemBytes / count), sealedPayloadMean: Math.round(sealedBytes / count), total: itemBytes },
    preparationSeconds: Number((makeMs / 1000).toFixed(2)),
    store: {
      stored,
      keptOnSupernode,
      refusals,
      seconds: Number((putMs / 1000).toFixed(2)),
      itemsPerSecond: rate(stored / (putMs / 1000)),
      mbPerSecond: rate(itemBytes / MB / (putMs / 1000)),
      depositLatency: latency(putTimes)
    },
    fetch: {
      collected: found.items.length,
      dropped: found.dropped.length,
      failed: found.failed.length,
      seconds: Number((collectMs / 1000).toFixed(2)),
      itemsPerSecond: rate(found.items.length / (collectMs / 1000)),
      mbPerSecond: rate(fetchedBytes / MB / (collectMs / 1000))
    },
    remove: {
      deleted: removed.deleted,
      failed: removed.failed.length,
      leftOnSupernode: supernode?.mailbox.store?.size ?? Number.NaN,
      seconds: Number((removeMs / 1000).toFixed(2)),
      itemsPerSecond: rate(removed.deleted / (removeMs / 1000))
    },
    fetchAndRemove: {
      itemsPerSecond: rate(found.items.length / ((collectMs + removeMs) / 1000)),
      mbPerSecond: rate(fetchedBytes / MB / ((collectMs + removeMs) / 1000))
    },
    loadAverage: { before: loadBefore, after: loadAfter }
  }
}

/** A message to a device that is off, then the device back: ChatService.start() (collect() at once) → the message in its history. */
async function offlineDelivery(trials: number): Promise<Record<string, unknown>> {
  const sender = await startChatPeer(network, supernode as ParleyNode, 'offline_sender', { dir })
  peers.push(sender)
  const device = generateKeyPair()
  const storePath = join(dir, 'offline_rcpt.sqlite')
  let recipient = await startChatPeer(network, supernode as ParleyNode, 'offline_rcpt', { device, storePath })
  await befriend(sender, recipient)
  await recipient.stop()
  const upTimes: number[] = []
  const deliveredTimes: number[] = []
  const totals: number[] = []
  const states: Record<string, number> = {}
  let missing = 0
  for (let trial = 0; trial < trials; trial++) {
    const sent = await sender.chat.message('offline_rcpt', `while you were out, number ${trial}`)
    states[sent.state] = (states[sent.state] ?? 0) + 1
    // The device comes back: node up and linked to its supernode, then the chat service, with collect() at once.
    const upStarted = performance.now()
    recipient = await startChatPeer(network, supernode as ParleyNode, 'offline_rcpt', { device, storePath, startChat: false })
    const chatStarted = performance.now()
    let arrivedAt = 0
    recipient.onEvent = (type, data) => {
      if (type === 'message.received' && data.id === sent.id) arrivedAt = performance.now()
    }
    await recipient.chat.start()
    void recipient.chat.collect().catch(() => {})
    const deadline = chatStarted + 10_000
    while (arrivedAt === 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 1))
    const inHistory = recipient.chat.history('offline_sender', 1_000).some((m) => m.id === sent.id)
    if (arrivedAt === 0 || !inHistory) missing++
    else {
      upTimes.push(chatStarted - upStarted)
      deliveredTimes.push(arrivedAt - chatStarted)
      totals.push(arrivedAt - upStarted)
    }
    recipient.onEvent = undefined
    await recipient.stop()
  }
  const delivered = latency(deliveredTimes)
  return {
    trials,
    sentStates: states,
    missing,
    nodeStartAndLink: latency(upTimes),
    chatStartToHistory: delivered,
    nodeStartToHistory: latency(totals),
    withinTwoSeconds: missing === 0 && delivered.maxMs <= 2_000
  }
}

const started = performance.now()
const loadAtStart = load()
try {
  supernode = await startSupernode(network, 'mailbox_bench_super', {
    path: join(dir, 'mailbox.sqlite'),
    limits: {
      putsPerMinute: 1e9,
      putBurst: 1e9,
      requestsPerMinute: 1e9,
      requestBurst: 1e9,
      perRecipientItems: 1e7,
      perRecipientBytes: 1e11,
      perSenderItems: 1e7,
      perSenderBytes: 1e11
    }
  })
  const chat = await storeAndFetch('chat', ITEMS)
  const large = await storeAndFetch('large', LARGE_ITEMS)
  progress(`offline delivery: ${TRIALS} trials`)
  const offline = await offlineDelivery(TRIALS)
  const result = {
    bench: 'mailbox',
    transport: 'tcp loopback',
    note: 'one process: the supernode, the senders and the recipient share one event loop on 2 shared cores (others run tests: timings are noisy); MB = 10^6 bytes of encoded items (sealed payload, sender credential, signature)',
    supernodeStore:
      'SQLite file in a temporary folder (WAL, synchronous=FULL, group commit); per-sender rates and quotas raised for the bench',
    storeAndFetch: { chat, large: { payloadBytes: LARGE_BYTES, ...large } },
    offlineDelivery: {
      note: 'recipient chat database a file; the figure is ChatService.start() (collect() called at once, as the daemon does) to the message.received event with the message in history; node start and link to the supernode before it are given apart',
      ...offline
    },
    loadAverage: { start: loadAtStart, end: load() },
    seconds: Number(((performance.now() - started) / 1000).toFixed(1))
  }
  process.stdout.write(`${JSON.stringify(result)}\n`)
} finally {
  progress('stopping')
  await Promise.all(peers.map(async (p) => await p.stop()))
  await Promise.all(nodes.map(async (n) => await n.stop().catch(() => {})))
  await supernode?.stop().catch(() => {})
  await cleanup()
}
process.exit(0)
