import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { fromBase64Url, toBase64Url } from '@parley/protocol'
import fc from 'fast-check'
import { ed25519 as webBackend } from '../src/ed25519-web.ts'
import {
  type Credential,
  CredentialVerifier,
  credentialToString,
  decodeCredential,
  encodeCredentialBody,
  generateKeyPair,
  keyIdOf,
  keyPairFromSeed,
  signCredential,
  verifyCredential
} from '../src/index.ts'

const login = generateKeyPair()
const loginId = keyIdOf(login.publicKey)
const trusted = [{ id: loginId, publicKey: login.publicKey }]
const verifier = new CredentialVerifier(trusted)
const NOW = Date.UTC(2026, 10, 27, 12)

const nameArb = fc
  .tuple(
    fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'),
    fc.string({ unit: fc.constantFrom(...'abcXYZ0189.,-_'), minLength: 5, maxLength: 31 })
  )
  .map(([first, rest]) => first + rest)

const credentialArb: fc.Arbitrary<Credential> = fc.record({
  version: fc.constant(1 as const),
  name: nameArb,
  deviceKey: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  issuedAt: fc.integer({ min: NOW - 86_400_000, max: NOW }),
  expiresAt: fc.integer({ min: NOW + 1, max: NOW + 30 * 86_400_000 }),
  serial: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  keyId: fc.constant(loginId)
})

