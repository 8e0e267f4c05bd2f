// startDaemon as `parley daemon` and `parley supernode` run it, in a bench-side
// process that reports where its start-up time goes, and that may change one thing
// from outside the overlay code: the connection manager's maxConnections
// (createOverlay sets LIMITS.overlay.maxConnections).
//   node daemon-host.ts client|supernode DATA_DIR NETWORK_FILE [MAX_CONNECTIONS]
// Prints {"event":"ready", peerId, addrs, maxConnections, timings} on stdout; on a
// line "stats" on stdin, prints {"event":"stats", ...}; stops on SIGINT/SIGTERM.
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { createInterface } from 'node:readline'

/** Milliseconds since this process began (performance's time origin). */
const scriptStartedMs = performance.now()
const [role, dataDir, networkFile, max] = process.argv.slice(2)
if ((role !== 'client' && role !== 'supernode') || dataDir === undefined || networkFile === undefined) {
  process.stderr.write('usage: node daemon-host.ts client|supernode DATA_DIR NETWORK_FILE [MAX_CONNECTIONS]\n')
  process.exit(2)
}

const { startDaemon } = await import('../src/index.ts')
const importedMs = performance.now()
const daemon = await startDaemon({ dataDir, networkFile, role })
const startedMs = performance.now()
interface ConnectionManagerInternals {
  getMaxConnections(): number
  setMaxConnections(n: number): void
}
// Not public API: the libp2p node's components. Only the bench does this.
const manager = (daemon.node.libp2p as unknown as { components: { connectionManager: ConnectionManagerInternals } }).components
  .connectionManager
const defaultMax = manager.getMaxConnections()
if (max !== undefined) manager.setMaxConnections(Number(max))

process.stdout.write(
  `${JSON.stringify({
    event: 'ready',
    role,
    peerId: daemon.node.peerId,
    addrs: daemon.node.addresses,
    api: daemon.api.url,
    maxConnections: manager.getMaxConnections(),
    defaultMaxConnections: defaultMax,
    timings: {
      /** Node's own start, up to this script's first line. */
      nodeBootMs: Math.round(scriptStartedMs),
      /** Loading the overlay code (the node package and libp2p). */
      importMs: Math.round(importedMs - scriptStartedMs),
      /** startDaemon: profile, libp2p, attaching to supernodes, publishing, local API. */
      startDaemonMs: Math.round(startedMs - importedMs)
    }
  })}\n`
)

const loopDelay = monitorEventLoopDelay({ resolution: 20 })
loopDelay.enable()
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'stats') return
  const connections = daemon.node.libp2p.getConnections()
  const verified = new Set(
    connections.filter((c) => daemon.node.hello.verified(c.remotePeer) !== undefined).map((c) => c.remotePeer.toString())
  )
  const before = process.memoryUsage()
  globalThis.gc?.()
  const after = process.memoryUsage()
  process.stdout.write(
    `${JSON.stringify({
      event: 'stats',
      connections: connections.length,
      peers: new Set(connections.map((c) => c.remotePeer.toString())).size,
      verifiedPeers: verified.size,
      rss: before.rss,
      heapUsed: before.heapUsed,
      heapUsedAfterGc: globalThis.gc === undefined ? null : after.heapUsed,
      external: after.external,
      arrayBuffers: after.arrayBuffers,
      // How late the event loop ran since the last stats, ms.
      loopDelayP99Ms: Math.round(loopDelay.percentile(99) / 1e6),
      loopDelayMaxMs: Math.round(loopDelay.max / 1e6)
    })}\n`
  )
  loopDelay.reset()
})

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return
    stopping = true
    void daemon.stop().finally(() => process.exit(0))
  })
}
