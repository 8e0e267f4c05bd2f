import { peerIdOf } from '@parley/crypto'
import { LoginClient } from '@parley/login-client'
import { checkCredential, Profile } from '@parley/node/profile'
import { ParleyError } from '@parley/protocol'
import { type Command, type CommandContext, stringFlag } from '../context.ts'
import { readPassword } from '../password.ts'
import { CLIENT_VERSION } from '../version.ts'
import { callDaemon } from './node.ts'

const userOptions = { 'password-stdin': { type: 'boolean' } } as const

function profileOf(ctx: CommandContext): Profile {
  return new Profile(stringFlag(ctx, 'data'))
}

/** The profile's logged-in session: device key, credential and login client. */
async function session(
  ctx: CommandContext
): Promise<{ profile: Profile; client: LoginClient; device: Awaited<ReturnType<Profile['deviceKey']>>; credential: string; name: string }> {
  const profile = profileOf(ctx)
  const network = await profile.network(stringFlag(ctx, 'network'))
  const grant = await profile.credential()
  const device = await profile.existingDeviceKey()
  if (grant === undefined || device === undefined) throw new ParleyError('NOT_LOGGED_IN', 'not logged in: run "parley login NAME"')
  return { profile, client: new LoginClient({ url: network.login }), device, credential: grant.credential, name: grant.name }
}

export const accountRegister: Command = {
  path: ['account', 'register'],
  usage: 'parley account register NAME [--email E] [--display-name TEXT] --password-stdin',
  summary: "creates an account on the network's login server",
  options: { ...userOptions, email: { type: 'string' }, 'display-name': { type: 'string' } },
  positionals: 1,
  async run(ctx) {
    const name = ctx.positionals[0] as string
    const network = await profileOf(ctx).network(stringFlag(ctx, 'network'))
    const password = await readPassword(ctx.stdin, ctx.flags['password-stdin'] === true, `Password for ${name}: `, true)
    const email = stringFlag(ctx, 'email')
    const displayName = stringFlag(ctx, 'display-name')
    const account = await new LoginClient({ url: network.login }).register({
      name,
      password,
      ...(email === undefined ? {} : { email }),
      ...(displayName === undefined ? {} : { displayName })
    })
    ctx.out.result(account, `registered ${account.name}`)
  }
}

export const login: Command = {
  path: ['login'],
  usage: 'parley login NAME --password-stdin',
  summary: "logs this profile's device in and keeps the credential",
  options: { ...userOptions },
  positionals: 1,
  async run(ctx) {
    const name = ctx.positionals[0] as string
    const profile = profileOf(ctx)
    const network = await profile.network(stringFlag(ctx, 'network'))
    const password = await readPassword(ctx.stdin, ctx.flags['password-stdin'] === true, `Password for ${name}: `)
    // A daemon running for this profile signs in itself, and goes online at once.
    const running = await throughDaemon(ctx, '/v1/account/login', { name, password })
    if (running !== undefined) {
      ctx.out.result(
        { name: running.name, peerId: running.peerId, expiresAt: running.expiresAt, through: 'daemon' },
        `logged in as ${running.name} until ${running.expiresAt} (the daemon is online)`
      )
      return
    }
    const firstRun = await profile.isNew()
    const device = await profile.deviceKey()
    const client = new LoginClient({ url: network.login })
    const grant = await client.login({ name, password, device, clientVersion: CLIENT_VERSION })
    // Never trust what the server sent blindly: the credential must verify with the network's keys, for this device.
    const verdict = checkCredential(network, grant.credential, device)
    if (!verdict.ok)
      throw new ParleyError(verdict.reason, `the login server's credential does not verify with the network file: ${verdict.message}`)
    await profile.saveCredential(grant)
    await versionCheck(ctx, client, firstRun)
    ctx.out.result(
      { name: grant.name, peerId: peerIdOf(device.publicKey), expiresAt: grant.expiresAt, renewAt: grant.renewAt },
      `logged in as ${grant.name} until ${grant.expiresAt}`
    )
  }
}

/** A running daemon's answer to a session route (its `session`); undefined when no daemon runs for the profile. */
async function throughDaemon(ctx: CommandContext, path: string, body: object): Promise<Record<string, unknown> | undefined> {
  try {
    return (await callDaemon(ctx, path, { method: 'POST', body })).session as Record<string, unknown>
  } catch (err) {
    if (err instanceof ParleyError && err.code === 'NO_DAEMON') return undefined
    throw err
  }
}

