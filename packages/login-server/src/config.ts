import { LIMITS } from '@parley/protocol'
import { OWASP_ARGON2ID, type PasswordHashing } from './passwords.ts'
import { DEFAULT_THROTTLE, type ThrottlePolicy } from './throttle.ts'

/** Everything a login server can be told, with its defaults. */
export interface LoginServerConfig {
  /** Credential lifetime. Default: 24 h. Clients renew at half-life. */
  credentialLifetimeMs: number
  /** Argon2id parameters. Default: OWASP (19 MiB, t=2, p=1). */
  argon2: PasswordHashing
  /** Failed-login throttling. Default: LIMITS.login. */
  throttle: ThrottlePolicy
  /** Per-address token buckets. Default: LIMITS.rates. */
  rates: { register: Rate; search: Rate; renew: Rate }
  /** The version check's answers. */
  versions: { latest: string; minimum: string }
  /** Take the client address from X-Forwarded-For (behind a load balancer). Default: false. */
  trustProxy: boolean
}

export interface Rate {
  perMinute: number
  burst: number
}

export const DEFAULT_CONFIG: LoginServerConfig = {
  credentialLifetimeMs: LIMITS.credential.lifetimeMs,
  argon2: OWASP_ARGON2ID,
  throttle: DEFAULT_THROTTLE,
  rates: { register: { ...LIMITS.rates.register }, search: { ...LIMITS.rates.search }, renew: { ...LIMITS.rates.renew } },
  versions: { latest: '0.1.0', minimum: '0.1.0' },
  trustProxy: false
}

/** Merges a partial configuration (from a file) over the defaults, checking every value. */
export function resolveConfig(partial: unknown): LoginServerConfig {
  if (partial === undefined || partial === null) return structuredClone(DEFAULT_CONFIG)
  if (typeof partial !== 'object') throw new Error('config: must be a JSON object')
  const p = partial as Record<string, unknown>
  const known = new Set(Object.keys(DEFAULT_CONFIG))
  for (const key of Object.keys(p)) if (!known.has(key)) throw new Error(`config: unknown setting "${key}"`)
  const merged = structuredClone(DEFAULT_CONFIG) as unknown as Record<string, unknown>
  for (const [key, value] of Object.entries(p)) {
    const base = merged[key]
    merged[key] = typeof base === 'object' && base !== null ? { ...base, ...(value as object) } : value
  }
  const c = merged as unknown as LoginServerConfig
  const posInt = (v: unknown, what: string): void => {
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw new Error(`config: ${what} must be a non-negative integer`)
  }
  posInt(c.credentialLifetimeMs, 'credentialLifetimeMs')
  if (c.credentialLifetimeMs < LIMITS.credential.minLifetimeMs || c.credentialLifetimeMs > LIMITS.credential.maxLifetimeMs) {
    throw new Error(
      `config: credentialLifetimeMs must be between ${LIMITS.credential.minLifetimeMs} and ${LIMITS.credential.maxLifetimeMs}`
    )
  }
  const positive = (v: unknown, what: string): void => {
    posInt(v, what)
    if (v === 0) throw new Error(`config: ${what} must be at least 1`)
  }
  for (const [k, v] of Object.entries(c.argon2)) positive(v, `argon2.${k}`)
  for (const [k, v] of Object.entries(c.throttle)) posInt(v, `throttle.${k}`)
  for (const [name, rate] of Object.entries(c.rates)) {
    positive(rate.perMinute, `rates.${name}.perMinute`)
    positive(rate.burst, `rates.${name}.burst`)
  }
  if (!/^\d+\.\d+\.\d+$/.test(c.versions.latest) || !/^\d+\.\d+\.\d+$/.test(c.versions.minimum))
    throw new Error('config: versions must be x.y.z')
  if (typeof c.trustProxy !== 'boolean') throw new Error('config: trustProxy must be true or false')
  return c
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0)
    if (d !== 0) return Math.sign(d)
  }
  return 0
}
