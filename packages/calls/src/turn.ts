import { createHmac } from 'node:crypto'
import { open } from 'node:fs/promises'
import { isIP } from 'node:net'
import { nameProblem } from '@parley/protocol'

/**
 * TURN for Parley calls. A supernode operator runs coturn beside the
 * supernode with `use-auth-secret` and `static-auth-secret`; the supernode
 * advertises the server and hands out short-lived credentials by the TURN
 * REST API scheme (draft-uberti-behave-turn-rest-00), so coturn needs no user
 * list and a leaked credential stops working by itself:
 *
 *   username   = "<expiry, Unix seconds>:<Parley user name>"
 *   credential = base64(HMAC-SHA1(shared secret, username))
 *
 * Only peers holding a valid Parley credential get one (the node checks
 * that before calling {@link turnCredentials}).
 */

/** The TURN port when a setting names none (RFC 5766). */
export const TURN_DEFAULT_PORT = 3478
/** The longest credential lifetime handed out: one day, as the REST API draft recommends. */
export const TURN_MAX_TTL_SECONDS = 86_400
/** Shortest and longest accepted shared secret, in characters. */
export const TURN_SECRET_MIN_LENGTH = 16
export const TURN_SECRET_MAX_LENGTH = 1024
/** A secret file larger than this is surely not a secret file. */
const SECRET_FILE_MAX_BYTES = 4096
const SECRET_EXAMPLE = 'e.g. `openssl rand -hex 32 > FILE && chmod 600 FILE`'

/** An operator's TURN setting is malformed (URL or secret file path). */
export class TurnSettingError extends Error {
  override name = 'TurnSettingError'
}

/** The TURN shared secret file is missing, unreadable, not owner-only, or does not hold a usable secret. */
export class TurnSecretError extends Error {
  override name = 'TurnSecretError'
}

/**
 * The TURN shared secret. It prints as `[TurnSecret]` in logs, JSON and
 * `util.inspect`, so that logging an object that holds it does not leak it;
 * {@link reveal} is for computing credentials and nothing else.
 */
export class TurnSecret {
  readonly #value: string

  constructor(value: string) {
    const problem = secretProblem(value)
    if (problem !== undefined) throw new TurnSecretError(`the TURN secret ${problem}`)
    this.#value = value
  }

  /** The secret itself. Never log it. */
  reveal(): string {
    return this.#value
  }

  toString(): string {
    return '[TurnSecret]'
  }

  toJSON(): string {
    return '[TurnSecret]'
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return '[TurnSecret]'
  }
}

/** Why `value` cannot be a shared secret (coturn takes it as one word on a config line), or undefined. */
function secretProblem(value: string): string | undefined {
  if (value.length < TURN_SECRET_MIN_LENGTH) return `is too short: use at least ${TURN_SECRET_MIN_LENGTH} characters, ${SECRET_EXAMPLE}`
  if (value.length > TURN_SECRET_MAX_LENGTH) return `is too long: use at most ${TURN_SECRET_MAX_LENGTH} characters`
  if (!/^[\x21-\x7e]+$/.test(value)) return `must be printable ASCII without spaces, ${SECRET_EXAMPLE}`
  return undefined
}

export interface TurnCredentialsInit {
  /** The shared secret, the same as coturn's `static-auth-secret`. */
  secret: TurnSecret | string
  /** The Parley user the credential is for (coturn logs it with each allocation). */
  user: string
  /** Lifetime in seconds, 1 to {@link TURN_MAX_TTL_SECONDS}. */
  ttlSeconds: number
  /** The current time, ms since the Unix epoch. Default: `Date.now()`. */
  now?: number
}

export interface TurnCredentials {
  /** `"<expiry, Unix seconds>:<user>"`: the TURN USERNAME. */
  username: string
  /** base64(HMAC-SHA1(secret, username)): the TURN password. */
  credential: string
  /** Lifetime in seconds (the REST API draft's `ttl`). */
  ttl: number
  /** When coturn stops accepting it, ms since the Unix epoch (whole seconds). */
  expiresAt: number
}

