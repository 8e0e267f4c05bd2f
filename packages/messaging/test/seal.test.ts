import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { x25519 } from '@noble/curves/ed25519.js'
import { generateKeyPair, keyPairFromSeed } from '@parley/crypto'
import fc from 'fast-check'
import { MessagingError, open, SEAL_OVERHEAD, seal, x25519PublicKeyOf, x25519SecretKeyOf } from '../src/index.ts'

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const encoder = new TextEncoder()

async function refusedAsync(code: string, run: () => Promise<unknown>): Promise<void> {
  await assert.rejects(run, (err: unknown) => {
    assert.ok(err instanceof MessagingError, `expected a MessagingError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    return true
  })
}

describe('Ed25519 to X25519', () => {
  it("matches libsodium's crypto_sign_ed25519_pk_to_curve25519 and sk_to_curve25519", () => {
    // libsodium test/default/ed25519_convert.c and .exp: the key pair of this seed converts to these keys.
    const pair = keyPairFromSeed(hex('421151a459faeade3d247115f94aedae42318124095afabe4d1451a559faedee'))
    assert.equal(toHex(x25519PublicKeyOf(pair.publicKey)), 'f1814f0e8ff1043d8a44d25babff3cedcae6c22c3edaa48f857ae70de2baae50')
    assert.equal(toHex(x25519SecretKeyOf(pair.seed)), '8052030376d47112be7f73ed7a019293dd12ad910b654455798b4667d73de166')
  })

  it('the converted keys are pairs, and both sides of a Diffie-Hellman agree', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (seedA, seedB) => {
        const a = keyPairFromSeed(seedA)
        const b = keyPairFromSeed(seedB)
        const [skA, pkA, skB, pkB] = [
          x25519SecretKeyOf(a.seed),
          x25519PublicKeyOf(a.publicKey),
          x25519SecretKeyOf(b.seed),
          x25519PublicKeyOf(b.publicKey)
        ]
        assert.deepEqual(x25519.getPublicKey(skA), pkA)
        assert.deepEqual(x25519.getPublicKey(skB), pkB)
        assert.deepEqual(x25519.getSharedSecret(skA, pkB), x25519.getSharedSecret(skB, pkA))
      }),
      { numRuns: 30 }
    )
  })

  it('refuses keys that are not 32 bytes, not on the curve, or of small order', () => {
    const bad = [
      new Uint8Array(31),
      Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 2 : 0)),
      Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 1 : 0))
    ]
    for (const key of bad)
      assert.throws(
        () => x25519PublicKeyOf(key),
        (err: unknown) => err instanceof MessagingError && err.code === 'BAD_KEY'
      )
    assert.throws(
      () => x25519SecretKeyOf(new Uint8Array(16)),
      (err: unknown) => err instanceof MessagingError && err.code === 'BAD_KEY'
    )
  })
})

describe('sealed boxes', () => {
  const device = generateKeyPair()
  const other = generateKeyPair()

  it('open to what was sealed, and only with the recipient key', async () => {
    for (const size of [0, 1, 100, 64 * 1024]) {
      const plaintext = crypto.getRandomValues(new Uint8Array(size))
      const box = await seal(plaintext, device.publicKey)
      assert.equal(box.length, size + SEAL_OVERHEAD)
      assert.equal(box[0], 1)
      assert.deepEqual(await open(box, device.seed), plaintext)
      await refusedAsync('BAD_SEAL', () => open(box, other.seed))
    }
    const a = await seal(encoder.encode('same'), device.publicKey)
    const b = await seal(encoder.encode('same'), device.publicKey)
    assert.notDeepEqual(a, b, 'every box has its own ephemeral key')
  })

  it('refuse every altered byte, truncation and extension', async () => {
    const box = await seal(encoder.encode('meet at noon'), device.publicKey)
    for (let i = 0; i < box.length; i++) {
      for (const flip of [0x01, 0x80]) {
        const altered = box.slice()
        altered[i] = (altered[i] as number) ^ flip
        await refusedAsync('BAD_SEAL', () => open(altered, device.seed))
      }
    }
    for (const length of [0, 1, 33, SEAL_OVERHEAD - 1, box.length - 1])
      await refusedAsync('BAD_SEAL', () => open(box.subarray(0, length), device.seed))
    await refusedAsync('BAD_SEAL', () => open(Uint8Array.of(...box, 0), device.seed))
    await refusedAsync('BAD_SEAL', () => open(new Uint8Array(box.length), device.seed))
  })

  it('refuse unusable keys with BAD_KEY', async () => {
    await refusedAsync('BAD_KEY', () =>
      seal(
        new Uint8Array(1),
        new Uint8Array(32).fill(0).map((_, i) => (i === 0 ? 1 : 0))
      )
    )
    await refusedAsync('BAD_KEY', () => seal(new Uint8Array(1), new Uint8Array(33)))
    const box = await seal(new Uint8Array(1), device.publicKey)
    await refusedAsync('BAD_KEY', () => open(box, new Uint8Array(31)))
  })
})
