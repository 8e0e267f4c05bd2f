// A user daemon that nobody can dial, for the relayed part of the file-transfer
// bench: startDaemon as `parley daemon` runs it, but listening on nothing
// (`listen: []`, which the command line cannot say: `--listen /p2p-circuit`
// makes libp2p look for relays on its own and the daemon never gets ready). The
// NAT check then finds it firewalled, it takes relay reservations on its
// supernodes and advertises only those, as a daemon behind a firewall does;
// `parley send-file` and `parley files` drive it through its local API as usual.
//   node files-daemon-host.ts DATA_DIR NETWORK_FILE
// Prints {"event":"ready", peerId, addrs, api} like `parley daemon`; stops on SIGINT/SIGTERM.
import { startDaemon } from '../src/index.ts'

const [dataDir, networkFile] = process.argv.slice(2)
if (dataDir === undefined || networkFile === undefined) {
  process.stderr.write('usage: node files-daemon-host.ts DATA_DIR NETWORK_FILE\n')
  process.exit(2)
}

const daemon = await startDaemon({ dataDir, networkFile, role: 'client', listen: [] })
process.stdout.write(
  `${JSON.stringify({ event: 'ready', role: 'client', peerId: daemon.node.peerId, addrs: daemon.node.addresses, api: daemon.api.url })}\n`
)

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return
    stopping = true
    void daemon.stop().finally(() => process.exit(0))
  })
}
