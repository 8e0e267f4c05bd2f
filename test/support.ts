// What the tests that drive the real `parley` program share: running a
// command for a profile folder (with --json, expecting success), and waiting
// for what a command reports to come true.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { parley } from '@parley/testing'

/** `parley ARGS --data DIR/PROFILE --json` for the profiles in the folder `dir()` gives; exit 0 expected, the JSON back. */
export function cliIn(dir: () => string): (profile: string, args: string[], input?: string) => Promise<Record<string, unknown>> {
  return async (profile, args, input) => {
    const r = await parley([...args, '--data', join(dir(), profile), '--json'], input === undefined ? {} : { input })
    assert.equal(r.code, 0, `parley ${args.join(' ')} (${profile}): ${r.stderr}`)
    return JSON.parse(r.stdout) as Record<string, unknown>
  }
}

/** Runs `probe` until `ok` holds of what it returns (every 200 ms), or fails with the last answer. */
export async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last = await probe()
  while (!ok(last)) {
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(last)}`)
    await new Promise((r) => setTimeout(r, 200))
    last = await probe()
  }
  return last
}
