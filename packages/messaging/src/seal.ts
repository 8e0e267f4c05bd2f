import { Chacha20Poly1305 } from '@hpke/chacha20poly1305'
import { CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core'
import { ed25519 } from '@noble/curves/ed25519.js'
import { concatBytes } from '@parley/protocol'
import { MessagingError } from './errors.ts'

/**
 * Sealed boxes: anything stored for a device that is offline (a mailbox
 * message, voicemail) is encrypted to that device's key, so supernodes keep
 * bytes they cannot read. HPKE (RFC 9180) in base mode with
 * DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and ChaCha20-Poly1305 (constant
 * time in software, so the same speed in every browser), info
 * `parley/seal/v1`. The recipient's X25519 key is its Ed25519 device key
 * through the birational map (libsodium's crypto_sign_ed25519_pk_to_curve25519
 * and sk_to_curve25519): a device has one key pair for both.
 *
 * Sealed form: `0x01` ‖ enc (32 bytes, the ephemeral X25519 key) ‖ ciphertext (plaintext + 16-byte tag).
 * A box is anonymous: it says nothing about its sender; what is sealed (a
 * signed envelope) says who wrote it.
 */
export const SEAL_VERSION = 1
export const SEAL_INFO = new TextEncoder().encode('parley/seal/v1')
const ENC_BYTES = 32
const TAG_BYTES = 16
/** Bytes a sealed box adds to its plaintext. */
export const SEAL_OVERHEAD = 1 + ENC_BYTES + TAG_BYTES

let suite: CipherSuite | undefined
function hpke(): CipherSuite {
  suite ??= new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Chacha20Poly1305() })
  return suite
}

/**
 * The X25519 public key of an Ed25519 public key: u = (1 + y) / (1 - y).
 * Refuses keys that are not points of the curve and keys of small order
 * (whose Diffie-Hellman results would be predictable).
 */
export function x25519PublicKeyOf(ed25519PublicKey: Uint8Array): Uint8Array {
  if (!(ed25519PublicKey instanceof Uint8Array) || ed25519PublicKey.length !== 32)
    throw new MessagingError('BAD_KEY', 'an Ed25519 public key has 32 bytes')
  let point: ReturnType<typeof ed25519.Point.fromBytes>
  try {
    point = ed25519.Point.fromBytes(ed25519PublicKey)
  } catch (cause) {
    throw new MessagingError('BAD_KEY', 'not an Ed25519 public key', { cause })
  }
  if (point.isSmallOrder()) throw new MessagingError('BAD_KEY', 'an Ed25519 key of small order')
  return ed25519.utils.toMontgomery(ed25519PublicKey)
}

/** The X25519 secret key of an Ed25519 seed: the clamped first half of SHA-512(seed), the Ed25519 signing scalar. */
export function x25519SecretKeyOf(ed25519Seed: Uint8Array): Uint8Array {
  if (!(ed25519Seed instanceof Uint8Array) || ed25519Seed.length !== 32) throw new MessagingError('BAD_KEY', 'an Ed25519 seed has 32 bytes')
  return ed25519.utils.toMontgomerySecret(ed25519Seed)
}

/** Encrypts to one device, by its Ed25519 public key (32 bytes). Throws MessagingError('BAD_KEY') for an unusable key. */
export async function seal(plaintext: Uint8Array, recipientDeviceKey: Uint8Array): Promise<Uint8Array> {
  const suite = hpke()
  const recipientPublicKey = await suite.kem.deserializePublicKey(x25519PublicKeyOf(recipientDeviceKey))
  const { enc, ct } = await suite.seal({ recipientPublicKey, info: SEAL_INFO }, plaintext)
  return concatBytes(Uint8Array.of(SEAL_VERSION), new Uint8Array(enc), new Uint8Array(ct))
}

/**
 * Decrypts a box sealed to this device, with its Ed25519 seed (32 bytes).
 * Throws MessagingError('BAD_SEAL') for anything that does not open (altered,
 * truncated, another version, sealed to another key), ('BAD_KEY') for a seed
 * that is not 32 bytes, and nothing else.
 */
export async function open(sealed: Uint8Array, recipientDeviceSeed: Uint8Array): Promise<Uint8Array> {
  const secret = x25519SecretKeyOf(recipientDeviceSeed)
  if (!(sealed instanceof Uint8Array) || sealed.length < SEAL_OVERHEAD) throw new MessagingError('BAD_SEAL', 'too short to be a sealed box')
  if (sealed[0] !== SEAL_VERSION) throw new MessagingError('BAD_SEAL', `unknown sealed box version ${sealed[0]}`)
  const suite = hpke()
  try {
    const recipientKey = await suite.kem.deserializePrivateKey(secret)
    const enc = sealed.subarray(1, 1 + ENC_BYTES)
    const plaintext = await suite.open({ recipientKey, enc, info: SEAL_INFO }, sealed.subarray(1 + ENC_BYTES))
    return new Uint8Array(plaintext)
  } catch (cause) {
    throw new MessagingError('BAD_SEAL', 'the sealed box does not open with this key', { cause })
  } finally {
    secret.fill(0)
  }
}