/** Time-limited TURN credentials by the TURN REST API shared-secret scheme. */
export function turnCredentials(init: TurnCredentialsInit): TurnCredentials {
  const { user, ttlSeconds, now = Date.now() } = init
  const userProblem = nameProblem(user)
  if (userProblem !== undefined) throw new RangeError(`TURN credentials: not a Parley user name (${userProblem})`)
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > TURN_MAX_TTL_SECONDS) {
    throw new RangeError(`TURN credentials: ttlSeconds must be an integer from 1 to ${TURN_MAX_TTL_SECONDS}`)
  }
  if (!Number.isSafeInteger(now) || now < 0) throw new RangeError('TURN credentials: now must be ms since the Unix epoch')
  const secret = typeof init.secret === 'string' ? new TurnSecret(init.secret) : init.secret
  const expirySeconds = Math.floor(now / 1000) + ttlSeconds
  const username = `${expirySeconds}:${user}`
  const credential = createHmac('sha1', secret.reveal()).update(username).digest('base64')
  return { username, credential, ttl: ttlSeconds, expiresAt: expirySeconds * 1000 }
}

/** The URLs to advertise for a TURN server: UDP first (what calls prefer), then TCP for networks that block UDP. */
export function turnUrls(host: string, port: number): string[] {
  const hostProblem = hostProblemOf(host)
  if (hostProblem !== undefined) throw new RangeError(`TURN URL: ${hostProblem}`)
  if (!isPort(port)) throw new RangeError('TURN URL: the port must be an integer from 1 to 65535')
  const h = isIP(host) === 6 ? `[${host}]` : host
  return [`turn:${h}:${port}?transport=udp`, `turn:${h}:${port}?transport=tcp`]
}

export interface TurnAddress {
  /** Host name or IP address (IPv6 without brackets). */
  host: string
  port: number
}

const URL_EXAMPLE = 'e.g. turn:turn.example.org:3478 or turn:[2001:db8::1]:3478'

/**
 * Parses a TURN server as an operator writes it: `turn:HOST[:PORT]` (RFC 7065
 * without the transport: Parley advertises UDP and TCP). HOST is a DNS name,
 * an IPv4 address or an IPv6 address in brackets; PORT defaults to 3478.
 * Throws {@link TurnSettingError} saying what is wrong.
 */
