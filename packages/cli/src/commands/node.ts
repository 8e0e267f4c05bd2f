import { join } from 'node:path'
import { readSecretFile } from '@parley/crypto/keyfile'
import { DEFAULT_PROFILE_DIR } from '@parley/node/profile'
import { isErrorCode, ParleyError } from '@parley/protocol'
import { type Command, type CommandContext, stringFlag } from '../context.ts'
import { UsageError } from '../output.ts'
import { CLIENT_VERSION } from '../version.ts'

function profileDir(ctx: CommandContext): string {
  return stringFlag(ctx, 'data') ?? DEFAULT_PROFILE_DIR
}

function parseApi(value: string | undefined): { host: string; port: number } | undefined {
  if (value === undefined) return undefined
  const m = /^([0-9.]+|localhost|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(value)
  if (m === null || Number(m[2]) > 65535) throw new UsageError('--api takes HOST:PORT, e.g. 127.0.0.1:7071')
  return { host: (m[1] as string).replace(/^\[|\]$/g, ''), port: Number(m[2]) }
}

async function runNode(ctx: CommandContext, role: 'client' | 'supernode'): Promise<void> {
  const { startDaemon } = await import('@parley/node')
  const listen = ctx.flags.listen as string[] | undefined
  const api = parseApi(stringFlag(ctx, 'api'))
  const network = stringFlag(ctx, 'network')
  const ranges = stringFlag(ctx, 'public-ranges')
  const promoteAfter = stringFlag(ctx, 'promote-after')
  if (promoteAfter !== undefined && !/^\d+$/.test(promoteAfter)) throw new UsageError('--promote-after takes seconds, e.g. 1800')
  const turnUrl = stringFlag(ctx, 'turn')
  const turnSecret = stringFlag(ctx, 'turn-secret')
  if ((turnUrl === undefined) !== (turnSecret === undefined)) throw new UsageError('--turn and --turn-secret go together')
  let turn: Awaited<ReturnType<typeof import('@parley/calls').loadTurnServer>> | undefined
  if (turnUrl !== undefined && turnSecret !== undefined) {
    const { loadTurnServer } = await import('@parley/calls')
    try {
      turn = await loadTurnServer({ url: turnUrl, secretFile: turnSecret })
    } catch (err) {
      throw new ParleyError('BAD_CONFIG', (err as Error).message)
    }
  }
  const daemon = await startDaemon({
    ...(turn === undefined ? {} : { turn }),
    ...(ctx.flags['relay-media'] === true ? { relayMediaOnly: true } : {}),
    ...(ctx.flags.echo === true ? { echo: true } : {}),
    ...(stringFlag(ctx, 'name-hint') === undefined ? {} : { nameHint: stringFlag(ctx, 'name-hint') as string }),
    clientVersion: CLIENT_VERSION,
    dataDir: profileDir(ctx),
    role,
    ...(ranges === undefined ? {} : { publicRanges: ranges.split(',').filter((r) => r !== '') }),
    ...(promoteAfter === undefined ? {} : { promoteAfterMs: Number(promoteAfter) * 1000 }),
    ...(ctx.flags['no-promote'] === true ? { mayPromote: false } : {}),
    ...(network === undefined ? {} : { networkFile: network }),
    ...(listen === undefined ? {} : { listen }),
    ...(api === undefined ? {} : { api })
  })
  process.stdout.write(
    `${JSON.stringify({ event: 'ready', role, peerId: daemon.node.peerId, addrs: daemon.node.addresses, api: daemon.api.url, web: daemon.api.web, signedIn: (await daemon.session()).signedIn })}\n`
  )
  if (role === 'client' && !ctx.flags.json && ctx.flags['stop-with-stdin'] !== true)
    process.stderr.write(`The web client: open ${daemon.api.web}\n`)
  // Under `parley up`: its stdin closes when it goes, however it goes.
  const parentGone = new Promise<void>((resolve) => {
    if (ctx.flags['stop-with-stdin'] !== true) return
    process.stdin.resume()
    process.stdin.once('end', () => resolve())
    process.stdin.once('close', () => resolve())
  })
  await Promise.race([ctx.waitForStop(), parentGone])
  // A stdin still read would keep the process alive once the daemon has stopped.
  if (ctx.flags['stop-with-stdin'] === true) process.stdin.destroy()
  await daemon.stop()
}

const nodeOptions = {
  listen: { type: 'string', multiple: true },
  api: { type: 'string' },
  'public-ranges': { type: 'string' },
  'promote-after': { type: 'string' },
  'no-promote': { type: 'boolean' },
  turn: { type: 'string' },
  'turn-secret': { type: 'string' },
  'relay-media': { type: 'boolean' },
  echo: { type: 'boolean' },
  'name-hint': { type: 'string' },
  'stop-with-stdin': { type: 'boolean' }
} as const

export const daemonCommand: Command = {
  path: ['daemon'],
  usage:
    'parley daemon --data DIR --network FILE [--listen MULTIADDR ...] [--api HOST:PORT] [--public-ranges CIDR,...] [--promote-after SECONDS | --no-promote] [--turn turn:HOST:PORT --turn-secret FILE] [--relay-media] [--echo]',
  summary: "runs this profile's node (client role) and its local API",
  options: nodeOptions,
  positionals: 0,
  async run(ctx) {
    await runNode(ctx, 'client')
  }
}

export const supernodeCommand: Command = {
  path: ['supernode'],
  usage:
    'parley supernode --data DIR --network FILE [--listen MULTIADDR ...] [--public-ranges CIDR,...] [--turn turn:HOST:PORT --turn-secret FILE]',
  summary: 'runs a supernode (a logged-in profile, as every peer)',
  options: nodeOptions,
  positionals: 0,
  async run(ctx) {
    await runNode(ctx, 'supernode')
  }
}

/** Calls the profile's running daemon (GET, or with a JSON body the method given). */
export async function callDaemon(
  ctx: CommandContext,
  path: string,
  request: { method?: 'POST' | 'PUT' | 'DELETE'; body?: object; timeoutMs?: number } = {}
): Promise<Record<string, unknown>> {
  const dir = profileDir(ctx)
  const file = await readSecretFile(join(dir, 'api.json'))
  if (file === undefined) throw new ParleyError('NO_DAEMON', `no daemon runs for ${dir}: start one with "parley daemon --data ${dir}"`)
  const { url, token } = JSON.parse(file.toString('utf8')) as { url: string; token: string }
  let response: Response
  try {
    response = await fetch(`${url}${path}`, {
      method: request.method ?? 'GET',
      headers: { authorization: `Bearer ${token}`, ...(request.body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
      signal: AbortSignal.timeout(request.timeoutMs ?? 30_000)
    })
  } catch {
    throw new ParleyError('NO_DAEMON', `the daemon of ${dir} does not answer at ${url}: is it running?`)
  }
  const body = (await response.json()) as Record<string, unknown> & { error?: { code: string; message: string } }
  if (!response.ok) {
    const code = body.error?.code
    throw new ParleyError(isErrorCode(code) ? code : 'INTERNAL', body.error?.message ?? `the daemon answered ${response.status}`)
  }
  return body
}

/** GETs bytes (a WAV file) from the profile's running daemon. */
export async function fetchDaemonBytes(ctx: CommandContext, path: string): Promise<Uint8Array> {
  const dir = profileDir(ctx)
  const file = await readSecretFile(join(dir, 'api.json'))
  if (file === undefined) throw new ParleyError('NO_DAEMON', `no daemon runs for ${dir}: start one with "parley daemon --data ${dir}"`)
  const { url, token } = JSON.parse(file.toString('utf8')) as { url: string; token: string }
  const response = await fetch(`${url}${path}`, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(30_000)
  }).catch(() => {
    throw new ParleyError('NO_DAEMON', `the daemon of ${dir} does not answer at ${url}: is it running?`)
  })
  if (!response.ok) {
    const body = (await response.json().catch(() => ({}))) as { error?: { code?: string; message?: string } }
    const code = body.error?.code
    throw new ParleyError(isErrorCode(code) ? code : 'INTERNAL', body.error?.message ?? `the daemon answered ${response.status}`)
  }
  return new Uint8Array(await response.arrayBuffer())
}

export const whoisCommand: Command = {
  path: ['whois'],
  usage: 'parley whois NAME',
  summary: 'finds a user over the overlay (not the login server)',
  options: {},
  positionals: 1,
  async run(ctx) {
    const name = ctx.positionals[0] as string
    const result = (await callDaemon(ctx, `/v1/whois/${encodeURIComponent(name)}`)) as {
      name: string
      devices: Array<{ peerId: string; presence: string }>
      ms: number
    }
    ctx.out.result(
      result,
      result.devices.length === 0
        ? `${name}: no device online (${result.ms} ms)`
        : `${result.name} (${result.ms} ms)\n${result.devices.map((d) => `  ${d.peerId}  ${d.presence}`).join('\n')}`
    )
  }
}

export const netCommand: Command = {
  path: ['net'],
  usage: 'parley net [NAME]',
  summary: "the node's view of the network; with NAME, how this node reaches that user (direct or relayed)",
  options: {},
  positionals: [0, 1],
  async run(ctx) {
    const name = ctx.positionals[0]
    if (name !== undefined) {
      const peer = (await callDaemon(ctx, `/v1/net/peer/${encodeURIComponent(name)}`)) as {
        name: string
        devices: Array<{ peerId: string; path: string; rttMs?: number; error?: string }>
      }
      ctx.out.result(
        peer,
        peer.devices.length === 0
          ? `${name}: no device online`
          : [
              peer.name,
              ...peer.devices.map(
                (d) =>
                  `  ${d.peerId}  ${d.path === 'direct' ? 'direct' : d.path === 'relayed' ? 'through a relay' : 'not connected'}${d.rttMs === undefined ? '' : `  ${d.rttMs} ms`}${d.error === undefined ? '' : `  (${d.error})`}`
              )
            ].join('\n')
      )
      return
    }
    const net = (await callDaemon(ctx, '/v1/net')) as {
      role: string
      reachability: string
      natClass: string
      relays: string[]
      supernodes: Array<{ peerId: string; latencyMs?: number }>
      hostCache: number
    }
    ctx.out.result(
      net,
      [
        `role: ${net.role}`,
        `reachability: ${net.reachability}`,
        `NAT: ${net.natClass}`,
        `supernodes: ${net.supernodes.length}`,
        ...net.supernodes.map((s) => `  ${s.peerId}${s.latencyMs === undefined ? '' : `  ${s.latencyMs} ms`}`),
        `relays: ${net.relays.length === 0 ? 'none' : net.relays.join(', ')}`,
        `host cache: ${net.hostCache}`
      ].join('\n')
    )
  }
}
