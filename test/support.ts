// What the tests that drive the real `parley` program share: running a
// command for a profile folder (with --json, expecting success), and waiting
// for what a command reports to come true.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { parley, type RunningRole, startRole } from '@parley/testing'

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

/** Who a profile folder is: [profile, user name]. */
export type Account = readonly [profile: string, name: string]

export interface SmallNetwork {
  /** The network file with the first supernode as seed (what daemons start with). */
  net: string
  supernodes: RunningRole[]
  daemons: Map<string, RunningRole>
  /** Starts (or starts again) the daemon of a profile. */
  daemon(profile: string): Promise<RunningRole>
  /** Stops every process, newest first. */
  stop(): Promise<void>
}

/**
 * A network on loopback as a user would start one by hand: a login server on
 * the embedded database, accounts registered and logged in (`devices`: more
 * profiles logging in to an account of `users`), supernodes (the first is the
 * seed), and nothing else running: `daemon(profile)` starts user daemons.
 */
export async function startSmallNetwork(
  dir: string,
  options: { password: string; supernodes: Account[]; users: Account[]; devices?: Account[] }
): Promise<SmallNetwork> {
  const roles: RunningRole[] = []
  const cli = cliIn(() => dir)
  const login = await startRole(['login-server', '--data', join(dir, 'login'), '--listen', '127.0.0.1:0'])
  roles.push(login)
  const net0 = join(dir, 'net0.json')
  assert.equal((await parley(['network', 'init', '--login', String(login.ready.url), '--out', net0])).code, 0)
  for (const [profile, name] of [...options.supernodes, ...options.users]) {
    await cli(profile, ['account', 'register', name, '--network', net0, '--password-stdin'], options.password)
    await cli(profile, ['login', name, '--password-stdin'], options.password)
  }
  for (const [profile, name] of options.devices ?? [])
    await cli(profile, ['login', name, '--network', net0, '--password-stdin'], options.password)
  const supernodes: RunningRole[] = []
  const net = join(dir, 'net.json')
  for (const [i, [profile]] of options.supernodes.entries()) {
    const sn = await startRole(['supernode', '--data', join(dir, profile), '--network', i === 0 ? net0 : net])
    roles.push(sn)
    supernodes.push(sn)
    if (i === 0) {
      const seed = (sn.ready.addrs as string[])[0] as string
      assert.equal((await parley(['network', 'init', '--login', String(login.ready.url), '--out', net, '--seed', seed])).code, 0)
    }
  }
  const daemons = new Map<string, RunningRole>()
  return {
    net,
    supernodes,
    daemons,
    async daemon(profile) {
      const r = await startRole(['daemon', '--data', join(dir, profile), '--network', net])
      roles.push(r)
      daemons.set(profile, r)
      return r
    },
    async stop() {
      for (const r of roles.reverse()) await r.stop().catch(() => null)
    }
  }
}

/** Two users become contacts from the command line: a request, and its acceptance seen on both sides. */
export async function befriend(dir: () => string, a: Account, b: Account): Promise<void> {
  const cli = cliIn(dir)
  const contacts = async (profile: string): Promise<Array<{ name: string; state: string }>> =>
    (await cli(profile, ['contacts', 'list'])).contacts as Array<{ name: string; state: string }>
  await cli(a[0], ['contacts', 'add', b[1]])
  await until(
    `${b[1]} sees ${a[1]}'s request`,
    () => contacts(b[0]),
    (c) => c.some((x) => x.name === a[1] && x.state === 'incoming')
  )
  await cli(b[0], ['contacts', 'accept', a[1]])
  await until(
    `${a[1]} sees the acceptance`,
    () => contacts(a[0]),
    (c) => c.some((x) => x.name === b[1] && x.state === 'accepted')
  )
}
