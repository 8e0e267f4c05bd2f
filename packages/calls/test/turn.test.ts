import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { inspect } from 'node:util'
import fc from 'fast-check'
import {
  loadTurnServer,
  parseTurnServerSetting,
  parseTurnUrl,
  readTurnSecret,
  TURN_MAX_TTL_SECONDS,
  TurnSecret,
  TurnSecretError,
  TurnSettingError,
  turnCredentials,
  turnUrls
} from '../src/turn.ts'

const SECRET = 'north-wind-4f1c9a2e7b'

/** HMAC-SHA1 by another implementation: the openssl program. */
function opensslHmacBase64(secret: string, message: string): string {
  const mac = execFileSync('openssl', ['dgst', '-sha1', '-hmac', secret, '-binary'], { input: message })
  return mac.toString('base64')
}

describe('turnCredentials', () => {
  test('username is "<expiry seconds>:<user>", credential base64(HMAC-SHA1(secret, username))', () => {
    const c = turnCredentials({ secret: SECRET, user: 'alice.turn', ttlSeconds: 600, now: 1_700_000_000_000 })
    assert.equal(c.username, '1700000600:alice.turn')
    // Computed once with Python's hmac module and with `openssl dgst -sha1 -hmac ... -binary | base64`.
    assert.equal(c.credential, '62v5uxim7wh+RbOvzOpG+TOBTSA=')
    assert.equal(c.ttl, 600)
    assert.equal(c.expiresAt, 1_700_000_600_000)
  })

  test('agrees with openssl for random secrets, users and times', () => {
    for (let i = 0; i < 5; i++) {
      const secret = randomBytes(16 + i * 7).toString('base64url')
      const user = `user${randomBytes(3).toString('hex')}`
      const now = Date.now() + i * 123_457
      const c = turnCredentials({ secret, user, ttlSeconds: 1 + i * 3000, now })
      assert.equal(c.credential, opensslHmacBase64(secret, c.username))
    }
  })

  test('a TurnSecret and its text give the same credential', () => {
    const init = { user: 'alice.turn', ttlSeconds: 60, now: 1_700_000_000_000 }
    assert.deepEqual(turnCredentials({ ...init, secret: new TurnSecret(SECRET) }), turnCredentials({ ...init, secret: SECRET }))
  })

  test('the expiry counts from the current second (ms dropped), defaulting to the clock', () => {
    const c = turnCredentials({ secret: SECRET, user: 'alice.turn', ttlSeconds: 10, now: 1_700_000_000_999 })
    assert.equal(c.username, '1700000010:alice.turn')
    const before = Math.floor(Date.now() / 1000)
    const live = turnCredentials({ secret: SECRET, user: 'alice.turn', ttlSeconds: 10 })
    const expiry = Number(live.username.split(':')[0])
    assert.ok(expiry >= before + 10 && expiry <= Math.floor(Date.now() / 1000) + 10)
    assert.equal(live.expiresAt, expiry * 1000)
  })

  test('refuses what is not a Parley name, a bad lifetime or a weak secret', () => {
    const ok = { secret: SECRET, user: 'alice.turn', ttlSeconds: 600 }
    for (const user of ['', 'al', 'alice:turn', '1alice', 'alice turn', 'x'.repeat(33)]) {
      assert.throws(() => turnCredentials({ ...ok, user }), RangeError, user)
    }
    for (const ttlSeconds of [0, -1, 1.5, TURN_MAX_TTL_SECONDS + 1, Number.NaN]) {
      assert.throws(() => turnCredentials({ ...ok, ttlSeconds }), RangeError, String(ttlSeconds))
    }
    assert.doesNotThrow(() => turnCredentials({ ...ok, ttlSeconds: TURN_MAX_TTL_SECONDS }))
    assert.throws(() => turnCredentials({ ...ok, now: -1 }), RangeError)
    assert.throws(() => turnCredentials({ ...ok, secret: 'short' }), TurnSecretError)
    assert.throws(() => turnCredentials({ ...ok, secret: 'has a space in the middle' }), TurnSecretError)
  })
})

describe('TurnSecret', () => {
  test('never shows its value in strings, JSON or util.inspect', () => {
    const secret = new TurnSecret(SECRET)
    const holder = { turn: { secret } }
    for (const text of [String(secret), `${secret}`, JSON.stringify(holder), inspect(holder, { depth: 10 }), inspect(secret)]) {
      assert.ok(!text.includes(SECRET), text)
      assert.ok(text.includes('[TurnSecret]'), text)
    }
    assert.equal(secret.reveal(), SECRET)
  })

  test('error messages do not repeat a refused secret', () => {
    for (const bad of ['tooshort', 'with space inside it, long enough', `tab\there-and-more-than-16`]) {
      assert.throws(
        () => new TurnSecret(bad),
        (err: Error) => err instanceof TurnSecretError && !err.message.includes(bad)
      )
    }
  })
})

