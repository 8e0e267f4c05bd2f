import { ed25519 } from '@noble/curves/ed25519.js'
import { importPublicKey, type PublicKeyHandle, peerIdOf } from '@parley/crypto'

const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
const DIGIT = new Map([...ALPHABET].map((c, i) => [c, i]))
/** An identity-multihash peer id of an Ed25519 key: 0x00 0x24, then protobuf { Type: Ed25519, Data: 32 bytes }. */
const PREFIX = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20]
const PEER_ID_BYTES = PREFIX.length + 32
/** Every such peer id is 52 characters of base58btc starting "12D3KooW". */
const PEER_ID_PATTERN = /^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$/

function base58Decode(text: string, length: number): Uint8Array | undefined {
  const out = new Uint8Array(length)
  for (const char of text) {
    let carry = DIGIT.get(char)
    if (carry === undefined) return undefined
    for (let i = length - 1; i >= 0; i--) {
      carry += (out[i] as number) * 58
      out[i] = carry & 0xff
      carry >>= 8
    }
    if (carry !== 0) return undefined
  }
  return out
}

/**
 * The Ed25519 public key inside a libp2p peer id ("12D3KooW..."), or
 * undefined when the text is not exactly the peer id of an Ed25519 key.
 */
export function publicKeyOfPeerId(peerId: string): Uint8Array | undefined {
  if (!PEER_ID_PATTERN.test(peerId)) return undefined
  const bytes = base58Decode(peerId, PEER_ID_BYTES)
  if (bytes === undefined || PREFIX.some((b, i) => bytes[i] !== b)) return undefined
  const key = bytes.slice(PREFIX.length)
  // One text per key: refuse anything that does not encode back to itself.
  return peerIdOf(key) === peerId ? key : undefined
}

/** Imported device keys, by peer id: a few thousand, then start over. */
const cache = new Map<string, PublicKeyHandle | null>()
const CACHE_SIZE = 4096

/** A point of the curve (strict RFC 8032 decoding), not of small order. */
function isUsableKey(raw: Uint8Array): boolean {
  try {
    return !ed25519.Point.fromBytes(raw, false).isSmallOrder()
  } catch {
    return false
  }
}

/**
 * The imported key of a peer id, or undefined when it holds none usable: not
 * a point of the curve, or of small order (a key any signature might verify with).
 */
export function deviceKeyHandle(peerId: string): PublicKeyHandle | undefined {
  const cached = cache.get(peerId)
  if (cached !== undefined) return cached ?? undefined
  const raw = publicKeyOfPeerId(peerId)
  let handle: PublicKeyHandle | null = null
  if (raw !== undefined && isUsableKey(raw)) {
    try {
      handle = importPublicKey(raw)
    } catch {
      handle = null
    }
  }
  if (cache.size >= CACHE_SIZE) cache.clear()
  cache.set(peerId, handle)
  return handle ?? undefined
}