describe('credentials', () => {
  it('any valid credential round-trips through bytes and text and verifies', () => {
    fc.assert(
      fc.property(credentialArb, (c) => {
        const signed = signCredential(c, login.handle)
        const text = credentialToString(signed)
        const decoded = decodeCredential(text)
        assert.equal(decoded.name, c.name)
        assert.deepEqual(decoded.deviceKey, c.deviceKey)
        assert.equal(decoded.issuedAt, c.issuedAt)
        assert.equal(decoded.expiresAt, c.expiresAt)
        assert.equal(decoded.serial, c.serial)
        assert.equal(decoded.keyId, c.keyId)
        assert.deepEqual(decoded.bytes, signed.bytes)
        const verdict = verifier.verify(text, { now: NOW })
        assert.equal(verdict.ok, true, verdict.ok ? '' : verdict.message)
      }),
      { numRuns: 300 }
    )
  })

  it('any change to any byte makes verification fail', () => {
    fc.assert(
      fc.property(credentialArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (c, where, delta) => {
        const bytes = signCredential(c, login.handle).bytes
        const i = where % bytes.length
        const tampered = Uint8Array.from(bytes)
        tampered[i] = ((tampered[i] as number) + delta) & 0xff
        const verdict = verifier.verify(tampered, { now: NOW })
        assert.equal(verdict.ok, false, `byte ${i} changed by ${delta} still verified`)
        assert.ok(['MALFORMED', 'BAD_SIGNATURE', 'UNKNOWN_KEY_ID'].includes(verdict.reason), verdict.reason)
      }),
      { numRuns: 2000 }
    )
  })

  it('truncated, extended or garbage input is MALFORMED, never a throw', () => {
    fc.assert(
      fc.property(credentialArb, fc.uint8Array({ minLength: 1, maxLength: 600 }), fc.nat(), (c, junk, cut) => {
        const bytes = signCredential(c, login.handle).bytes
        const truncated = bytes.subarray(0, cut % bytes.length)
        const extended = new Uint8Array([...bytes, ...junk.subarray(0, 1 + (cut % 8))])
        for (const input of [truncated, extended, junk]) {
          const v = verifier.verify(input, { now: NOW })
          assert.equal(v.ok, false)
        }
        assert.equal(verifier.verify(`${toBase64Url(bytes)}!`).ok, false)
      }),
      { numRuns: 300 }
    )
  })

  it('gives a reason for every refusal', () => {
    const device = generateKeyPair()
    const base: Credential = {
      version: 1,
      name: 'alice_1',
      deviceKey: device.publicKey,
      issuedAt: NOW,
      expiresAt: NOW + 60_000,
      serial: 7n,
      keyId: loginId
    }
    const good = credentialToString(signCredential(base, login.handle))
    const reason = (v: ReturnType<CredentialVerifier['verify']>): string => (v.ok ? 'ok' : v.reason)

    assert.equal(reason(verifier.verify(good, { now: NOW + 1000 })), 'ok')
    assert.equal(reason(verifier.verify(good, { now: NOW + 60_000 })), 'EXPIRED')
    assert.equal(reason(verifier.verify(good, { now: NOW - 5 * 60_000 - 1 })), 'NOT_YET_VALID')
    assert.equal(reason(verifier.verify(good, { now: NOW - 5 * 60_000 + 1 })), 'ok', 'within the allowed clock skew')
    assert.equal(reason(verifier.verify(good, { now: NOW, clockSkewMs: 0 })), 'ok')
    assert.equal(reason(verifier.verify(good, { now: NOW - 1, clockSkewMs: 0 })), 'NOT_YET_VALID')
    assert.equal(reason(verifier.verify(good, { now: NOW, deviceKey: device.publicKey })), 'ok')
    assert.equal(reason(verifier.verify(good, { now: NOW, deviceKey: generateKeyPair().publicKey })), 'DEVICE_KEY_MISMATCH')
    assert.equal(reason(verifier.verify('not a credential', { now: NOW })), 'MALFORMED')

    const rogue = generateKeyPair()
    const unknownKey = credentialToString(signCredential({ ...base, keyId: keyIdOf(rogue.publicKey) }, rogue.handle))
    assert.equal(reason(verifier.verify(unknownKey, { now: NOW })), 'UNKNOWN_KEY_ID')
    // A rogue key claiming the trusted key's id.
    const forged = credentialToString(signCredential(base, rogue.handle))
    assert.equal(reason(verifier.verify(forged, { now: NOW })), 'BAD_SIGNATURE')
  })

  it('keeps old credentials valid across a key rotation until they expire', () => {
    const next = generateKeyPair()
    const nextId = keyIdOf(next.publicKey)
    const device = generateKeyPair()
    const old = signCredential(
      { version: 1, name: 'bob_the_1', deviceKey: device.publicKey, issuedAt: NOW, expiresAt: NOW + 1000, serial: 1n, keyId: loginId },
      login.handle
    )
    const fresh = signCredential({ ...old, keyId: nextId, serial: 2n }, next.handle)
    const both = new CredentialVerifier([...trusted, { id: nextId, publicKey: toBase64Url(next.publicKey) }])
    assert.equal(both.verify(old.bytes, { now: NOW + 1 }).ok, true)
    assert.equal(both.verify(fresh.bytes, { now: NOW + 1 }).ok, true)
    assert.equal(verifier.verify(fresh.bytes, { now: NOW + 1 }).ok, false, 'a verifier without the new key refuses')
    assert.equal(both.verify(old.bytes, { now: NOW + 1000 }).ok, false, 'and the old one still expires')
  })

  it('encodes canonically: the documented layout, byte for byte', () => {
    const body = encodeCredentialBody({
      version: 1,
      name: 'abcdef',
      deviceKey: new Uint8Array(32).fill(7),
      issuedAt: 1,
      expiresAt: 2,
      serial: 3n,
      keyId: 'k'
    })
    const expected = [1, 6, ...new TextEncoder().encode('abcdef'), ...new Array(32).fill(7)]
    expected.push(0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 1, 'k'.charCodeAt(0))
    assert.deepEqual([...body], expected)
    assert.throws(() =>
      encodeCredentialBody({
        version: 1,
        name: '1abcdef',
        deviceKey: new Uint8Array(32),
        issuedAt: 1,
        expiresAt: 2,
        serial: 0n,
        keyId: 'k'
      })
    )
    assert.throws(() =>
      encodeCredentialBody({ version: 1, name: 'abcdef', deviceKey: new Uint8Array(32), issuedAt: 2, expiresAt: 2, serial: 0n, keyId: 'k' })
    )
  })

  it('the browser backend (@noble) and the Node backend (OpenSSL) agree', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 300 }), (seed, message) => {
        const node = keyPairFromSeed(seed)
        const web = webBackend.importPrivateKey(seed)
        assert.deepEqual(web.publicKey, node.publicKey)
        const sigWeb = webBackend.sign(web, message)
        // Ed25519 is deterministic: both sign alike, and each verifies the other's.
        const verdict = verifyCredential('x', trusted)
        assert.equal(verdict.ok, false)
        const pub = webBackend.importPublicKey(node.publicKey)
        assert.equal(webBackend.verify(pub, message, sigWeb), true)
        const bad = Uint8Array.from(sigWeb)
        bad[0] = (bad[0] as number) ^ 1
        assert.equal(webBackend.verify(pub, message, bad), false)
      }),
      { numRuns: 50 }
    )
  })

  it('verifies in the browser backend what Node signed', () => {
    const device = generateKeyPair()
    const signed = signCredential(
      { version: 1, name: 'carol_1', deviceKey: device.publicKey, issuedAt: NOW, expiresAt: NOW + 1, serial: 0n, keyId: loginId },
      login.handle
    )
    const pub = webBackend.importPublicKey(login.publicKey)
    const context = new TextEncoder().encode('parley/credential/v1\0')
    const body = signed.bytes.subarray(0, signed.bytes.length - 64)
    assert.equal(webBackend.verify(pub, new Uint8Array([...context, ...body]), signed.signature), true)
    assert.deepEqual(fromBase64Url(credentialToString(signed)), signed.bytes)
  })
})
