import { createHash, createPrivateKey, createPublicKey, type KeyObject, randomBytes, sign, verify } from 'node:crypto'
import type { Ed25519Backend, PrivateKeyHandle, PublicKeyHandle } from './backend.ts'

// DER prefixes of SubjectPublicKeyInfo and PKCS#8 for Ed25519 (RFC 8410).
const SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00])
const PKCS8_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20])

interface NodePublicKey extends PublicKeyHandle {
  key: KeyObject
}
interface NodePrivateKey extends PrivateKeyHandle {
  key: KeyObject
}

function der(prefix: Uint8Array, raw: Uint8Array): Buffer {
  const out = Buffer.alloc(prefix.length + raw.length)
  out.set(prefix, 0)
  out.set(raw, prefix.length)
  return out
}

export const ed25519: Ed25519Backend = {
  name: 'node:crypto',
  randomSeed: () => new Uint8Array(randomBytes(32)),
  importPublicKey(raw) {
    if (raw.length !== 32) throw new RangeError('an Ed25519 public key has 32 bytes')
    const key = createPublicKey({ key: der(SPKI_PREFIX, raw), format: 'der', type: 'spki' })
    return { raw: Uint8Array.from(raw), key } satisfies NodePublicKey
  },
  importPrivateKey(seed) {
    if (seed.length !== 32) throw new RangeError('an Ed25519 private key seed has 32 bytes')
    const key = createPrivateKey({ key: der(PKCS8_PREFIX, seed), format: 'der', type: 'pkcs8' })
    const spki = createPublicKey(key).export({ format: 'der', type: 'spki' })
    return { publicKey: new Uint8Array(spki.subarray(SPKI_PREFIX.length)), key } satisfies NodePrivateKey
  },
  sign(handle, message) {
    return new Uint8Array(sign(null, message, (handle as NodePrivateKey).key))
  },
  verify(handle, message, signature) {
    if (signature.length !== 64) return false
    try {
      return verify(null, message, (handle as NodePublicKey).key, signature)
    } catch {
      return false
    }
  },
  sha256: (data) => new Uint8Array(createHash('sha256').update(data).digest())
}
