import { fromBase64Url } from './encoding.ts'
import { ParleyError } from './errors.ts'
import type { NetworkFile } from './login-api.ts'

/** Validates a parsed network file; throws BAD_CONFIG saying what is wrong. */
export function parseNetworkFile(value: unknown): NetworkFile {
  const bad = (why: string): never => {
    throw new ParleyError('BAD_CONFIG', `network file: ${why}`)
  }
  if (typeof value !== 'object' || value === null) return bad('not a JSON object')
  const v = value as Record<string, unknown>
  if (v.version !== 1) bad('unknown version (expected 1)')
  if (typeof v.login !== 'string') return bad('"login" must be the login server URL')
  let url: URL
  try {
    url = new URL(v.login)
  } catch {
    return bad('"login" is not a URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') bad('"login" must be http(s)')
  if (!Array.isArray(v.keys) || v.keys.length === 0) return bad('"keys" must list at least one trusted login key')
  const keys = v.keys.map((k: unknown, i: number) => {
    if (typeof k !== 'object' || k === null) return bad(`keys[${i}] is not an object`)
    const { id, publicKey } = k as Record<string, unknown>
    if (typeof id !== 'string' || id.length === 0 || id.length > 32) return bad(`keys[${i}].id is not a key id`)
    if (typeof publicKey !== 'string' || fromBase64Url(publicKey)?.length !== 32)
      return bad(`keys[${i}].publicKey is not a 32-byte base64url key`)
    return { id, publicKey }
  })
  const seeds = v.seeds ?? []
  if (!Array.isArray(seeds) || !seeds.every((s) => typeof s === 'string')) bad('"seeds" must be a list of multiaddrs')
  return { version: 1, login: v.login.replace(/\/+$/, ''), keys, seeds: seeds as string[] }
}