describe('turnUrls', () => {
  test('UDP then TCP, IPv6 in brackets', () => {
    assert.deepEqual(turnUrls('127.0.0.1', 3478), ['turn:127.0.0.1:3478?transport=udp', 'turn:127.0.0.1:3478?transport=tcp'])
    assert.deepEqual(turnUrls('turn.example.org', 443), [
      'turn:turn.example.org:443?transport=udp',
      'turn:turn.example.org:443?transport=tcp'
    ])
    assert.deepEqual(turnUrls('2001:db8::1', 3478), ['turn:[2001:db8::1]:3478?transport=udp', 'turn:[2001:db8::1]:3478?transport=tcp'])
  })

  test('refuses bad hosts and ports', () => {
    for (const port of [0, -1, 65536, 1.5, Number.NaN]) assert.throws(() => turnUrls('127.0.0.1', port), RangeError)
    for (const host of ['', 'a b', 'bad_host', '300.1.1.1', '[::1]', 'x:y', '-lead.example.org']) {
      assert.throws(() => turnUrls(host, 3478), RangeError, host)
    }
  })
})

describe('parseTurnUrl', () => {
  test('accepts turn:HOST[:PORT] with a DNS name, IPv4 or bracketed IPv6', () => {
    const cases: Array<[string, { host: string; port: number }]> = [
      ['turn:turn.example.org:3478', { host: 'turn.example.org', port: 3478 }],
      ['turn:turn.example.org', { host: 'turn.example.org', port: 3478 }],
      ['turn:localhost:1', { host: 'localhost', port: 1 }],
      ['turn:192.0.2.7:65535', { host: '192.0.2.7', port: 65535 }],
      ['turn:[2001:db8::1]:3479', { host: '2001:db8::1', port: 3479 }],
      ['turn:[::1]', { host: '::1', port: 3478 }],
      ['TURN:Turn.Example.org:5000', { host: 'Turn.Example.org', port: 5000 }],
      ['  turn:turn.example.org:3478\n', { host: 'turn.example.org', port: 3478 }]
    ]
    for (const [text, expected] of cases) assert.deepEqual(parseTurnUrl(text), expected, text)
  })

  test('refuses everything else, saying why', () => {
    const cases: Array<[string, RegExp]> = [
      ['turns:turn.example.org:5349', /TLS \(turns:\) is not supported/],
      ['stun:stun.example.org:3478', /STUN server/],
      ['http://turn.example.org', /expected turn:HOST:PORT/],
      ['turn.example.org:3478', /expected turn:HOST:PORT/],
      ['', /expected turn:HOST:PORT/],
      ['turn://turn.example.org:3478', /no "\/\/"/],
      ['turn:turn.example.org:3478?transport=udp', /transport/],
      ['turn:alice@turn.example.org:3478', /user name/],
      ['turn:turn.example.org:3478/x', /no path/],
      ['turn:2001:db8::1:3478', /IPv6 address in brackets/],
      ['turn:[2001:db8::1:3478', /closing "\]"/],
      ['turn:[192.0.2.1]:3478', /not an IPv6 address/],
      ['turn:[::1]3478', /expected ":PORT"/],
      ['turn:', /host is missing/],
      ['turn::3478', /host is missing/],
      ['turn:300.1.1.1:3478', /not a valid IPv4 address/],
      ['turn:bad_host.example.org', /not a valid host name/],
      ['turn:turn.example.org:0', /port must be a number from 1 to 65535, not "0"/],
      ['turn:turn.example.org:65536', /port must be/],
      ['turn:turn.example.org:http', /port must be/],
      ['turn:turn.example.org:', /port must be/],
      ['turn:turn.example.org:003478', /port must be/]
    ]
    for (const [text, message] of cases) {
      assert.throws(
        () => parseTurnUrl(text),
        (err: Error) => err instanceof TurnSettingError && message.test(err.message),
        text
      )
    }
  })

  test('any text either parses or throws TurnSettingError', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string().map((s) => `turn:${s}`)
        ),
        (text) => {
          try {
            const { host, port } = parseTurnUrl(text)
            assert.ok(host.length > 0 && Number.isInteger(port) && port >= 1 && port <= 65535)
            assert.equal(turnUrls(host, port).length, 2)
          } catch (err) {
            assert.ok(err instanceof TurnSettingError, String(err))
          }
        }
      ),
      { numRuns: 2000 }
    )
  })
})