/** The report's start-up request: "installed" on first run, then "is there a new version?". Best effort. */
async function versionCheck(ctx: CommandContext, client: LoginClient, firstRun: boolean): Promise<void> {
  try {
    const v = await client.version(CLIENT_VERSION, firstRun ? 'installed' : 'startup', { signal: AbortSignal.timeout(3_000) })
    if (v.updateRequired) ctx.out.info(`this Parley (${CLIENT_VERSION}) is older than the network accepts (${v.minimum}): please update`)
    else if (v.updateAvailable) ctx.out.info(`Parley ${v.latest} is available (this is ${CLIENT_VERSION})`)
  } catch {
    // The check must never stop a login.
  }
}

export const renew: Command = {
  path: ['renew'],
  usage: 'parley renew',
  summary: "renews this device's credential now (the daemon does it at half-life)",
  options: {},
  positionals: 0,
  async run(ctx) {
    const s = await session(ctx)
    const network = await s.profile.network()
    const grant = await s.client.renew({ device: s.device, credential: s.credential })
    const verdict = checkCredential(network, grant.credential, s.device)
    if (!verdict.ok) throw new ParleyError(verdict.reason, `the renewed credential does not verify: ${verdict.message}`)
    await s.profile.saveCredential(grant)
    ctx.out.result(
      { name: grant.name, expiresAt: grant.expiresAt, renewAt: grant.renewAt },
      `renewed ${grant.name} until ${grant.expiresAt}`
    )
  }
}

export const logout: Command = {
  path: ['logout'],
  usage: 'parley logout',
  summary: 'goes offline and discards the credential',
  options: {},
  positionals: 0,
  async run(ctx) {
    const profile = profileOf(ctx)
    const grant = await profile.credential()
    if (grant === undefined) {
      ctx.out.result({ ok: true, wasLoggedIn: false }, 'not logged in')
      return
    }
    const running = await throughDaemon(ctx, '/v1/account/logout', {})
    if (running !== undefined) {
      ctx.out.result({ ok: true, wasLoggedIn: true, through: 'daemon' }, `logged out ${grant.name} (the daemon is offline)`)
      return
    }
    const s = await session(ctx)
    let told = true
    try {
      await s.client.logout({ device: s.device, credential: s.credential })
    } catch (err) {
      // Logging out locally must work offline too; the credential then simply expires.
      if (!(err instanceof ParleyError) || err.code !== 'NETWORK') throw err
      told = false
      ctx.out.info(`could not tell the login server (${err.message}); the credential is discarded here and expires by itself`)
    }
    await profile.forgetCredential()
    ctx.out.result({ ok: true, wasLoggedIn: true, serverTold: told }, `logged out ${grant.name}`)
  }
}

export const whoami: Command = {
  path: ['whoami'],
  usage: 'parley whoami',
  summary: "this profile's identity and state",
  options: {},
  positionals: 0,
  async run(ctx) {
    const profile = profileOf(ctx)
    const device = await profile.existingDeviceKey()
    const grant = await profile.credential()
    const peerId = device === undefined ? null : peerIdOf(device.publicKey)
    if (grant === undefined || device === undefined) {
      ctx.out.result({ name: null, peerId, online: false, expiresAt: null }, `not logged in${peerId === null ? '' : ` (device ${peerId})`}`)
      return
    }
    const network = await profile.network(stringFlag(ctx, 'network'))
    const verdict = checkCredential(network, grant.credential, device)
    const online = verdict.ok
    ctx.out.result(
      {
        name: grant.name,
        peerId,
        online,
        expiresAt: grant.expiresAt,
        renewAt: grant.renewAt,
        login: network.login,
        ...(verdict.ok ? {} : { problem: verdict.reason })
      },
      `${grant.name} on device ${peerId}, ${online ? `credential valid until ${grant.expiresAt}` : `credential not valid (${verdict.ok ? '' : verdict.message})`}`
    )
  }
}

export const search: Command = {
  path: ['search'],
  usage: 'parley search TEXT [--limit N]',
  summary: 'searches the directory (on the login server)',
  options: { limit: { type: 'string' } },
  positionals: 1,
  async run(ctx) {
    const s = await session(ctx)
    const limitFlag = stringFlag(ctx, 'limit')
    const limit = limitFlag === undefined ? undefined : Number(limitFlag)
    const { results } = await s.client.search(
      ctx.positionals[0] as string,
      { device: s.device, credential: s.credential },
      limit === undefined || !Number.isInteger(limit) ? {} : { limit }
    )
    ctx.out.result(
      { results },
      results.length === 0
        ? 'no one found'
        : results.map((r) => `${r.name}${r.displayName === r.name ? '' : `  (${r.displayName})`}`).join('\n')
    )
  }
}
