import { LIMITS } from '@parley/protocol'

export interface ThrottlePolicy {
  freeFailuresPerName: number
  freeFailuresPerAddress: number
  baseDelayMs: number
  maxDelayMs: number
  windowMs: number
}

export const DEFAULT_THROTTLE: ThrottlePolicy = { ...LIMITS.login }

/**
 * Growing delays: once `free` failures are spent, the next attempt must wait
 * `base` after the last failure, and each further failure doubles the wait,
 * up to `max`. Returns how long the caller must still wait (0: go ahead).
 */
export function retryAfterMs(failures: number, lastFailure: Date | undefined, now: Date, free: number, policy: ThrottlePolicy): number {
  if (failures < free || lastFailure === undefined) return 0
  const delay = Math.min(policy.baseDelayMs * 2 ** Math.min(failures - free, 30), policy.maxDelayMs)
  return Math.max(0, lastFailure.getTime() + delay - now.getTime())
}

/** Per-address token buckets for registration, search and renewal; in memory, per server instance. */
export class RateLimiter {
  readonly #perMs: number
  readonly #burst: number
  readonly #buckets = new Map<string, { tokens: number; at: number }>()
  readonly #maxKeys: number

  constructor(perMinute: number, burst: number, maxKeys = 100_000) {
    this.#perMs = perMinute / 60_000
    this.#burst = burst
    this.#maxKeys = maxKeys
  }

  /** Takes a token for `key`; returns 0 when allowed, else how long to wait. */
  take(key: string, now = Date.now()): number {
    let bucket = this.#buckets.get(key)
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxKeys) this.#prune(now)
      bucket = { tokens: this.#burst, at: now }
      this.#buckets.set(key, bucket)
    }
    bucket.tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#perMs)
    bucket.at = now
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return 0
    }
    return Math.ceil((1 - bucket.tokens) / this.#perMs)
  }

  #prune(now: number): void {
    for (const [key, b] of this.#buckets) {
      if (b.tokens + (now - b.at) * this.#perMs >= this.#burst) this.#buckets.delete(key)
    }
    // Still full: forget the oldest half rather than grow without bound.
    if (this.#buckets.size >= this.#maxKeys) {
      let n = this.#buckets.size / 2
      for (const key of this.#buckets.keys()) {
        if (n-- <= 0) break
        this.#buckets.delete(key)
      }
    }
  }
}

/** Runs tasks with the same key one after another (one password check per name at a time). */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<void>>()

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve()
    let release!: () => void
    const current = new Promise<void>((resolve) => {
      release = resolve
    })
    const tail = previous.then(() => current)
    this.#tails.set(key, tail)
    await previous
    try {
      return await task()
    } finally {
      release()
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    }
  }
}