export function parseTurnUrl(text: string): TurnAddress {
  if (typeof text !== 'string') throw new TurnSettingError(`TURN server: expected text like turn:HOST:PORT (${URL_EXAMPLE})`)
  const url = text.trim()
  const bad = (why: string): TurnSettingError => new TurnSettingError(`TURN server "${url}": ${why}`)
  const lower = url.toLowerCase()
  if (lower.startsWith('turns:')) throw bad('TURN over TLS (turns:) is not supported; give turn:HOST:PORT')
  if (lower.startsWith('stun:') || lower.startsWith('stuns:')) throw bad(`that is a STUN server; give a TURN server (${URL_EXAMPLE})`)
  if (!lower.startsWith('turn:')) throw bad(`expected turn:HOST:PORT (${URL_EXAMPLE})`)
  let rest = url.slice('turn:'.length)
  if (rest.startsWith('//')) throw bad(`a TURN URL has no "//" after "turn:" (${URL_EXAMPLE})`)
  if (rest.includes('?')) throw bad('leave out "?transport=...": Parley advertises both UDP and TCP')
  if (rest.includes('@')) throw bad('leave out the user name: Parley hands out credentials itself')
  if (/[/#\s]/.test(rest)) throw bad(`a TURN URL has no path, fragment or spaces (${URL_EXAMPLE})`)
  let host: string
  if (rest.startsWith('[')) {
    const end = rest.indexOf(']')
    if (end < 0) throw bad('an IPv6 address needs its closing "]"')
    host = rest.slice(1, end)
    if (isIP(host) !== 6) throw bad(`"${host}" in brackets is not an IPv6 address`)
    rest = rest.slice(end + 1)
    if (rest !== '' && !rest.startsWith(':')) throw bad(`expected ":PORT" after the IPv6 address (${URL_EXAMPLE})`)
  } else {
    const colons = rest.split(':').length - 1
    if (colons > 1) throw bad('put an IPv6 address in brackets, e.g. turn:[2001:db8::1]:3478')
    const colon = rest.indexOf(':')
    host = colon < 0 ? rest : rest.slice(0, colon)
    rest = colon < 0 ? '' : rest.slice(colon)
    if (host === '') throw bad(`the host is missing (${URL_EXAMPLE})`)
    const problem = hostProblemOf(host)
    if (problem !== undefined) throw bad(problem)
  }
  if (rest === '') return { host, port: TURN_DEFAULT_PORT }
  const portText = rest.slice(1)
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN
  if (!isPort(port)) throw bad(`the port must be a number from 1 to 65535, not "${portText}"`)
  return { host, port }
}

export interface TurnServerSetting {
  /** `turn:HOST[:PORT]`, see {@link parseTurnUrl}. */
  url: string
  /** A file holding the shared secret on one line, owner-only (mode 0600 or 0400). */
  secretFile: string
}

export interface TurnServer extends TurnAddress {
  /** What to advertise, see {@link turnUrls}. */
  urls: string[]
  secret: TurnSecret
}

/** Checks the shape of a TURN setting from a config file or flags, without reading the secret. */
export function parseTurnServerSetting(value: unknown): TurnServerSetting & TurnAddress {
  if (typeof value !== 'object' || value === null) throw new TurnSettingError('TURN setting: expected { url, secretFile }')
  const { url, secretFile } = value as Record<string, unknown>
  for (const key of Object.keys(value)) {
    if (key !== 'url' && key !== 'secretFile') throw new TurnSettingError(`TURN setting: unknown field "${key}" (known: url, secretFile)`)
  }
  if (typeof url !== 'string' || url.trim() === '') throw new TurnSettingError(`TURN setting: url is missing (${URL_EXAMPLE})`)
  if (typeof secretFile !== 'string' || secretFile === '') {
    throw new TurnSettingError(
      "TURN setting: secretFile is missing (the file holding the shared secret, the same as coturn's static-auth-secret)"
    )
  }
  return { url, secretFile, ...parseTurnUrl(url) }
}

/** Checks a TURN setting and reads its secret: everything a supernode needs to hand out TURN credentials. */
export async function loadTurnServer(setting: unknown, options: { signal?: AbortSignal } = {}): Promise<TurnServer> {
  const { host, port, secretFile } = parseTurnServerSetting(setting)
  const secret = await readTurnSecret(secretFile, options)
  return { host, port, urls: turnUrls(host, port), secret }
}

/**
 * Reads the shared secret from `path`: a regular file only its owner may
 * read or write (mode 0600 or 0400), holding the secret on one line. Refuses
 * anything else with a {@link TurnSecretError}; messages never include the
 * file's content.
 */
export async function readTurnSecret(path: string, options: { signal?: AbortSignal } = {}): Promise<TurnSecret> {
  options.signal?.throwIfAborted()
  let file: Awaited<ReturnType<typeof open>>
  try {
    file = await open(path, 'r')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'cannot be read by this user' : `cannot be opened (${code})`
    throw new TurnSecretError(`TURN secret file ${path} ${why}`, { cause: err })
  }
  try {
    // Checked on the open file, not the path, so that the file read is the file checked.
    const stats = await file.stat()
    if (!stats.isFile()) throw new TurnSecretError(`TURN secret file ${path} is not a regular file`)
    const mode = stats.mode & 0o777
    if ((mode & 0o077) !== 0) {
      throw new TurnSecretError(
        `TURN secret file ${path} is open to other users (mode ${mode.toString(8).padStart(4, '0')}); ` +
          `make it owner-only: chmod 600 ${path}`
      )
    }
    if (stats.size > SECRET_FILE_MAX_BYTES) throw new TurnSecretError(`TURN secret file ${path} is too large for a secret`)
    const text = (await file.readFile({ encoding: 'utf8', signal: options.signal })).replace(/\r?\n$/, '')
    if (/[\r\n]/.test(text)) throw new TurnSecretError(`TURN secret file ${path} must hold the secret on one line`)
    if (text === '') throw new TurnSecretError(`TURN secret file ${path} is empty; ${SECRET_EXAMPLE}`)
    const problem = secretProblem(text)
    if (problem !== undefined) throw new TurnSecretError(`the TURN secret in ${path} ${problem}`)
    return new TurnSecret(text)
  } finally {
    await file.close()
  }
}

function isPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535
}

/** Why `host` is neither an IP address nor a DNS name, or undefined. */
function hostProblemOf(host: string): string | undefined {
  if (typeof host !== 'string' || host === '') return 'the host is missing'
  if (isIP(host) !== 0) return undefined
  if (/^[\d.]+$/.test(host)) return `"${host}" is not a valid IPv4 address`
  if (host.includes(':')) return `"${host}" is not a valid IPv6 address`
  const name = host.endsWith('.') ? host.slice(0, -1) : host
  if (name.length > 253) return 'the host name is longer than 253 characters'
  const label = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/
  if (!name.split('.').every((l) => label.test(l))) return `"${host}" is not a valid host name (letters, digits, "-" and ".")`
  return undefined
}
