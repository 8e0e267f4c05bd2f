// The test runner behind `npm test`: starts one throwaway PostgreSQL server for
// the whole run (test files each make their own database on it), runs every
// test file with node:test, and stops the server. Arguments select files.
//   npm test                              all tests
//   npm test -- packages/db/test/x.test.ts  some
import { spawn } from 'node:child_process'
import { PG_URL_ENV, startPostgres, type TestPostgres } from '@parley/testing'

const DEFAULT_FILES = ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts']
const files = process.argv.slice(2)

let pg: TestPostgres | undefined
if (process.env[PG_URL_ENV] === undefined || process.env[PG_URL_ENV] === '') {
  pg = await startPostgres()
  process.stderr.write(`test PostgreSQL at ${pg.url}\n`)
}

const code = await new Promise<number>((resolve) => {
  const child = spawn(
    process.execPath,
    ['--test', '--test-concurrency=2', '--test-timeout=300000', ...(files.length > 0 ? files : DEFAULT_FILES)],
    {
      stdio: 'inherit',
      env: { ...process.env, ...(pg === undefined ? {} : { [PG_URL_ENV]: pg.url }) }
    }
  )
  child.on('close', (c) => {
    resolve(c ?? 1)
  })
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.on(signal, () => {
      child.kill(signal)
    })
})
await pg?.stop()
process.exitCode = code
