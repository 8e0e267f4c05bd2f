import { fromBase64Url, LIMITS, PROOF_SCHEME, toBase64Url, toHex } from '@parley/protocol'
import { ed25519 } from '#ed25519'
import type { KeyPair } from './keys.ts'

/**
 * A signed request: proves to the login server that the caller holds the
 * device key of a credential, for this method, path and body, now. Credentials
 * are shown to every peer, so a credential alone is never a bearer token.
 *
 * Header: `Authorization: Parley cred=<base64url>, ts=<ms>, sig=<base64url>`
 * Signed: `parley/request/v1\n<METHOD>\n<path and query>\n<ts>\n<hex sha256(body)>`
 */
export interface RequestToProve {
  method: string
  /** Path and query, as sent. */
  path: string
  body?: Uint8Array | string
}

const encoder = new TextEncoder()

function proofMessage(req: RequestToProve, ts: number): Uint8Array {
  const body = typeof req.body === 'string' ? encoder.encode(req.body) : (req.body ?? new Uint8Array(0))
  const head = `parley/request/v1\n${req.method.toUpperCase()}\n${req.path}\n${ts}\n${toHex(ed25519.sha256(body))}`
  return encoder.encode(head)
}

export function proveRequest(req: RequestToProve, credential: string, device: KeyPair, now = Date.now()): string {
  const sig = ed25519.sign(device.handle, proofMessage(req, now))
  return `${PROOF_SCHEME} cred=${credential}, ts=${now}, sig=${toBase64Url(sig)}`
}

export interface ParsedProof {
  credential: string
  ts: number
  signature: Uint8Array
}

/** Parses the header; undefined when it is not a well-formed Parley proof. */
export function parseRequestProof(header: string | undefined): ParsedProof | undefined {
  if (header === undefined || header.length > LIMITS.requestProof.maxHeaderLength) return undefined
  const match = /^Parley cred=([A-Za-z0-9_-]+), ?ts=(\d{1,16}), ?sig=([A-Za-z0-9_-]+)$/.exec(header)
  if (match === null) return undefined
  const signature = fromBase64Url(match[3] as string)
  if (signature?.length !== 64) return undefined
  return { credential: match[1] as string, ts: Number(match[2]), signature }
}

/** Checks the signature with the device key taken from the (already verified) credential. */
export function verifyRequestProof(req: RequestToProve, proof: ParsedProof, deviceKey: Uint8Array): boolean {
  try {
    return ed25519.verify(ed25519.importPublicKey(deviceKey), proofMessage(req, proof.ts), proof.signature)
  } catch {
    return false
  }
}
