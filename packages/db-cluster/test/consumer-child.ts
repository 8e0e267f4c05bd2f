// A PgQ consumer in its own process, for the kill test in consumer.test.ts.
//   node consumer-child.ts '{"partitions":[{"name":"p0","url":"postgres://..."}],"internalUrl":"postgres://...",
//                            "pause":{"partition":"p0","afterBatches":2}}'
// Writes JSON lines on stdout: {"event":"ready"}, {"event":"batch",...} for
// each batch recorded (after the internal commit, before pgq.finish_batch),
// and, with "pause", {"event":"paused",...} when it stops right there on the
// given partition's n-th batch, waiting to be killed. SIGTERM stops it cleanly.
import { type BatchRecorded, EventConsumer, type PartitionSource } from '../src/consumer.ts'

interface ChildConfig {
  partitions: PartitionSource[]
  internalUrl: string
  pollMs?: number
  pause?: { partition: string; afterBatches: number }
}

const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig
const out = (line: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(line)}\n`)
}

let seen = 0
const consumer = new EventConsumer({
  partitions: config.partitions,
  internalUrl: config.internalUrl,
  pollMs: config.pollMs ?? 50,
  retryMs: 200,
  logger: {
    info() {},
    warn(fields, message) {
      process.stderr.write(`${JSON.stringify({ msg: message, ...fields })}\n`)
    }
  },
  async onBatchRecorded(batch: BatchRecorded) {
    out({ event: 'batch', ...batch })
    if (config.pause !== undefined && batch.partition === config.pause.partition && ++seen >= config.pause.afterBatches) {
      out({ event: 'paused', ...batch })
      await new Promise(() => {}) // committed in the internal database, never finished on the partition
    }
  }
})

process.on('SIGTERM', () => {
  void consumer.stop().then(() => process.exit(0))
})
consumer.start()
out({ event: 'ready', pid: process.pid })
