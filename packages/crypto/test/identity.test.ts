import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import {
  base58btc,
  generateKeyPair,
  keyIdOf,
  keyPairFromSeed,
  parseRequestProof,
  peerIdOf,
  proveRequest,
  verifyRequestProof
} from '../src/index.ts'

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))

describe('peer ids', () => {
  it('match the libp2p peer-id specification test vector', () => {
    // libp2p/specs peer-ids.md: the Ed25519 key 080112407e08... has public key 1ed1e8fa... and this peer id.
    const pair = keyPairFromSeed(hex('7e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d'))
    assert.deepEqual(pair.publicKey, hex('1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e'))
    assert.equal(peerIdOf(pair.publicKey), '12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq')
  })

  it('encode base58btc like Bitcoin, leading zeros as 1s', () => {
    assert.equal(base58btc(new Uint8Array([0, 0, 1])), '112')
    assert.equal(base58btc(new TextEncoder().encode('Hello World!')), '2NEpo7TZRRrLZSi2U')
  })

  it('key ids are derived from the key', () => {
    const a = generateKeyPair()
    assert.match(keyIdOf(a.publicKey), /^[A-Za-z0-9_-]{12}$/)
    assert.equal(keyIdOf(a.publicKey), keyIdOf(Uint8Array.from(a.publicKey)))
    assert.notEqual(keyIdOf(a.publicKey), keyIdOf(generateKeyPair().publicKey))
  })
})

describe('signed requests', () => {
  const device = generateKeyPair()
  const req = { method: 'POST', path: '/v1/sessions/renew?x=1', body: '{"a":1}' }

  it('verify for exactly the method, path, body and time signed', () => {
    const header = proveRequest(req, 'Y3JlZA', device, 1_000)
    const proof = parseRequestProof(header)
    assert.ok(proof)
    assert.equal(proof.ts, 1_000)
    assert.equal(proof.credential, 'Y3JlZA')
    assert.equal(verifyRequestProof(req, proof, device.publicKey), true)
    assert.equal(verifyRequestProof({ ...req, method: 'GET' }, proof, device.publicKey), false)
    assert.equal(verifyRequestProof({ ...req, path: '/v1/sessions/renew' }, proof, device.publicKey), false)
    assert.equal(verifyRequestProof({ ...req, body: '{"a":2}' }, proof, device.publicKey), false)
    assert.equal(verifyRequestProof(req, { ...proof, ts: 1_001 }, device.publicKey), false)
    assert.equal(verifyRequestProof(req, proof, generateKeyPair().publicKey), false)
  })

  it('parse only well-formed headers, whatever else comes', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 3000 }), (header) => {
        const parsed = parseRequestProof(header)
        if (parsed !== undefined) assert.equal(parsed.signature.length, 64)
      })
    )
    assert.equal(parseRequestProof(undefined), undefined)
    assert.equal(parseRequestProof('Bearer x'), undefined)
    assert.equal(parseRequestProof(`Parley cred=abc, ts=1, sig=${'A'.repeat(85)}`), undefined, 'a 64-byte signature is 86 characters')
    assert.equal(parseRequestProof(`Parley cred=abc, ts=1, sig=${'A'.repeat(2000)}`), undefined)
  })
})
