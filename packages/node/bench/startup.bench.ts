// Daemon start-up and resident memory (issue 3), with real `parley` processes on
// loopback TCP: SUPERNODES supernodes; then, for each of PROFILES profiles, the time
// from spawning `parley daemon` to its ready line (the daemon prints it once it is
// attached to its supernodes and has published its user record), cold (first start:
// empty host cache, the network file's seeds) and warm (later starts of the same
// profile: the host cache). After each start the bench checks, untimed, that the
// daemon is attached (local API /v1/net) and that its record is found (whois from
// another daemon). Then DAEMONS daemons stay up with the supernodes, idle, and the
// resident memory (VmRSS) of every process is read.
// Profiles and the network file are made with a test login key (no login server).
//   node packages/node/bench/startup.bench.ts
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { ms, percentile, progressFor, type RunningRole, startRole, testNetwork } from '@parley/testing'
import { makeProfile, procMemory, type ScriptProcess, sleep, startScript, writeNetworkFile } from './support.ts'

const progress = progressFor('startup')
const SUPERNODES = 5
/** Profiles started cold once and warm WARM_STARTS times each. */
const PROFILES = 6
const WARM_STARTS = 2
/** Daemons kept up together for the memory reading. */
const DAEMONS = 6
/** Idle time before the memory is read. */
const SETTLE_MS = 15_000
/** Warm starts through bench/daemon-host.ts (the same startDaemon), which says where the time goes. */
const BREAKDOWN_STARTS = 4
const ROOT = fileURLToPath(new URL('../../..', import.meta.url))
const HOST = fileURLToPath(new URL('./daemon-host.ts', import.meta.url))

const network = testNetwork()
const running = new Set<RunningRole>()
const dir = await mkdtemp(join(tmpdir(), 'parley-bench-startup-'))
process.once('SIGTERM', () => void cleanUp().finally(() => process.exit(130)))
process.once('SIGINT', () => void cleanUp().finally(() => process.exit(130)))

async function cleanUp(): Promise<void> {
  await Promise.all([...running].map(async (r) => await r.stop().catch(() => null)))
  running.clear()
  await rm(dir, { recursive: true, force: true })
}

async function start(args: string[]): Promise<{ role: RunningRole; readyMs: number }> {
  const started = performance.now()
  const role = await startRole(args)
  const readyMs = performance.now() - started
  running.add(role)
  return { role, readyMs }
}

async function stop(role: RunningRole): Promise<void> {
  await role.stop()
  running.delete(role)
}

/** GET on a daemon's local API with the token from its profile. */
async function api(profile: string, path: string): Promise<Record<string, unknown>> {
  const { url, token } = JSON.parse(await readFile(join(profile, 'api.json'), 'utf8')) as { url: string; token: string }
  const response = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(30_000) })
  return (await response.json()) as Record<string, unknown>
}

/** Wall time of a short command, ms (the best of 3, so that a busy moment does not count). */
async function timeCommand(file: string, args: string[]): Promise<number> {
  let best = Number.POSITIVE_INFINITY
  for (let i = 0; i < 3; i++) {
    const t = performance.now()
    await promisify(execFile)(file, args, { cwd: ROOT })
    best = Math.min(best, performance.now() - t)
  }
  return best
}

function summary(times: number[]): Record<string, number> {
  const sorted = [...times].sort((a, b) => a - b)
  return { count: sorted.length, minMs: ms(sorted[0] as number), p50Ms: ms(percentile(sorted, 50)), maxMs: ms(sorted.at(-1) as number) }
}

function memorySummary(rss: number[]): Record<string, number> {
  const sorted = [...rss].sort((a, b) => a - b)
  return { count: sorted.length, minMiB: sorted[0] as number, p50MiB: percentile(sorted, 50), maxMiB: sorted.at(-1) as number }
}

