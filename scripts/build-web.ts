// Builds the web client (packages/web → packages/web/dist) when its sources
// are newer than the last build, so that `npm start` always serves the
// client as it is in this checkout without paying for a build it does not
// need. `--force` builds whatever the dates say.
import { spawnSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const web = fileURLToPath(new URL('../packages/web/', import.meta.url))
const built = join(web, 'dist', 'index.html')

/** The newest modification time under `path` (a file or a folder). */
function newest(path: string): number {
  const info = statSync(path, { throwIfNoEntry: false })
  if (info === undefined) return 0
  if (!info.isDirectory()) return info.mtimeMs
  let max = info.mtimeMs
  for (const entry of readdirSync(path)) max = Math.max(max, newest(join(path, entry)))
  return max
}

const sources = ['src', 'index.html', 'vite.config.ts', 'package.json', 'public'].map((p) => newest(join(web, p)))
const builtAt = statSync(built, { throwIfNoEntry: false })?.mtimeMs ?? 0
if (process.argv.includes('--force') || builtAt < Math.max(...sources)) {
  process.stderr.write('building the web client…\n')
  const result = spawnSync('npm', ['run', 'build', '--silent', '-w', '@parley/web'], { stdio: ['ignore', 'ignore', 'inherit'] })
  if (result.status !== 0) {
    process.stderr.write('the web client did not build (see above)\n')
    process.exit(result.status ?? 1)
  }
}
