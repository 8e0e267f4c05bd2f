/**
 * Token buckets by key (a sender's name, a peer id): `burst` requests at once,
 * then `perMinute` a minute. Bounded: past `maxKeys` the oldest bucket goes
 * (it is then as if that key started afresh, never stricter).
 */
export class TokenBuckets {
  readonly #perMs: number
  readonly #burst: number
  readonly #maxKeys: number
  readonly #buckets = new Map<string, { tokens: number; at: number }>()

  constructor(perMinute: number, burst: number, maxKeys = 10_000) {
    this.#perMs = perMinute / 60_000
    this.#burst = Math.max(1, burst)
    this.#maxKeys = maxKeys
  }

  /** Takes a token: 0 when admitted, else how many ms until one is there. */
  take(key: string, now = Date.now()): number {
    const bucket = this.#buckets.get(key)
    const tokens = bucket === undefined ? this.#burst : Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#perMs)
    if (tokens < 1) {
      if (bucket !== undefined) Object.assign(bucket, { tokens, at: now })
      return this.#perMs > 0 ? Math.ceil((1 - tokens) / this.#perMs) : 60_000
    }
    this.#buckets.delete(key)
    this.#buckets.set(key, { tokens: tokens - 1, at: now })
    if (this.#buckets.size > this.#maxKeys) this.#buckets.delete(this.#buckets.keys().next().value as string)
    return 0
  }

  /** Forgets buckets that have filled up again (they hold nothing a new one would not). */
  prune(now = Date.now()): void {
    for (const [key, b] of this.#buckets) if (b.tokens + (now - b.at) * this.#perMs >= this.#burst) this.#buckets.delete(key)
  }

  clear(): void {
    this.#buckets.clear()
  }
}
