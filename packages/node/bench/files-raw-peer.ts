// One end of the raw libp2p stream in the file-transfer bench (files.bench.ts):
// a libp2p node with Parley's transport, encryption and muxer (TCP, Noise,
// yamux: packages/node/src/overlay/libp2p.ts) and nothing else; no Parley
// protocol, no hashing, no disk.
//   node files-raw-peer.ts receive              listens on loopback TCP; what comes on the bench protocol is
//                                               written to /dev/null; {"event":"received", bytes, ms} at its end
//   node files-raw-peer.ts send ADDR BYTES      dials ADDR; on a line "go" on stdin, pushes BYTES over one
//                                               stream in 1 MiB writes; {"event":"sent", bytes, ms}
// Both print {"event":"ready", ...} first, and stop on SIGINT/SIGTERM or when stdin ends.
import { closeSync, openSync, writeSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import type { Stream } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

/** The bench's own protocol id: the stream carries nothing but the bytes. */
const RAW_PROTOCOL = '/parley-bench/raw/1.0.0'
const WRITE_BYTES = 1024 * 1024

const [mode, addr, bytesArg] = process.argv.slice(2)
if (mode !== 'receive' && !(mode === 'send' && addr !== undefined && bytesArg !== undefined)) {
  process.stderr.write('usage: node files-raw-peer.ts receive | send ADDR BYTES\n')
  process.exit(2)
}

const say = (event: object): void => {
  process.stdout.write(`${JSON.stringify(event)}\n`)
}

const node = await createLibp2p({
  addresses: { listen: mode === 'receive' ? ['/ip4/127.0.0.1/tcp/0'] : [] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  // As Parley's overlay: no keep-alive pings on this bench's one connection matter either way.
  connectionMonitor: { enabled: false }
})
await node.start()

const stop = async (): Promise<void> => {
  await Promise.resolve(node.stop()).catch(() => {})
  process.exit(0)
}
process.once('SIGINT', () => void stop())
process.once('SIGTERM', () => void stop())
const lines = createInterface({ input: process.stdin })
lines.once('close', () => void stop())

if (mode === 'receive') {
  const devNull = openSync('/dev/null', 'w')
  await node.handle(RAW_PROTOCOL, async (stream: Stream) => {
    const started = performance.now()
    let bytes = 0
    try {
      for await (const piece of stream) {
        const view = piece instanceof Uint8Array ? piece : piece.subarray()
        writeSync(devNull, view)
        bytes += view.byteLength
      }
      say({ event: 'received', bytes, ms: performance.now() - started })
    } catch (err) {
      say({ event: 'received', bytes, ms: performance.now() - started, error: (err as Error).message })
    }
  })
  process.once('exit', () => closeSync(devNull))
  say({ event: 'ready', peerId: node.peerId.toString(), addrs: node.getMultiaddrs().map((a) => a.toString()) })
} else {
  const total = Number(bytesArg)
  const connection = await node.dial(multiaddr(addr as string), { signal: AbortSignal.timeout(30_000) })
  say({ event: 'ready', peerId: node.peerId.toString(), remote: connection.remoteAddr.toString() })
  // Random bytes, one buffer sent again and again: no encryption layer can tell.
  const buffer = new Uint8Array(WRITE_BYTES)
  for (let i = 0; i < buffer.length; i += 65_536) crypto.getRandomValues(buffer.subarray(i, i + 65_536))
  lines.on('line', (line) => {
    if (line.trim() !== 'go') return
    void (async () => {
      const stream = await connection.newStream(RAW_PROTOCOL, { signal: AbortSignal.timeout(30_000) })
      const started = performance.now()
      let sent = 0
      while (sent < total) {
        const piece = total - sent >= buffer.length ? buffer : buffer.subarray(0, total - sent)
        // Backpressure: wait for the muxer's drain when its buffer is full.
        if (!stream.send(piece)) await stream.onDrain()
        sent += piece.length
      }
      await stream.close()
      say({ event: 'sent', bytes: sent, ms: performance.now() - started })
    })().catch((err: unknown) => say({ event: 'sent', bytes: 0, ms: 0, error: (err as Error).message }))
  })
}
