// A worker process of the connections bench (forked, messages over IPC): runs many
// client nodes (each a ParleyNode with its own device key, on loopback TCP), each of
// which connects to the supernode and completes the hello, and keeps them connected.
//   parent -> worker: {type:'join', target, trustedKeys, clients:[{seed, credential}], concurrency, retries, quiet}
//                     {type:'status'} {type:'halt'} (no more joins) {type:'stop'}
// A quiet client has libp2p's connection monitor stopped once it is connected (no ping
// every 10 s, no abort when a ping is late): the bench's variant for when this worker's
// own event loop, shared by many nodes on a busy machine, makes pings late.
//   worker -> parent: {type:'progress', held, failed} {type:'joined', ...} {type:'status', ...} {type:'stopped'}
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { fromBase64Url } from '@parley/protocol'
import { ParleyNode } from '../src/index.ts'

interface JoinMessage {
  type: 'join'
  target: string
  trustedKeys: Array<{ id: string; publicKey: string }>
  clients: Array<{ seed: string; credential: string }>
  concurrency: number
  retries: number
  quiet: boolean
}
type Message = JoinMessage | { type: 'status' } | { type: 'halt' } | { type: 'stop' }

const send = (message: Record<string, unknown>): void => {
  process.send?.(message)
}

/** How late this worker's event loop runs (1,250 nodes share it): late pings look like a slow supernode. */
const loopDelay = monitorEventLoopDelay({ resolution: 20 })
loopDelay.enable()
const held: ParleyNode[] = []
let supernodePeer = ''
let disconnects = 0
let stopping = false
let halted = false

function errorKey(err: unknown): string {
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
  return message.replace(/\/ip4\/\S+|12D3Koo\w+|\d{2,}/g, '…').slice(0, 120)
}

async function joinOne(m: JoinMessage, client: { seed: string; credential: string }): Promise<string | undefined> {
  const node = await ParleyNode.create({
    role: 'client',
    deviceSeed: fromBase64Url(client.seed) as Uint8Array,
    trustedKeys: m.trustedKeys,
    credential: () => client.credential,
    privateAddresses: true
  })
  await node.start()
  try {
    const outcome = await node.connect(m.target, { signal: AbortSignal.timeout(30_000) })
    if (!outcome.ok) throw new Error(`hello refused: ${outcome.reason}`)
  } catch (err) {
    await node.stop().catch(() => {})
    return errorKey(err)
  }
  if (m.quiet) {
    // Not public API: the libp2p node's components.
    const components = (node.libp2p as unknown as { components: { connectionMonitor: { stop(): void } } }).components
    components.connectionMonitor.stop()
  }
  node.libp2p.addEventListener('peer:disconnect', (event) => {
    if (!stopping && event.detail.toString() === supernodePeer) disconnects++
  })
  held.push(node)
  return undefined
}

async function join(m: JoinMessage): Promise<void> {
  supernodePeer = m.target.split('/p2p/')[1] ?? ''
  const started = performance.now()
  const errors: Record<string, number> = {}
  let failed = 0
  let added = 0
  let retried = 0
  let next = 0
  let done = 0
  await Promise.all(
    Array.from({ length: m.concurrency }, async () => {
      while (next < m.clients.length && !halted) {
        const client = m.clients[next++]!
        for (let attempt = 0; ; attempt++) {
          const error = await joinOne(m, client)
          if (error === undefined) {
            added++
            break
          }
          errors[error] = (errors[error] ?? 0) + 1
          if (attempt >= m.retries) {
            failed++
            break
          }
          retried++
          await new Promise((resolve) => setTimeout(resolve, 100 * (attempt + 1)))
        }
        if (++done % 50 === 0) send({ type: 'progress', held: held.length, failed })
      }
    })
  )
  send({ type: 'joined', held: held.length, added, failed, retried, errors, ms: Math.round(performance.now() - started) })
}

function status(): void {
  let connected = 0
  for (const node of held) if (node.libp2p.getConnections().some((c) => c.remotePeer.toString() === supernodePeer)) connected++
  send({
    type: 'status',
    held: held.length,
    connected,
    disconnects,
    rss: process.memoryUsage().rss,
    // Since the last status, ms.
    loopDelayP99Ms: Math.round(loopDelay.percentile(99) / 1e6),
    loopDelayMaxMs: Math.round(loopDelay.max / 1e6)
  })
  loopDelay.reset()
}

process.on('message', (m: Message) => {
  if (m.type === 'join') void join(m).catch((err: unknown) => send({ type: 'error', message: String(err) }))
  else if (m.type === 'status') status()
  else if (m.type === 'halt') halted = true
  else if (m.type === 'stop') {
    stopping = true
    void Promise.all(held.map(async (node) => await node.stop().catch(() => {}))).finally(() => {
      send({ type: 'stopped' })
      process.exit(0)
    })
  }
})
process.on('disconnect', () => process.exit(0))
send({ type: 'ready' })
