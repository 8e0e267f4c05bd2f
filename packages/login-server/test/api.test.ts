import assert from 'node:assert/strict'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  CredentialVerifier,
  credentialToString,
  decodeCredential,
  generateKeyPair,
  type KeyPair,
  keyIdOf,
  proveRequest,
  signCredential
} from '@parley/crypto'
import { type LocalCluster, startLocalCluster } from '@parley/db-cluster'
import { LoginClient } from '@parley/login-client'
import { type ErrorCode, ParleyError, toBase64Url } from '@parley/protocol'
import { freshDatabase, type TestPostgres, tempDir, testPostgres } from '@parley/testing'
import fc from 'fast-check'
import { KeyRing, type RunningLoginServer, startLoginServer } from '../src/index.ts'

const PASSWORD = 'correct horse battery'

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<ParleyError> {
  try {
    await promise
  } catch (err) {
    assert.ok(err instanceof ParleyError, `expected a ParleyError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    return err
  }
  assert.fail(`expected ${code}, but it succeeded`)
}

function apiSuite(mode: string, dbUrl: () => Promise<string | undefined>): void {
  describe(`login server API on ${mode}`, () => {
    let dir: string
    let server: RunningLoginServer
    let client: LoginClient
    let verifier: CredentialVerifier
    let n = 0
    const uniqueName = (prefix = 'user'): string => `${prefix}_${process.pid}_${++n}`

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'parley-ls-'))
      const url = await dbUrl()
      server = await startLoginServer({
        dataDir: dir,
        listen: '127.0.0.1:0',
        logLevel: 'warn',
        ...(url === undefined ? {} : { dbUrl: url }),
        // Small throttling numbers so the test sees them; the mechanism is the production one.
        config: {
          throttle: {
            freeFailuresPerName: 3,
            freeFailuresPerAddress: 1000,
            baseDelayMs: 60_000,
            maxDelayMs: 3_600_000,
            windowMs: 3_600_000
          },
          rates: {
            register: { perMinute: 6000, burst: 1000 },
            search: { perMinute: 6000, burst: 1000 },
            renew: { perMinute: 6000, burst: 1000 }
          }
        }
      })
      client = new LoginClient({ url: server.url })
      verifier = new CredentialVerifier(server.keys)
    })
    after(async () => {
      await server?.close()
      await rm(dir, { recursive: true, force: true })
    })

    async function loggedIn(prefix = 'user'): Promise<{ name: string; device: KeyPair; credential: string }> {
      const name = uniqueName(prefix)
      await client.register({ name, password: PASSWORD })
      const device = generateKeyPair()
      const grant = await client.login({ name, password: PASSWORD, device })
      return { name, device, credential: grant.credential }
    }

    it('registers, logs in and issues a credential that verifies offline for this device', async () => {
      const name = uniqueName('Alice')
      const account = await client.register({ name, password: PASSWORD, email: 'alice@example.org', displayName: 'Alice A.' })
      assert.deepEqual(account, { name, displayName: 'Alice A.' })
      const device = generateKeyPair()
      const grant = await client.login({ name: name.toUpperCase(), password: PASSWORD, device })
      assert.equal(grant.name, name, 'the canonical spelling, whatever was typed')
      const verdict = verifier.verify(grant.credential, { deviceKey: device.publicKey })
      assert.ok(verdict.ok, verdict.ok ? '' : verdict.message)
      const lifetime = Date.parse(grant.expiresAt) - Date.parse(grant.issuedAt)
      assert.equal(lifetime, 24 * 3600 * 1000, 'default lifetime 24 h')
      assert.equal(Date.parse(grant.renewAt) - Date.parse(grant.issuedAt), lifetime / 2, 'renewal at half-life')
      assert.equal(verdict.credential.keyId, server.keys.find((k) => k.active)?.id)
    })

    it('refuses bad names, e-mails, weak passwords and taken names with their codes', async () => {
      await expectCode(client.register({ name: '1starts_with_digit', password: PASSWORD }), 'INVALID_NAME')
      await expectCode(client.register({ name: 'short', password: PASSWORD }), 'INVALID_NAME')
      await expectCode(client.register({ name: 'a'.repeat(33), password: PASSWORD }), 'INVALID_NAME')
      await expectCode(client.register({ name: 'has space', password: PASSWORD }), 'INVALID_NAME')
      await expectCode(client.register({ name: 'ünicode_name', password: PASSWORD }), 'INVALID_NAME')
      await expectCode(client.register({ name: uniqueName(), password: PASSWORD, email: 'not-an-email' }), 'INVALID_EMAIL')
      await expectCode(client.register({ name: uniqueName(), password: 'short' }), 'WEAK_PASSWORD')
      await expectCode(client.register({ name: uniqueName(), password: 'aaaaaaaaaaaaaaaa' }), 'WEAK_PASSWORD')
      await expectCode(client.register({ name: uniqueName(), password: 'password123' }), 'WEAK_PASSWORD')
      const name = uniqueName('weak_user')
      await expectCode(client.register({ name, password: `${name}!xyz` }), 'WEAK_PASSWORD')
      await expectCode(
        client.register({ name: uniqueName(), password: 'x'.repeat(60) + 'abcdefghijklmnopqrstuvwxyz'.repeat(3) }),
        'WEAK_PASSWORD'
      )
      // All the classic name characters are allowed.
      assert.equal((await client.register({ name: `Ok.name,-_${n++}`, password: PASSWORD })).name.startsWith('Ok.name'), true)
      const taken = uniqueName('taken')
      await client.register({ name: taken, password: PASSWORD })
      await expectCode(client.register({ name: taken.toUpperCase(), password: PASSWORD }), 'NAME_TAKEN')
    })

    it('answers an unknown name exactly as a wrong password', async () => {
      const name = uniqueName('known')
      await client.register({ name, password: PASSWORD })
      const device = generateKeyPair()
      const wrong = await expectCode(client.login({ name, password: 'wrong password!', device }), 'INVALID_CREDENTIALS')
      const unknown = await expectCode(
        client.login({ name: uniqueName('unknown'), password: 'wrong password!', device }),
        'INVALID_CREDENTIALS'
      )
      assert.equal(wrong.message, unknown.message)
    })

    it('throttles a name after its free failures, with growing delays, for the right password too', async () => {
      const name = uniqueName('target')
      await client.register({ name, password: PASSWORD })
      const device = generateKeyPair()
      for (let i = 0; i < 3; i++) await expectCode(client.login({ name, password: `guess number ${i}`, device }), 'INVALID_CREDENTIALS')
      const first = await expectCode(client.login({ name, password: PASSWORD, device }), 'THROTTLED')
      assert.ok(first.retryAfterMs !== undefined && first.retryAfterMs > 50_000 && first.retryAfterMs <= 60_000, String(first.retryAfterMs))
      // Unknown names are throttled the same way: throttling does not tell which names exist.
      const ghost = uniqueName('ghost')
      for (let i = 0; i < 3; i++) await expectCode(client.login({ name: ghost, password: `guess ${i}`, device }), 'INVALID_CREDENTIALS')
      await expectCode(client.login({ name: ghost, password: 'guess x', device }), 'THROTTLED')
      // Parallel guesses cannot outrun the counter.
      const racer = uniqueName('racer')
      await client.register({ name: racer, password: PASSWORD })
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) => client.login({ name: racer, password: `parallel guess ${i}`, device }))
      )
      const codes = results.map((r) => (r.status === 'rejected' ? (r.reason as ParleyError).code : 'OK'))
      assert.equal(codes.filter((c) => c === 'INVALID_CREDENTIALS').length, 3, codes.join())
      assert.equal(codes.filter((c) => c === 'THROTTLED').length, 5, codes.join())
    })

    it('renews only with proof of the device key and the current credential, once', async () => {
      const { device, credential } = await loggedIn('renewer')
      const renewed = await client.renew({ device, credential })
      const before = decodeCredential(credential)
      const after = decodeCredential(renewed.credential)
      assert.equal(after.serial, before.serial + 1n)
      assert.ok(verifier.verify(renewed.credential, { deviceKey: device.publicKey }).ok)
      await expectCode(client.renew({ device, credential }), 'STALE_CREDENTIAL')
      // Someone who copied the credential but has not the device key.
      await expectCode(client.renew({ device: generateKeyPair(), credential: renewed.credential }), 'DEVICE_KEY_MISMATCH')
      // A credential tampered with, or signed by a key the server does not have.
      const bytes = decodeCredential(renewed.credential).bytes
      bytes[10] = (bytes[10] as number) ^ 1
      await expectCode(client.renew({ device, credential: toBase64Url(bytes) }), 'BAD_SIGNATURE')
      const rogue = generateKeyPair()
      const forged = signCredential({ ...after, keyId: keyIdOf(rogue.publicKey) }, rogue.handle)
      await expectCode(client.renew({ device, credential: credentialToString(forged) }), 'UNKNOWN_KEY_ID')
      await expectCode(client.renew({ device, credential: 'AAAA' }), 'MALFORMED')
      // The genuine newest one still works.
      await client.renew({ device, credential: renewed.credential })
    })

    it('refuses a replayed or stale signed request', async () => {
      const { device, credential } = await loggedIn('replayer')
      const header = proveRequest({ method: 'POST', path: '/v1/sessions/renew', body: '{}' }, credential, device)
      const send = async (authorization: string): Promise<{ status: number; code: string }> => {
        const res = await fetch(`${server.url}/v1/sessions/renew`, {
          method: 'POST',
          headers: { authorization, 'content-type': 'application/json' },
          body: '{}'
        })
        const body = (await res.json()) as { error?: { code: string } }
        return { status: res.status, code: body.error?.code ?? 'OK' }
      }
      assert.deepEqual(await send(header), { status: 200, code: 'OK' })
      assert.deepEqual(await send(header), { status: 401, code: 'STALE_CREDENTIAL' }, 'the same request again')
      const old = proveRequest({ method: 'POST', path: '/v1/sessions/renew', body: '{}' }, credential, device, Date.now() - 10 * 60_000)
      assert.deepEqual(await send(old), { status: 401, code: 'STALE_REQUEST' })
      // Signed for another path or body.
      const other = proveRequest({ method: 'POST', path: '/v1/sessions/renew', body: '{"x":1}' }, credential, device)
      assert.equal((await send(other)).code, 'DEVICE_KEY_MISMATCH')
      assert.deepEqual(await send('Bearer abc'), { status: 401, code: 'UNAUTHENTICATED' })
    })

    it('logs out: the credential can no longer be renewed', async () => {
      const { device, credential } = await loggedIn('leaver')
      assert.deepEqual(await client.logout({ device, credential }), { ok: true, wasLoggedIn: true })
      assert.deepEqual(await client.logout({ device, credential }), { ok: true, wasLoggedIn: false })
      await expectCode(client.renew({ device, credential }), 'LOGGED_OUT')
    })

    it('searches the directory for signed-in users only', async () => {
      const session = await loggedIn('searcher')
      const target = uniqueName('Findme')
      await client.register({ name: target, password: PASSWORD, displayName: 'Hidden Treasure' })
      const byName = await client.search(target.slice(0, 10).toLowerCase(), session)
      assert.ok(byName.results.some((r) => r.name === target))
      const byDisplay = await client.search('treas', session)
      assert.deepEqual(
        byDisplay.results.filter((r) => r.name === target),
        [{ name: target, displayName: 'Hidden Treasure' }]
      )
      const res = await fetch(`${server.url}/v1/directory?q=find`)
      assert.equal(res.status, 401)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'UNAUTHENTICATED')
    })

    it('publishes its keys and answers the version check', async () => {
      const { keys } = await client.keys()
      assert.equal(keys.length, 1)
      assert.equal(keys[0]?.id, keyIdOf(Buffer.from(keys[0]?.publicKey ?? '', 'base64url')))
      assert.deepEqual(await client.version('0.0.1', 'installed'), {
        latest: '0.1.0',
        minimum: '0.1.0',
        updateAvailable: true,
        updateRequired: true
      })
      assert.deepEqual(await client.version('0.1.0', 'startup'), {
        latest: '0.1.0',
        minimum: '0.1.0',
        updateAvailable: false,
        updateRequired: false
      })
      assert.equal((await fetch(`${server.url}/v1/version?current=x.y`)).status, 400)
    })

    it('keeps the signing keys readable by the owner only', async () => {
      assert.equal((await stat(join(dir, 'login-keys.json'))).mode & 0o077, 0)
      assert.equal((await stat(dir)).mode & 0o077, 0)
    })

    describe('bad input: a clear 4xx with a code, never a crash', () => {
      const raw = async (
        method: string,
        path: string,
        body?: string,
        headers: Record<string, string> = {}
      ): Promise<{ status: number; code: string }> => {
        const res = await fetch(`${server.url}${path}`, {
          method,
          headers: { 'content-type': 'application/json', ...headers },
          ...(body === undefined ? {} : { body })
        })
        const parsed = (await res.json()) as { error?: { code: string; message: string } }
        if (res.status >= 400) assert.equal(typeof parsed.error?.message, 'string')
        return { status: res.status, code: parsed.error?.code ?? 'OK' }
      }
      const cases: Array<[string, string, string, string | undefined, number, string]> = [
        ['malformed JSON', 'POST', '/v1/accounts', '{"name": ', 400, 'INVALID_REQUEST'],
        ['JSON that is not an object', 'POST', '/v1/accounts', '[1,2,3]', 400, 'INVALID_REQUEST'],
        ['a wrong type', 'POST', '/v1/accounts', '{"name": 12345678, "password": "correct horse battery"}', 400, 'INVALID_REQUEST'],
        ['a missing field', 'POST', '/v1/sessions', '{"name": "someone_1", "password": "x"}', 400, 'INVALID_REQUEST'],
        [
          'an unknown field',
          'POST',
          '/v1/accounts',
          '{"name": "someone_1", "password": "correct horse battery", "admin": true}',
          400,
          'INVALID_REQUEST'
        ],
        [
          'an oversized field',
          'POST',
          '/v1/accounts',
          JSON.stringify({ name: 'someone_1', password: 'p'.repeat(5000) }),
          400,
          'INVALID_REQUEST'
        ],
        [
          'an oversized body',
          'POST',
          '/v1/accounts',
          JSON.stringify({ name: 'someone_1', password: 'x', pad: 'y'.repeat(20_000) }),
          413,
          'PAYLOAD_TOO_LARGE'
        ],
        [
          'a device key of the wrong size',
          'POST',
          '/v1/sessions',
          JSON.stringify({ name: 'someone_1', password: 'x', deviceKey: 'AAAA' }),
          400,
          'INVALID_REQUEST'
        ],
        ['an unknown route', 'GET', '/v1/nothing', undefined, 404, 'NOT_FOUND'],
        ['an empty search', 'GET', '/v1/directory?q=', undefined, 400, 'INVALID_REQUEST'],
        ['a version check without the version', 'GET', '/v1/version', undefined, 400, 'INVALID_REQUEST'],
        ['a wrong method', 'PUT', '/v1/keys', '{}', 405, 'METHOD_NOT_ALLOWED'],
        ['a wrong method on a route with a parameter', 'POST', '/v1/accounts/someone_1', '{}', 405, 'METHOD_NOT_ALLOWED'],
        [
          'a blank display name',
          'POST',
          '/v1/accounts',
          JSON.stringify({ name: 'blank_display', password: 'correct horse battery', displayName: '   ' }),
          400,
          'INVALID_REQUEST'
        ]
      ]
      for (const [what, method, path, body, status, code] of cases) {
        it(what, async () => {
          assert.deepEqual(await raw(method, path, body), { status, code })
        })
      }
      it('a body that is not JSON', async () => {
        assert.deepEqual(await raw('POST', '/v1/accounts', 'name=x', { 'content-type': 'application/x-www-form-urlencoded' }), {
          status: 415,
          code: 'UNSUPPORTED_MEDIA_TYPE'
        })
        // Not even text/plain: a signed request's body must be the JSON the signature covers.
        assert.deepEqual(await raw('POST', '/v1/sessions/renew', 'anything', { 'content-type': 'text/plain' }), {
          status: 415,
          code: 'UNSUPPORTED_MEDIA_TYPE'
        })
      })
      it('a search for nothing but spaces', async () => {
        const session = await loggedIn('blank_searcher')
        await expectCode(client.search('   ', session), 'INVALID_REQUEST')
      })
      it('a client older than the network accepts', async () => {
        const name = uniqueName('old_client')
        await client.register({ name, password: PASSWORD })
        const err = await expectCode(
          client.login({ name, password: PASSWORD, device: generateKeyPair(), clientVersion: '0.0.9' }),
          'UPGRADE_REQUIRED'
        )
        assert.match(err.message, /0\.1\.0 or newer/)
      })
      it('random bodies and headers on every route never get a 5xx', async () => {
        const routes: Array<[string, string]> = [
          ['POST', '/v1/accounts'],
          ['POST', '/v1/sessions'],
          ['POST', '/v1/sessions/renew'],
          ['DELETE', '/v1/sessions'],
          ['GET', '/v1/directory?q=ab']
        ]
        await fc.assert(
          fc.asyncProperty(
            fc.constantFrom(...routes),
            fc.oneof(fc.json(), fc.string(), fc.record({ name: fc.string(), password: fc.string(), deviceKey: fc.string() })),
            fc.oneof(
              fc.constant(undefined),
              fc.string(),
              fc.stringMatching(/^Parley cred=[A-Za-z0-9_-]{0,300}, ts=\d{1,14}, sig=[A-Za-z0-9_-]{0,90}$/)
            ),
            async ([method, path], body, authorization) => {
              const text = typeof body === 'string' ? body : JSON.stringify(body)
              const headers: Record<string, string> = { 'content-type': 'application/json' }
              if (authorization !== undefined) headers.authorization = authorization
              const res = await fetch(`${server.url}${path}`, { method, headers, ...(method === 'GET' ? {} : { body: text }) })
              assert.ok(res.status < 500, `${method} ${path} ${text} -> ${res.status}`)
              await res.arrayBuffer()
            }
          ),
          { numRuns: 150 }
        )
        // And the server is still fine.
        assert.equal((await fetch(`${server.url}/v1/health`)).status, 200)
      })
    })
  })
}

apiSuite('PGlite', async () => undefined)

let pg: TestPostgres
const drops: Array<() => Promise<void>> = []
before(async () => {
  pg = await testPostgres()
})
after(async () => {
  for (const drop of drops) await drop()
  await pg?.stop()
})
apiSuite('PostgreSQL', async () => {
  const fresh = await freshDatabase(pg.url)
  drops.push(fresh.drop)
  return fresh.url
})

// The same suite through the partitioned cluster (pgBouncer -> PL/Proxy -> 2 partitions): the server does not change.
let cluster: LocalCluster | undefined
let clusterDir: string | undefined
after(async () => {
  await cluster?.stop()
  if (clusterDir !== undefined) await rm(clusterDir, { recursive: true, force: true })
})
apiSuite('the PL/Proxy cluster', async () => {
  clusterDir = await tempDir('parley-api-cluster-')
  cluster = await startLocalCluster({ dir: clusterDir, partitions: 2, settings: { fsync: 'off' } })
  return cluster.url
})

describe('key rotation', () => {
  it('signs with the new key while credentials of the old one stay valid and renewable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'parley-rot-'))
    try {
      let server = await startLoginServer({ dataDir: dir, listen: '127.0.0.1:0', logLevel: 'warn' })
      let client = new LoginClient({ url: server.url })
      await client.register({ name: 'rotation_user', password: PASSWORD })
      const device = generateKeyPair()
      const old = await client.login({ name: 'rotation_user', password: PASSWORD, device })
      const oldKeyId = old.keyId
      await server.close()

      const ring = await KeyRing.open(dir)
      const fresh = await ring.rotate()
      assert.notEqual(fresh.id, oldKeyId)

      server = await startLoginServer({ dataDir: dir, listen: '127.0.0.1:0', logLevel: 'warn' })
      client = new LoginClient({ url: server.url })
      const { keys } = await client.keys()
      assert.deepEqual(
        keys.map((k) => [k.id, k.active]).sort(),
        [
          [oldKeyId, false],
          [fresh.id, true]
        ].sort()
      )
      const verifier = new CredentialVerifier(keys)
      assert.ok(verifier.verify(old.credential).ok, 'a credential of the retired key still verifies')
      const renewed = await client.renew({ device, credential: old.credential })
      assert.equal(renewed.keyId, fresh.id, 'renewed under the new key')
      const relogin = await client.login({ name: 'rotation_user', password: PASSWORD, device })
      assert.equal(relogin.keyId, fresh.id)
      await server.close()

      // Publish first, activate later: clients learn a key before the first credential it signs.
      const ring2 = await KeyRing.open(dir)
      const next = await ring2.add()
      server = await startLoginServer({ dataDir: dir, listen: '127.0.0.1:0', logLevel: 'warn' })
      client = new LoginClient({ url: server.url })
      const published = (await client.keys()).keys
      assert.deepEqual(published.find((k) => k.id === next.id)?.active, false)
      assert.equal(
        (await client.login({ name: 'rotation_user', password: PASSWORD, device })).keyId,
        fresh.id,
        'still signing with the active key'
      )
      await server.close()
      await (await KeyRing.open(dir)).activate(next.id)
      server = await startLoginServer({ dataDir: dir, listen: '127.0.0.1:0', logLevel: 'warn' })
      client = new LoginClient({ url: server.url })
      assert.equal((await client.login({ name: 'rotation_user', password: PASSWORD, device })).keyId, next.id)
      await server.close()

      // Once the old key is removed, what it signed is refused with UNKNOWN_KEY_ID.
      await (await KeyRing.open(dir)).remove(oldKeyId)
      const after = await KeyRing.open(dir)
      const verdict = after.verifier.verify(old.credential)
      assert.equal(verdict.ok ? 'ok' : verdict.reason, 'UNKNOWN_KEY_ID')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('throttling policy', () => {
  it('throttles an address that fails across many names, and grows the delay with each further failure', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'parley-thr-'))
    const server = await startLoginServer({
      dataDir: dir,
      listen: '127.0.0.1:0',
      logLevel: 'warn',
      config: { throttle: { freeFailuresPerName: 2, freeFailuresPerAddress: 5, baseDelayMs: 400, maxDelayMs: 1_000, windowMs: 60_000 } }
    })
    try {
      const client = new LoginClient({ url: server.url })
      const device = generateKeyPair()
      await client.register({ name: 'grow_delay', password: PASSWORD })
      for (let i = 0; i < 2; i++)
        await expectCode(client.login({ name: 'grow_delay', password: `nope ${i}`, device }), 'INVALID_CREDENTIALS')
      const first = await expectCode(client.login({ name: 'grow_delay', password: PASSWORD, device }), 'THROTTLED')
      assert.ok((first.retryAfterMs ?? 0) <= 400)
      await new Promise((resolve) => setTimeout(resolve, (first.retryAfterMs ?? 0) + 50))
      await expectCode(client.login({ name: 'grow_delay', password: 'nope again', device }), 'INVALID_CREDENTIALS')
      const second = await expectCode(client.login({ name: 'grow_delay', password: PASSWORD, device }), 'THROTTLED')
      assert.ok((second.retryAfterMs ?? 0) > 400 && (second.retryAfterMs ?? 0) <= 800, `doubled: ${second.retryAfterMs}`)
      await new Promise((resolve) => setTimeout(resolve, (second.retryAfterMs ?? 0) + 50))
      await expectCode(client.login({ name: 'grow_delay', password: 'and again', device }), 'INVALID_CREDENTIALS')
      const third = await expectCode(client.login({ name: 'grow_delay', password: PASSWORD, device }), 'THROTTLED')
      assert.ok((third.retryAfterMs ?? 0) > 800 && (third.retryAfterMs ?? 0) <= 1_000, `capped at the maximum: ${third.retryAfterMs}`)
      await new Promise((resolve) => setTimeout(resolve, (third.retryAfterMs ?? 0) + 50))
      assert.equal(
        (await client.login({ name: 'grow_delay', password: PASSWORD, device })).name,
        'grow_delay',
        'the right password once the wait is over'
      )

      // Now this address has 5 failures in the window (by now its own free allowance): spraying other names is throttled too.
      await expectCode(client.login({ name: 'sprayed_1', password: 'x spray 1', device }), 'INVALID_CREDENTIALS')
      await expectCode(client.login({ name: 'sprayed_2', password: 'x spray 2', device }), 'THROTTLED')
    } finally {
      await server.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('shutdown', () => {
  it('closes promptly even with a kept-alive connection busy at the time', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'parley-close-'))
    try {
      const server = await startLoginServer({ dataDir: dir, listen: '127.0.0.1:0', logLevel: 'warn' })
      const client = new LoginClient({ url: server.url })
      // A registration (Argon2: tens of ms) in flight on a keep-alive connection when close() begins.
      const pending = client.register({ name: 'closing_time', password: PASSWORD })
      await new Promise((resolve) => setTimeout(resolve, 5))
      const started = Date.now()
      await server.close()
      const elapsed = Date.now() - started
      assert.ok(elapsed < 5_000, `close took ${elapsed} ms`)
      const outcome = await pending.then(
        (r) => r.name,
        (e: ParleyError) => e.code
      )
      assert.ok(['closing_time', 'NETWORK', 'UNAVAILABLE'].includes(outcome), outcome)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
