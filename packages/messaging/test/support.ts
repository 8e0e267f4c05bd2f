import { type KeyPair, keyPairFromSeed, peerIdOf, sign } from '@parley/crypto'
import { concatBytes, LIMITS, toBase64Url } from '@parley/protocol'
import { canonicalJson, ENVELOPE_CONTEXT, type MessagingRefusal } from '../src/index.ts'

export const REFUSALS: readonly MessagingRefusal[] = [
  'MALFORMED',
  'TOO_LARGE',
  'UNSUPPORTED_VERSION',
  'UNKNOWN_KIND',
  'BAD_BODY',
  'BAD_DEVICE',
  'BAD_SIGNATURE',
  'BAD_KEY',
  'BAD_SEAL',
  'WRONG_CONVERSATION'
]

/** Deterministic device keys, so a failing property replays with the same keys. */
export function deviceKey(n: number): KeyPair {
  const seed = new Uint8Array(32)
  seed[0] = 7
  seed[1] = n
  return keyPairFromSeed(seed)
}

const encoder = new TextEncoder()

/**
 * Signs any object the way signEnvelope would, without checking it: for
 * envelopes that are wrong in one way and signed correctly. `fields` holds
 * everything but `sig` (and `device`, taken from the key unless given).
 */
export function forge(fields: Record<string, unknown>, key: KeyPair): Uint8Array {
  const unsigned = { device: peerIdOf(key.publicKey), ...fields }
  const json = canonicalJson(unsigned, 64)
  const sig = toBase64Url(sign(key, concatBytes(ENVELOPE_CONTEXT, encoder.encode(json))))
  return encoder.encode(canonicalJson({ ...unsigned, sig }, 64))
}

export const BODY_DEPTH = LIMITS.messaging.bodyMaxDepth
