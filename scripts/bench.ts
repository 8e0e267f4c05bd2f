// The benchmark runner behind `npm run bench`: runs each bench file as its own
// process, one after another (each prints one JSON object on stdout, progress
// on stderr), and prints one JSON summary with the machine it ran on.
// Arguments select benches; benchmarks report numbers and assert nothing on timing.
//   npm run bench                          all of them
//   npm run bench -- credentials login     some
import { execFileSync, spawn } from 'node:child_process'
import { availableParallelism, cpus, freemem, loadavg, release, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'

const BENCHES = {
  credentials: 'packages/crypto/bench/credentials.bench.ts',
  procedures: 'packages/db/bench/procedures.bench.ts',
  login: 'packages/login-server/bench/login.bench.ts',
  pgq: 'packages/db-cluster/bench/pgq.bench.ts',
  lookup: 'packages/node/bench/lookup.bench.ts',
  cluster: 'packages/db-cluster/bench/cluster.bench.ts',
  connections: 'packages/node/bench/connections.bench.ts',
  startup: 'packages/node/bench/startup.bench.ts',
  'loopback-lookup': 'packages/node/bench/loopback-lookup.bench.ts',
  chat: 'packages/node/bench/chat.bench.ts',
  mailbox: 'packages/node/bench/mailbox.bench.ts',
  search: 'packages/node/bench/search.bench.ts',
  floor: 'packages/calls/bench/floor.bench.ts',
  calls: 'packages/node/bench/calls.bench.ts',
  files: 'packages/node/bench/files.bench.ts',
  web: 'packages/cli/bench/web.bench.ts'
} as const
type BenchName = keyof typeof BENCHES

const ROOT = fileURLToPath(new URL('..', import.meta.url))
/** Far more than a bench takes (well under a minute each); a hung bench is killed. */
const TIMEOUT_MS = 5 * 60 * 1000
/**
 * Benches that take longer: connections grows a supernode to 5,000 connections, a second time when the first stops
 * short (10 to 25 minutes on 2 busy cores);
 * chat waits for thousands of queued messages to drain (about 4 to 5 minutes); search stores a million chat lines;
 * files moves 1 GiB several times (Parley, a raw libp2p stream, scp) and gives the relayed transfer 90 s.
 */
const TIMEOUTS: Partial<Record<BenchName, number>> = {
  connections: 45 * 60 * 1000,
  chat: 20 * 60 * 1000,
  search: 45 * 60 * 1000,
  files: 30 * 60 * 1000
}

function isBenchName(name: string): name is BenchName {
  return Object.hasOwn(BENCHES, name)
}

const args = process.argv.slice(2)
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(`usage: npm run bench [-- ${Object.keys(BENCHES).join(' | ')} ...]\n`)
  process.exit(0)
}
const unknown = args.filter((a) => !isBenchName(a))
if (unknown.length > 0) {
  process.stderr.write(`unknown bench ${unknown.join(', ')}: choose from ${Object.keys(BENCHES).join(', ')}\n`)
  process.exit(2)
}
const selected: BenchName[] = args.length > 0 ? [...new Set(args.filter(isBenchName))] : (Object.keys(BENCHES) as BenchName[])

function gitCommit(): string | null {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] })
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] })
    return `${commit.toString().trim()}${dirty.length > 0 ? '+changes' : ''}`
  } catch {
    return null
  }
}

const load = (): number[] => loadavg().map((n) => Number(n.toFixed(2)))
const cpuList = cpus()
const machine = {
  cpus: cpuList.length,
  availableParallelism: availableParallelism(),
  cpuModel: cpuList[0]?.model ?? null,
  memoryMiB: Math.round(totalmem() / 2 ** 20),
  freeMemoryMiB: Math.round(freemem() / 2 ** 20),
  platform: process.platform,
  arch: process.arch,
  kernel: release(),
  node: process.version,
  nodeOpenssl: process.versions.openssl,
  v8: process.versions.v8,
  commit: gitCommit(),
  startedAt: new Date().toISOString(),
  /** 1, 5 and 15 minute load averages: other work on the machine skews every number. */
  loadAverageAtStart: load(),
  loadAverageAtEnd: [] as number[]
}

interface ChildOutcome {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  seconds: number
}

let running: ReturnType<typeof spawn> | undefined
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    // Let the bench clean up (temporary folders, PostgreSQL) before this exits.
    if (running !== undefined && running.exitCode === null) running.kill(signal)
    else process.exit(130)
  })
}

async function runBench(file: string, timeoutMs: number): Promise<ChildOutcome> {
  const start = performance.now()
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
    running = child
    let stdout = ''
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk
    })
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs)
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      running = undefined
      resolve({ code, signal, stdout, seconds: Number(((performance.now() - start) / 1000).toFixed(1)) })
    })
  })
}

const summary: Record<string, unknown> = { machine }
let failed = false
for (const name of selected) {
  const file = BENCHES[name]
  process.stderr.write(`== ${name}: node ${file}\n`)
  let outcome: ChildOutcome
  try {
    outcome = await runBench(file, TIMEOUTS[name] ?? TIMEOUT_MS)
  } catch (err) {
    summary[name] = { error: `could not run ${file}: ${(err as Error).message}` }
    failed = true
    continue
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(outcome.stdout)
  } catch {
    parsed = undefined
  }
  if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
    summary[name] = { ...parsed, wallSeconds: outcome.seconds, ...(outcome.code === 0 ? {} : { exitCode: outcome.code }) }
  } else {
    summary[name] = {
      error: 'the bench did not print one JSON object on stdout',
      exitCode: outcome.code,
      signal: outcome.signal,
      stdout: outcome.stdout.slice(0, 2_000)
    }
  }
  if (outcome.code !== 0) failed = true
  process.stderr.write(
    `== ${name}: ${outcome.code === 0 ? 'done' : `failed (${outcome.signal ?? `exit ${outcome.code}`})`} in ${outcome.seconds} s\n`
  )
}
machine.loadAverageAtEnd = load()

process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`)
if (failed) process.exitCode = 1
