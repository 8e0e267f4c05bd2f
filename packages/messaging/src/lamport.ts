import { LIMITS, nameKey } from '@parley/protocol'
import type { Envelope } from './envelope.ts'

/**
 * A Lamport clock, one per conversation: every envelope a device writes
 * carries `tick()`, every envelope it reads is `observe`d first. So anything
 * written after seeing a message has a greater lamport than that message,
 * and sorting by (lamport, id) never shows an answer above its question.
 */
export class LamportClock {
  #now: number
  readonly #maxJump: number

  /** @param options.maxJump Default: LIMITS.messaging.lamportMaxJump. */
  constructor(start = 0, options: { maxJump?: number } = {}) {
    if (!Number.isSafeInteger(start) || start < 0) throw new RangeError('a Lamport clock starts at a non-negative integer')
    this.#now = start
    this.#maxJump = options.maxJump ?? LIMITS.messaging.lamportMaxJump
  }

  /** The highest time seen or issued. */
  get now(): number {
    return this.#now
  }

  /** The time for the next envelope this device writes. */
  tick(): number {
    if (this.#now >= Number.MAX_SAFE_INTEGER) throw new RangeError('Lamport clock exhausted')
    this.#now += 1
    return this.#now
  }

  /**
   * Takes in the time of an envelope read. Ignores values that are not
   * positive safe integers, and jumps of more than maxJump ahead: such an
   * envelope still sorts by its own lamport, but cannot run this clock out.
   */
  observe(lamport: number): void {
    if (Number.isSafeInteger(lamport) && lamport > this.#now && lamport - this.#now <= this.#maxJump) this.#now = lamport
  }
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * The order every replica shows a conversation in: by lamport, then id; two
 * envelopes with the same id (only a misbehaving sender makes them) by
 * author, then signature. Total, and consistent with causality: an envelope
 * written after another was seen comes after it.
 */
export function compareEnvelopes(a: Envelope, b: Envelope): number {
  return a.lamport - b.lamport || compareText(a.id, b.id) || compareText(nameKey(a.from), nameKey(b.from)) || compareText(a.sig, b.sig)
}
