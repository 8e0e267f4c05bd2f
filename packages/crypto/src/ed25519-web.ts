import { ed25519 as noble } from '@noble/curves/ed25519.js'
import { sha256 } from '@noble/hashes/sha2.js'
import type { Ed25519Backend } from './backend.ts'

/** Pure JavaScript backend for browsers; the Node backend is 10x faster. */
export const ed25519: Ed25519Backend = {
  name: '@noble/curves',
  randomSeed: () => crypto.getRandomValues(new Uint8Array(32)),
  importPublicKey(raw) {
    if (raw.length !== 32) throw new RangeError('an Ed25519 public key has 32 bytes')
    return { raw: Uint8Array.from(raw) }
  },
  importPrivateKey(seed) {
    if (seed.length !== 32) throw new RangeError('an Ed25519 private key seed has 32 bytes')
    const copy = Uint8Array.from(seed)
    return Object.assign({ publicKey: noble.getPublicKey(copy) }, { seed: copy })
  },
  sign(handle, message) {
    return noble.sign(message, (handle as unknown as { seed: Uint8Array }).seed)
  },
  verify(handle, message, signature) {
    if (signature.length !== 64) return false
    try {
      // zip215: false gives RFC 8032 strict verification, as OpenSSL does.
      return noble.verify(signature, message, handle.raw, { zip215: false })
    } catch {
      return false
    }
  },
  sha256: (data) => sha256(data)
}
