// `parley up`: a whole network on one machine from one folder, as a newcomer
// starts it: the login server, a seed supernode, the echo test contact and a
// daemon per user serving the web client; signed up through the local API,
// stopped with Ctrl-C, started again with everything kept.
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parley, type RunningRole, startRole } from '@parley/testing'
import { until } from './support.ts'

const PASSWORD = 'up test password 7'

/** A browser's view of one daemon: the printed address once, then the cookie it set. */
class WebSession {
  readonly web: string
  readonly base: string
  #cookie = ''

  constructor(web: string) {
    this.web = web
    this.base = new URL(web).origin
  }

  async open(): Promise<void> {
    const r = await fetch(this.web, { redirect: 'manual' })
    assert.equal(r.status, 303, 'the printed address sets the cookie and sends the browser on')
    this.#cookie = (r.headers.get('set-cookie') ?? '').split(';')[0] as string
    const page = await fetch(`${this.base}/`)
    assert.equal(page.status, 200)
    assert.match(await page.text(), /<html/i, 'the daemon serves the web client')
  }

  async call(path: string, body?: object): Promise<{ status: number; json: Record<string, unknown> }> {
    const r = await fetch(`${this.base}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { cookie: this.#cookie, origin: this.base, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    return { status: r.status, json: (await r.json()) as Record<string, unknown> }
  }
}

describe('parley up', () => {
  let dir: string
  let up: RunningRole | undefined

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-up-'))
  })
  after(async () => {
    await up?.stop().catch(() => null)
    await rm(dir, { recursive: true, force: true })
  })

  it('starts a network whose users sign up in their web client and reach the echo contact; Ctrl-C stops it all; a second run keeps everything', async () => {
    up = await startRole(['up', '--data', join(dir, 'net'), '--users', 'alice_up,bob_up'], { timeoutMs: 120_000 })
    const ready = up.ready
    assert.equal(ready.echo, 'echo123')
    assert.match(String(ready.login), /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.match(String(ready.seed), /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//)
    const webs = ready.webs as Record<string, string>
    assert.deepEqual(Object.keys(webs), ['alice_up', 'bob_up'])
    assert.equal(ready.web, webs.alice_up)
    for (const url of Object.values(webs)) assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{43}$/)
    // Secrets stay the owner's.
    assert.equal((await stat(join(dir, 'net', 'secrets.json'))).mode & 0o077, 0)

    const alice = new WebSession(webs.alice_up as string)
    const bob = new WebSession(webs.bob_up as string)
    await alice.open()
    await bob.open()
    // Signed out at first, with the name `--users` gave as the suggestion; nothing else answers yet.
    const before = await alice.call('/v1/session')
    assert.equal(before.status, 200)
    assert.deepEqual(
      {
        signedIn: (before.json.session as Record<string, unknown>).signedIn,
        suggested: (before.json.session as Record<string, unknown>).suggestedName
      },
      { signedIn: false, suggested: 'alice_up' }
    )
    const refused = await alice.call('/v1/contacts')
    assert.equal(refused.status, 401)
    assert.equal((refused.json.error as { code: string }).code, 'NOT_LOGGED_IN')
    // A weak password gets a clear refusal from the login server, through the daemon.
    const weak = await alice.call('/v1/account/register', { name: 'alice_up', password: 'short' })
    assert.equal((weak.json.error as { code: string }).code, 'WEAK_PASSWORD')
    for (const [session, name] of [
      [alice, 'alice_up'],
      [bob, 'bob_up']
    ] as const) {
      const r = await session.call('/v1/account/register', { name, password: PASSWORD, displayName: name.toUpperCase() })
      assert.equal(r.status, 200, JSON.stringify(r.json))
      assert.equal((r.json.session as { signedIn: boolean }).signedIn, true)
    }
    // The directory, searched through the daemon (a signed request to the login server for this device).
    const found = await alice.call('/v1/directory?q=bob')
    assert.equal(found.status, 200, JSON.stringify(found.json))
    assert.ok((found.json.results as Array<{ name: string }>).some((r) => r.name === 'bob_up'))
    // Bob may not sign in as alice on his profile.
    const wrongUser = await bob.call('/v1/account/login', { name: 'alice_up', password: PASSWORD })
    assert.equal((wrongUser.json.error as { code: string }).code, 'NOT_ALLOWED')

    // The echo contact accepts alice and answers her line.
    assert.equal((await alice.call('/v1/contacts', { name: 'echo123' })).status, 200)
    await until(
      'echo123 accepts alice',
      async () => (await alice.call('/v1/contacts')).json.contacts as Array<{ name: string; state: string }>,
      (c) => c.some((x) => x.name === 'echo123' && x.state === 'accepted'),
      30_000
    )
    const sent = await alice.call('/v1/messages', { to: 'echo123', text: 'hello, echo' })
    assert.equal(sent.status, 200, JSON.stringify(sent.json))
    await until(
      'the echo answers',
      async () => ((await alice.call('/v1/history/echo123')).json.messages ?? []) as Array<{ from: string; text: string }>,
      (m) => m.some((x) => x.from === 'echo123' && x.text === 'echo: hello, echo'),
      30_000
    )
    // Alice and bob find each other over the overlay.
    assert.equal((await alice.call('/v1/contacts', { name: 'bob_up' })).status, 200)
    await until(
      'bob sees the request',
      async () => (await bob.call('/v1/contacts')).json.contacts as Array<{ name: string; state: string }>,
      (c) => c.some((x) => x.name === 'alice_up' && x.state === 'incoming'),
      30_000
    )

    // Ctrl-C: everything stops, exit 0, nothing left behind.
    assert.equal(await up.stop('SIGINT'), 0, up.stderr())
    up = undefined
    for (const url of Object.values(webs)) await assert.rejects(fetch(url), 'the daemons are gone')

    // Again on the same folder: the same addresses, alice still signed in with her contacts.
    up = await startRole(['up', '--data', join(dir, 'net'), '--users', 'alice_up,bob_up'], { timeoutMs: 120_000 })
    const again = up.ready.webs as Record<string, string>
    assert.equal(new URL(again.alice_up as string).origin, alice.base, 'the same address as the first run')
    const alice2 = new WebSession(again.alice_up as string)
    await alice2.open()
    const session = (await alice2.call('/v1/session')).json.session as { signedIn: boolean; name: string; displayName: string }
    assert.deepEqual(
      { signedIn: session.signedIn, name: session.name, displayName: session.displayName },
      { signedIn: true, name: 'alice_up', displayName: 'ALICE_UP' }
    )
    const contacts = (await alice2.call('/v1/contacts')).json.contacts as Array<{ name: string; state: string }>
    assert.ok(contacts.some((c) => c.name === 'echo123' && c.state === 'accepted'))
    assert.ok(contacts.some((c) => c.name === 'bob_up' && c.state === 'requested'))
    // The old token no longer opens the client: the printed address is new each run.
    const stale = await fetch(webs.alice_up as string, { redirect: 'manual' })
    assert.equal(stale.status, 401)
    // Signing out takes the device off the network and out of the directory; the profile remembers whose it is.
    const bob2 = new WebSession(again.bob_up as string)
    await bob2.open()
    const alicesDevices = async (): Promise<number> =>
      ((await bob2.call('/v1/whois/alice_up')).json.devices as unknown[] | undefined)?.length ?? -1
    assert.equal(await alicesDevices(), 1, 'bob finds alice signed in')
    const out = await alice2.call('/v1/account/logout', {})
    assert.equal((out.json.session as { signedIn: boolean }).signedIn, false)
    assert.equal((await alice2.call('/v1/contacts')).status, 401)
    assert.equal(await alicesDevices(), 0, 'a signed-out device is withdrawn from the directory at once')
    const owner = JSON.parse(await readFile(join(dir, 'net', 'users', 'alice_up', 'owner.json'), 'utf8')) as { name: string }
    assert.equal(owner.name, 'alice_up')
    // The command line's login goes through the running daemon, which comes online at once (and so does its logout).
    const profile = join(dir, 'net', 'users', 'alice_up')
    const login = await parley(['login', 'alice_up', '--data', profile, '--password-stdin', '--json'], { input: PASSWORD })
    assert.equal(login.code, 0, login.stderr)
    assert.equal((JSON.parse(login.stdout) as { through: string }).through, 'daemon')
    assert.equal((await alice2.call('/v1/contacts')).status, 200)
    assert.equal(await alicesDevices(), 1, 'signed in again: in the directory again')
    const logout = await parley(['logout', '--data', profile, '--json'])
    assert.equal(logout.code, 0, logout.stderr)
    assert.equal((await alice2.call('/v1/contacts')).status, 401)
    assert.equal(await alicesDevices(), 0)
    assert.equal(await up.stop('SIGINT'), 0, up.stderr())
    up = undefined
  })
})