describe('parseTurnServerSetting', () => {
  test('takes { url, secretFile }', () => {
    assert.deepEqual(parseTurnServerSetting({ url: 'turn:turn.example.org', secretFile: '/etc/parley/turn-secret' }), {
      url: 'turn:turn.example.org',
      secretFile: '/etc/parley/turn-secret',
      host: 'turn.example.org',
      port: 3478
    })
  })

  test('says what is missing or unknown', () => {
    const cases: Array<[unknown, RegExp]> = [
      [undefined, /expected \{ url, secretFile \}/],
      ['turn:x', /expected \{ url, secretFile \}/],
      [{ secretFile: '/s' }, /url is missing/],
      [{ url: ' ', secretFile: '/s' }, /url is missing/],
      [{ url: 'turn:x.example.org' }, /secretFile is missing/],
      [{ url: 'turn:x.example.org', secretFile: '/s', secret: 'inline' }, /unknown field "secret"/],
      [{ url: 'turns:x.example.org', secretFile: '/s' }, /not supported/]
    ]
    for (const [value, message] of cases) {
      assert.throws(
        () => parseTurnServerSetting(value),
        (err: Error) => err instanceof TurnSettingError && message.test(err.message),
        JSON.stringify(value)
      )
    }
  })
})

describe('readTurnSecret and loadTurnServer', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-turn-test-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  async function secretFile(name: string, content: string, mode: number): Promise<string> {
    const path = join(dir, name)
    await writeFile(path, content)
    await chmod(path, mode)
    return path
  }

  test('reads an owner-only file (0600 or 0400), one line, newline dropped', async () => {
    const a = await readTurnSecret(await secretFile('a', `${SECRET}\n`, 0o600))
    assert.equal(a.reveal(), SECRET)
    const b = await readTurnSecret(await secretFile('b', `${SECRET}\r\n`, 0o400))
    assert.equal(b.reveal(), SECRET)
    const c = await readTurnSecret(await secretFile('c', SECRET, 0o600))
    assert.equal(c.reveal(), SECRET)
  })

  test('refuses a file others may read or write, telling the operator to chmod 600, without the secret', async () => {
    for (const mode of [0o644, 0o640, 0o604, 0o620, 0o602, 0o666]) {
      const path = await secretFile(`open-${mode.toString(8)}`, `${SECRET}\n`, mode)
      await assert.rejects(
        readTurnSecret(path),
        (err: Error) =>
          err instanceof TurnSecretError &&
          err.message.includes(`mode 0${mode.toString(8)}`) &&
          err.message.includes(`chmod 600 ${path}`) &&
          !err.message.includes(SECRET)
      )
    }
  })

  test('refuses a missing file, a folder, and content that is not one usable secret', async () => {
    const cases: Array<[string, RegExp]> = [
      [join(dir, 'missing'), /does not exist/],
      [await secretFile('empty', '', 0o600), /is empty/],
      [await secretFile('newline-only', '\n', 0o600), /is empty/],
      [await secretFile('two-lines', `${SECRET}\n${SECRET}\n`, 0o600), /one line/],
      [await secretFile('short', 'tooshort\n', 0o600), /too short/],
      [await secretFile('spaces', 'a secret with spaces in it\n', 0o600), /printable ASCII without spaces/],
      [await secretFile('large', `${'x'.repeat(5000)}\n`, 0o600), /too large/]
    ]
    const folder = join(dir, 'folder')
    await mkdir(folder, { mode: 0o700 })
    cases.push([folder, /not a regular file/])
    for (const [path, message] of cases) {
      await assert.rejects(
        readTurnSecret(path),
        (err: Error) => err instanceof TurnSecretError && message.test(err.message) && !err.message.includes(SECRET),
        path
      )
    }
  })

  test('honours an aborted signal', async () => {
    const path = await secretFile('aborted', `${SECRET}\n`, 0o600)
    await assert.rejects(readTurnSecret(path, { signal: AbortSignal.abort() }), { name: 'AbortError' })
  })

  test('loadTurnServer: host, port, the URLs to advertise and the secret, which its printout hides', async () => {
    const path = await secretFile('server', `${SECRET}\n`, 0o600)
    const server = await loadTurnServer({ url: 'turn:turn.example.org:3479', secretFile: path })
    assert.equal(server.host, 'turn.example.org')
    assert.equal(server.port, 3479)
    assert.deepEqual(server.urls, ['turn:turn.example.org:3479?transport=udp', 'turn:turn.example.org:3479?transport=tcp'])
    assert.equal(server.secret.reveal(), SECRET)
    assert.ok(!inspect(server).includes(SECRET))
    assert.ok(!JSON.stringify(server).includes(SECRET))
    await assert.rejects(loadTurnServer({ url: 'turn:turn.example.org', secretFile: join(dir, 'missing') }), TurnSecretError)
  })
})
