import { concatBytes } from '@parley/protocol'

const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

export function base58btc(bytes: Uint8Array): string {
  const digits: number[] = [0]
  for (const byte of bytes) {
    let carry = byte
    for (let i = 0; i < digits.length; i++) {
      carry += (digits[i] as number) << 8
      digits[i] = carry % 58
      carry = (carry / 58) | 0
    }
    while (carry > 0) {
      digits.push(carry % 58)
      carry = (carry / 58) | 0
    }
  }
  let out = ''
  for (const byte of bytes) {
    if (byte !== 0) break
    out += '1'
  }
  for (let i = digits.length - 1; i >= 0; i--) out += ALPHABET[digits[i] as number]
  return out
}

// libp2p's protobuf PublicKey { Type = Ed25519 (1), Data = 32 bytes }, in an identity multihash.
const PROTOBUF_ED25519_PREFIX = Uint8Array.from([0x08, 0x01, 0x12, 0x20])

/**
 * The libp2p peer id of an Ed25519 device key ("12D3KooW..."): the device key
 * is the node's identity on the overlay.
 */
export function peerIdOf(publicKey: Uint8Array): string {
  if (publicKey.length !== 32) throw new RangeError('an Ed25519 public key has 32 bytes')
  const protobuf = concatBytes(PROTOBUF_ED25519_PREFIX, publicKey)
  return base58btc(concatBytes(Uint8Array.from([0x00, protobuf.length]), protobuf))
}
