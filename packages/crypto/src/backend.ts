/**
 * The one face over Ed25519 and SHA-256: node:crypto in Node (OpenSSL, fast),
 * @noble in browsers. Handles are opaque so each backend can cache what it
 * imports (node:crypto KeyObjects are worth keeping).
 */
export interface PublicKeyHandle {
  readonly raw: Uint8Array
}
export interface PrivateKeyHandle {
  readonly publicKey: Uint8Array
}

export interface Ed25519Backend {
  readonly name: string
  randomSeed(): Uint8Array
  importPublicKey(raw: Uint8Array): PublicKeyHandle
  importPrivateKey(seed: Uint8Array): PrivateKeyHandle
  sign(key: PrivateKeyHandle, message: Uint8Array): Uint8Array
  /** False for any bad signature or key; never throws. */
  verify(key: PublicKeyHandle, message: Uint8Array, signature: Uint8Array): boolean
  sha256(data: Uint8Array): Uint8Array
}
