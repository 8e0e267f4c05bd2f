// The newcomer's first minute (issue 6), measured as they live it:
// - `npm start` to the printed address: cold (a fresh folder: accounts made,
//   databases created) and warm (the same folder again), RUNS times each;
//   the web client is built beforehand, so this is `parley up` itself (the
//   build, when sources changed, is timed once on its own);
// - the web client's bundle: each file of packages/web/dist, raw and gzip;
// - time to interactive on loopback, in Debian's Chromium through
//   playwright-core: from navigation (the printed address, token and all) to
//   the sign-in form accepting input, and the browser's own navigation timing.
//   node packages/cli/bench/web.bench.ts
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { CHROMIUM_ARGS, chromiumPath, ms, progressFor, timeSummary } from '@parley/testing'

const progress = progressFor('web')
const RUNS = 3
const PAGE_LOADS = 7
const ROOT = fileURLToPath(new URL('../../..', import.meta.url))
const DIST = join(ROOT, 'packages', 'web', 'dist')
const dir = await mkdtemp(join(tmpdir(), 'parley-bench-web-'))
const children = new Set<ChildProcess>()

async function cleanUp(): Promise<void> {
  for (const child of children) child.kill('SIGINT')
  await rm(dir, { recursive: true, force: true })
}
process.once('SIGTERM', () => void cleanUp().finally(() => process.exit(130)))
process.once('SIGINT', () => void cleanUp().finally(() => process.exit(130)))

/** `npm start -- --data DIR --port 0` until its ready line: the time, the line, and a way to stop it. */
async function npmStart(data: string): Promise<{ ms: number; ready: Record<string, unknown>; stop(): Promise<number | null> }> {
  const started = performance.now()
  const child = spawn('npm', ['start', '--silent', '--', '--data', data, '--port', '0', '--json'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true
  })
  children.add(child)
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    void exited.then((code) => reject(new Error(`npm start exited (${code}) before it was ready:\n${stderr}`)))
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        const parsed = JSON.parse(line) as Record<string, unknown>
        if (parsed.event === 'ready') resolve(parsed)
      } catch {
        // npm's own lines
      }
    })
  })
  const elapsed = performance.now() - started
  return {
    ms: elapsed,
    ready,
    async stop() {
      // npm runs `parley up` in a shell: the whole process group gets the Ctrl-C, as from a terminal.
      process.kill(-(child.pid as number), 'SIGINT')
      const code = await exited
      children.delete(child)
      return code
    }
  }
}

async function bundle(): Promise<{
  files: Array<{ file: string; bytes: number; gzipBytes: number }>
  totalBytes: number
  totalGzipBytes: number
}> {
  const files: Array<{ file: string; bytes: number; gzipBytes: number }> = []
  const walk = async (at: string): Promise<void> => {
    for (const entry of await readdir(at, { withFileTypes: true })) {
      const path = join(at, entry.name)
      if (entry.isDirectory()) await walk(path)
      else {
        const bytes = await readFile(path)
        files.push({ file: path.slice(DIST.length + 1), bytes: bytes.length, gzipBytes: gzipSync(bytes, { level: 9 }).length })
      }
    }
  }
  await walk(DIST)
  files.sort((a, b) => b.gzipBytes - a.gzipBytes)
  return {
    files,
    totalBytes: files.reduce((n, f) => n + f.bytes, 0),
    totalGzipBytes: files.reduce((n, f) => n + f.gzipBytes, 0)
  }
}

async function timeToInteractive(web: string): Promise<object> {
  const { chromium } = createRequire(import.meta.url)('playwright-core') as typeof import('playwright-core')
  const browser = await chromium.launch({
    executablePath: chromiumPath(),
    args: [...CHROMIUM_ARGS]
  })
  const interactive: number[] = []
  const domContentLoaded: number[] = []
  const load: number[] = []
  try {
    for (let i = 0; i < PAGE_LOADS; i++) {
      // A fresh context each time: no cache, no cookie (the first visit of a newcomer).
      const context = await browser.newContext()
      const page = await context.newPage()
      const started = performance.now()
      await page.goto(web, { waitUntil: 'commit' })
      // Interactive: the sign-in (or sign-up) form takes typing.
      const field = page.locator('input:not([type=hidden])').first()
      await field.waitFor({ state: 'visible', timeout: 30_000 })
      await field.fill('x')
      interactive.push(performance.now() - started)
      const timing = await page.evaluate(() => {
        const [nav] = performance.getEntriesByType('navigation') as PerformanceNavigationTiming[]
        return { dcl: nav?.domContentLoadedEventEnd ?? 0, load: nav?.loadEventEnd ?? 0 }
      })
      domContentLoaded.push(timing.dcl)
      load.push(timing.load)
      await context.close()
    }
  } finally {
    await browser.close()
  }
  return {
    loads: PAGE_LOADS,
    interactive: timeSummary(interactive),
    domContentLoadedMs: timeSummary(domContentLoaded),
    loadMs: timeSummary(load)
  }
}

try {
  progress('building the web client')
  const buildStarted = performance.now()
  const build = spawnSync('node', [join(ROOT, 'scripts', 'build-web.ts'), '--force'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] })
  if (build.status !== 0 || !existsSync(join(DIST, 'index.html'))) throw new Error('the web client did not build')
  const buildMs = performance.now() - buildStarted
  const cold: number[] = []
  const warm: number[] = []
  let web = ''
  for (let i = 0; i < RUNS; i++) {
    const data = join(dir, `up-${i}`)
    progress(`npm start, cold ${i + 1}/${RUNS}`)
    const first = await npmStart(data)
    cold.push(first.ms)
    // (npm itself dies of the Ctrl-C; `parley up` stops everything and exits 0, as the tests check.)
    await first.stop()
    progress(`npm start, warm ${i + 1}/${RUNS}`)
    const again = await npmStart(data)
    warm.push(again.ms)
    if (i < RUNS - 1) await again.stop()
    else {
      web = String(again.ready.web)
      progress('time to interactive')
      const tti = await timeToInteractive(web).finally(() => again.stop())
      const sizes = await bundle()
      process.stdout.write(
        `${JSON.stringify({
          bench: 'web',
          npmStartToAddress: { cold: timeSummary(cold), warm: timeSummary(warm), runs: RUNS },
          webBuildMs: ms(buildMs),
          bundle: { totalBytes: sizes.totalBytes, totalGzipBytes: sizes.totalGzipBytes, files: sizes.files },
          timeToInteractive: tti
        })}\n`
      )
    }
  }
} finally {
  await cleanUp()
}
