import { toBase64Url } from '@parley/protocol'
import { ed25519 } from '#ed25519'
import type { PrivateKeyHandle, PublicKeyHandle } from './backend.ts'

/** An Ed25519 key pair: the seed is the secret, the public key is 32 bytes. */
export interface KeyPair {
  seed: Uint8Array
  publicKey: Uint8Array
  /** Imported once for signing. */
  handle: PrivateKeyHandle
}

export function generateKeyPair(): KeyPair {
  return keyPairFromSeed(ed25519.randomSeed())
}

export function keyPairFromSeed(seed: Uint8Array): KeyPair {
  const handle = ed25519.importPrivateKey(seed)
  return { seed: Uint8Array.from(seed), publicKey: handle.publicKey, handle }
}

export function sign(key: KeyPair, message: Uint8Array): Uint8Array {
  return ed25519.sign(key.handle, message)
}

export function importPublicKey(raw: Uint8Array): PublicKeyHandle {
  return ed25519.importPublicKey(raw)
}

export function verifySignature(key: PublicKeyHandle, message: Uint8Array, signature: Uint8Array): boolean {
  return ed25519.verify(key, message, signature)
}

export function sha256(data: Uint8Array): Uint8Array {
  return ed25519.sha256(data)
}

/**
 * A login key's id: the first 9 bytes of SHA-256 of its public key, base64url
 * (12 characters). Derived, so a network file cannot pair an id with the wrong key.
 */
export function keyIdOf(publicKey: Uint8Array): string {
  return toBase64Url(sha256(publicKey).subarray(0, 9))
}

export const backendName = ed25519.name
