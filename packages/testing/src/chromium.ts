import { spawnSync } from 'node:child_process'

/** Debian's Chromium (never a browser downloaded at install time); a clear error when it is missing. */
export function chromiumPath(): string {
  const found = spawnSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' }).stdout.trim()
  if (found === '') throw new Error('Chromium is not installed, and the browser tests and benches need it: apt-get install -y chromium')
  return found
}

/** What Chromium is started with for tests and benches here: no sandbox, GPU, QUIC, first-run or background traffic. */
export const CHROMIUM_ARGS: readonly string[] = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
]
