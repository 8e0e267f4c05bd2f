import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { bouncerIni, initCluster, splitLocalCluster, startLocalCluster } from '@parley/db-cluster'
import { type Command, stringFlag } from '../context.ts'
import { UsageError } from '../output.ts'

function partitionsFlag(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 1024 || (n & (n - 1)) !== 0)
    throw new UsageError('--partitions must be a power of two (1, 2, 4, ...)')
  return n
}

export const dbClusterUp: Command = {
  path: ['db', 'cluster', 'up'],
  usage: 'parley db cluster up --data DIR [--partitions N]',
  summary: 'runs a partitioned cluster on this machine: a PostgreSQL per partition, the PL/Proxy proxy, pgBouncer, PgQ',
  options: { partitions: { type: 'string' } },
  positionals: 0,
  async run(ctx) {
    const dir = stringFlag(ctx, 'data')
    if (dir === undefined) throw new UsageError('db cluster up needs --data DIR')
    const cluster = await startLocalCluster({ dir, partitions: partitionsFlag(stringFlag(ctx, 'partitions'), 4) })
    process.stdout.write(
      `${JSON.stringify({
        event: 'ready',
        url: cluster.url,
        partitions: cluster.spec.partitions.map((p) => p.url),
        proxy: cluster.spec.proxy,
        internal: cluster.spec.internal
      })}\n`
    )
    await ctx.waitForStop()
    await cluster.stop()
  }
}

export const dbClusterInit: Command = {
  path: ['db', 'cluster', 'init'],
  usage: 'parley db cluster init --partitions N --server URL [--server URL ...] [--proxy-server URL] --out DIR',
  summary: 'makes the partition, proxy and internal databases on existing PostgreSQL servers, and a pgBouncer configuration',
  options: {
    partitions: { type: 'string' },
    server: { type: 'string', multiple: true },
    'proxy-server': { type: 'string' },
    out: { type: 'string' }
  },
  positionals: 0,
  async run(ctx) {
    const out = stringFlag(ctx, 'out')
    const servers = (ctx.flags.server as string[] | undefined) ?? []
    if (out === undefined || servers.length === 0) throw new UsageError('db cluster init needs --server URL and --out DIR')
    const proxyServer = stringFlag(ctx, 'proxy-server')
    const spec = await initCluster({
      partitions: partitionsFlag(stringFlag(ctx, 'partitions'), 4),
      servers,
      ...(proxyServer === undefined ? {} : { proxyServer })
    })
    await mkdir(out, { recursive: true })
    await writeFile(join(out, 'cluster.json'), `${JSON.stringify({ spec, servers: {} }, null, 2)}\n`)
    await writeFile(join(out, 'pgbouncer.ini'), bouncerIni({ dir: out, proxyUrl: spec.proxy, port: 6432 }))
    await writeFile(join(out, 'userlist.txt'), '"postgres" ""\n')
    ctx.out.result(
      { ...spec, bouncerConfig: join(out, 'pgbouncer.ini') },
      `cluster of ${spec.partitions.length} partitions made; start pgBouncer with ${join(out, 'pgbouncer.ini')} and point the login server at postgres://postgres@127.0.0.1:6432/parley`
    )
  }
}

export const dbSplit: Command = {
  path: ['db', 'split'],
  usage: 'parley db split --data DIR',
  summary: 'doubles the partitions of a local cluster while it serves',
  options: {},
  positionals: 0,
  async run(ctx) {
    const dir = stringFlag(ctx, 'data')
    if (dir === undefined) throw new UsageError('db split needs --data DIR')
    const result = await splitLocalCluster({ dir, progress: (m) => ctx.out.info(m) })
    ctx.out.result(
      { partitions: result.spec.partitions.map((p) => p.url), moved: result.moved, pauseMs: result.pauseMs },
      `now ${result.spec.partitions.length} partitions; moved ${result.moved.join(', ')} accounts; traffic held ${result.pauseMs} ms`
    )
  }
}