try {
  // Supernodes, each seeded with the ones before it.
  const superAddrs: string[] = []
  const supernodes: RunningRole[] = []
  for (let i = 0; i < SUPERNODES; i++) {
    const data = join(dir, `super${i}`)
    const file = await writeNetworkFile(join(dir, `net-super${i}.json`), network, [...superAddrs])
    await makeProfile(data, network, `bench_super_${i}`, file)
    const { role } = await start(['supernode', '--data', data, '--network', file])
    supernodes.push(role)
    superAddrs.push((role.ready.addrs as string[])[0] as string)
  }
  const netFile = await writeNetworkFile(join(dir, 'net.json'), network, superAddrs)
  progress(`${SUPERNODES} supernodes up`)

  // An observer daemon that looks the others up.
  const observerDir = join(dir, 'observer')
  await makeProfile(observerDir, network, 'bench_observer', netFile)
  await start(['daemon', '--data', observerDir, '--network', netFile])

  const cold: number[] = []
  const warm: number[] = []
  const checks = { starts: 0, attachedTo: [] as number[], recordFound: 0 }
  for (let p = 0; p < PROFILES; p++) {
    const data = join(dir, `user${p}`)
    const name = `bench_user_${p}`
    await makeProfile(data, network, name, netFile)
    for (let s = 0; s <= WARM_STARTS; s++) {
      const { role, readyMs } = await start(['daemon', '--data', data, '--network', netFile])
      ;(s === 0 ? cold : warm).push(readyMs)
      // Untimed checks: attached, and the record is there to be found.
      const net = await api(data, '/v1/net')
      const found = await api(observerDir, `/v1/whois/${name}`)
      checks.starts++
      checks.attachedTo.push((net.supernodes as unknown[]).length)
      if ((found.devices as Array<{ peerId: string }>).some((d) => d.peerId === role.ready.peerId)) checks.recordFound++
      progress(
        `${name} ${s === 0 ? 'cold' : 'warm'}: ready in ${Math.round(readyMs)} ms, ${(net.supernodes as unknown[]).length} supernodes`
      )
      await stop(role)
    }
  }

  // Where a warm start's time goes: the same startDaemon in a bench-side process that times its parts.
  progress('start-up breakdown')
  const breakdown: Array<{ readyMs: number; nodeBootMs: number; importMs: number; startDaemonMs: number }> = []
  for (let i = 0; i < BREAKDOWN_STARTS; i++) {
    const data = join(dir, `user${i % PROFILES}`)
    const started = performance.now()
    const host: ScriptProcess = await startScript(HOST, ['client', data, netFile])
    const readyMs = performance.now() - started
    const t = host.ready.timings as { nodeBootMs: number; importMs: number; startDaemonMs: number }
    breakdown.push({ readyMs: Math.round(readyMs), ...t })
    await host.stop()
  }

  // Baselines: a bare Node, and Node loading the node package (most of a start is loading code).
  progress('baselines')
  const nodeBareMs = await timeCommand(process.execPath, ['-e', '0'])
  const importMs = await timeCommand(process.execPath, ['--input-type=module', '-e', "await import('@parley/node')"])

  // Resident memory: DAEMONS daemons and the supernodes, attached and idle.
  progress(`${DAEMONS} daemons up for the memory reading`)
  const daemons: RunningRole[] = []
  for (let d = 0; d < DAEMONS; d++) {
    const data = join(dir, d < PROFILES ? `user${d}` : `extra${d}`)
    if (d >= PROFILES) await makeProfile(data, network, `bench_extra_${d}`, netFile)
    daemons.push((await start(['daemon', '--data', data, '--network', netFile])).role)
  }
  await sleep(SETTLE_MS)
  const daemonMemory = await Promise.all(daemons.map(async (r) => await procMemory(r.child.pid as number)))
  const superMemory = await Promise.all(supernodes.map(async (r) => await procMemory(r.child.pid as number)))

  process.stdout.write(
    `${JSON.stringify({
      bench: 'startup',
      transport: 'tcp loopback',
      supernodes: SUPERNODES,
      note: 'real parley processes; time from spawn to the ready line (attached and record published); other work on the 2 cores skews it',
      startup: {
        cold: summary(cold),
        warm: summary(warm),
        breakdown: {
          process: 'bench/daemon-host.ts (startDaemon, without the CLI)',
          starts: breakdown
        },
        nodeBareMs: ms(nodeBareMs),
        nodeImportParleyNodeMs: ms(importMs),
        checks: {
          starts: checks.starts,
          attachedToSupernodes: { min: Math.min(...checks.attachedTo), max: Math.max(...checks.attachedTo) },
          recordFound: checks.recordFound
        }
      },
      residentMemory: {
        settleMs: SETTLE_MS,
        daemon: memorySummary(daemonMemory.map((m) => m.rssMiB)),
        daemonPeakMiB: Math.max(...daemonMemory.map((m) => m.hwmMiB)),
        supernode: memorySummary(superMemory.map((m) => m.rssMiB)),
        supernodePeakMiB: Math.max(...superMemory.map((m) => m.hwmMiB)),
        supernodeConnectedDaemons: DAEMONS + 1
      }
    })}\n`
  )
} finally {
  progress('stopping')
  await cleanUp()
}
process.exit(0)
