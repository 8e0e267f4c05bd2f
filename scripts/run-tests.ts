// The test runner behind `npm test`: starts one throwaway PostgreSQL server for
// the whole run (test files each make their own database on it), runs every
// test file with node:test (the CPU-timed simulation first and alone, then the
// rest two at a time), and stops the server. Arguments select files.
//   npm test                              all tests
//   npm test -- packages/db/test/x.test.ts  some
import { spawn } from 'node:child_process'
import { globSync } from 'node:fs'
import { PG_URL_ENV, startPostgres, type TestPostgres } from '@parley/testing'

const DEFAULT_FILES = ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts']
const files = process.argv.slice(2)

let pg: TestPostgres | undefined
if (process.env[PG_URL_ENV] === undefined || process.env[PG_URL_ENV] === '') {
  pg = await startPostgres()
  process.stderr.write(`test PostgreSQL at ${pg.url}\n`)
}

/**
 * Suites that time the overlay inside one process (hundreds of nodes sharing the CPU) run first and alone:
 * next to another suite on a 2-core machine they would measure CPU starvation, not the protocol.
 */
const ALONE = ['packages/node/test/simulation.test.ts']

async function nodeTest(args: string[], concurrency: number): Promise<number> {
  return await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, ['--test', `--test-concurrency=${concurrency}`, '--test-timeout=300000', ...args], {
      stdio: 'inherit',
      env: { ...process.env, ...(pg === undefined ? {} : { [PG_URL_ENV]: pg.url }) }
    })
    child.on('close', (c) => {
      resolve(c ?? 1)
    })
    for (const signal of ['SIGINT', 'SIGTERM'] as const)
      process.on(signal, () => {
        child.kill(signal)
      })
  })
}

let code: number
if (files.length > 0) {
  code = await nodeTest(files, 2)
} else {
  const alone = await nodeTest(ALONE, 1)
  const rest = await nodeTest(
    DEFAULT_FILES.flatMap((pattern) => globSync(pattern)).filter((f) => !ALONE.includes(f) && !f.includes('node_modules')),
    2
  )
  code = alone !== 0 ? alone : rest
}
await pg?.stop()
process.exitCode = code
