#!/usr/bin/env node
// Plain JavaScript so that an old Node gets a clear message instead of a syntax error.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(`parley: needs Node.js 22.18 or newer (this is ${process.versions.node}); see the README\n`)
  process.exit(1)
}
// Node keeps compiled code between runs (its own cache folder): a command starts in about half the time.
const { enableCompileCache } = await import('node:module')
enableCompileCache?.()
const { main } = await import('../src/main.ts')
process.exitCode = await main(process.argv.slice(2))
